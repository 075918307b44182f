/** Bad input: run configs, and a run directory's config.json (cases in config.cases.ts). */
import { defineFamily } from './harness';

defineFamily('run config', require.resolve('./config.cases'));
