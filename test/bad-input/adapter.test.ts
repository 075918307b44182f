/** Bad input: PEFT adapters (cases in adapter.cases.ts). */
import { defineFamily } from './harness';

defineFamily('adapter', require.resolve('./adapter.cases'));
