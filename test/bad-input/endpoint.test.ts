/** Bad input: a judge endpoint's answers (cases in endpoint.cases.ts). */
import { defineFamily } from './harness';

defineFamily('endpoint answers', require.resolve('./endpoint.cases'));
