/** Bad input: panel messages and panel worker jobs (cases in webview-messages.cases.ts). */
import { defineFamily } from './harness';

defineFamily('webview messages', require.resolve('./webview-messages.cases'));
