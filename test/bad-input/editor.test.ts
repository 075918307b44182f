/** Bad input: workspace settings and untrusted text in notifications (cases in editor.cases.ts). */
import { defineFamily } from './harness';

defineFamily('editor (workspace settings, notifications)', require.resolve('./editor.cases'));
