/** Bad input: seeds, datasets and policy text (cases in seeds-and-data.cases.ts). */
import { defineFamily } from './harness';

defineFamily('seeds and data', require.resolve('./seeds-and-data.cases'));
