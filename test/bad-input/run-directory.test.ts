/** Bad input: run directories from someone else (cases in run-directory.cases.ts). */
import { defineFamily } from './harness';

defineFamily('run directory', require.resolve('./run-directory.cases'));
