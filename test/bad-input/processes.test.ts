/** Bad input: a run.json's pid (cases in processes.cases.ts). */
import { defineFamily } from './harness';

defineFamily('processes (the pid in run.json)', require.resolve('./processes.cases'));
