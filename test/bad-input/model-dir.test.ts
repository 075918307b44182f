/** Bad input: model directories, tokenizers and chat templates (cases in model-dir.cases.ts). */
import { defineFamily } from './harness';

defineFamily('model directory', require.resolve('./model-dir.cases'));
