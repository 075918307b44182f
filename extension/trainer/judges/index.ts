import { RunConfig } from '../run-config';
import { checkJudgeOrigin, type ConfigOrigin } from './endpoint-approval';
import { GuardModelJudge } from './guard-model-judge';
import { HttpJudge } from './http-judge';
import { Judge, JudgeError } from './judge';
import { RefusalJudge } from './refusal-judge';
import { SandboxJudge } from './sandbox-judge';

export { JudgeError, type Judge, type JudgeItem } from './judge';
export { JudgeNotApprovedError, checkJudgeOrigin, formatApproval, judgeEndpoint, parseApproval, type ApprovedJudge, type ConfigOrigin } from './endpoint-approval';

/**
 * The judge a config names. `origin` says whose config it is: a run directory's config.json may only
 * reach an endpoint (and a key variable) the user approved (endpoint-approval.ts).
 */
export function makeJudge(config: RunConfig, origin: ConfigOrigin): Judge {
  checkJudgeOrigin(config, origin);
  const j = config.judge;
  switch (j.kind) {
    case 'sandbox':
      return new SandboxJudge();
    case 'refusal':
      return new RefusalJudge();
    case 'guard': {
      const e = config.engine;
      if (e.kind === 'torch') return GuardModelJudge.openTorch(j.model, j.max_new_tokens, { device: e.device, dtype: e.dtype, threads: e.threads });
      return GuardModelJudge.open(j.model, j.max_new_tokens, e.threads);
    }
    case 'http': {
      const apiKey = j.api_key_env ? process.env[j.api_key_env] : undefined;
      if (j.api_key_env && !apiKey) throw new JudgeError(`judge.api_key_env names ${j.api_key_env}, which is not set`);
      return new HttpJudge({ url: j.url, model: j.model, apiKey, timeoutMs: j.timeout_ms, retries: j.retries });
    }
  }
}
