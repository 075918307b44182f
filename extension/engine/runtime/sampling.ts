/** Choosing the next token from a row of logits: greedy, or temperature and nucleus (top-p) sampling. */
import { Rng } from '../../util/rng';

export interface SamplingOptions {
  /** 0 means greedy decoding. */
  temperature: number;
  topP: number;
}

export interface Choice {
  token: number;
  /** log p(token) under the model's own distribution (temperature 1, no truncation). */
  logprob: number;
}

/** log-sum-exp of a row, in float64 for stability. */
function logSumExp(logits: ArrayLike<number>, offset: number, n: number, scale: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[offset + i] * scale);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i] * scale - max);
  return max + Math.log(sum);
}

export function chooseToken(logits: ArrayLike<number>, offset: number, vocab: number, options: SamplingOptions, rng: Rng): Choice {
  const lse = logSumExp(logits, offset, vocab, 1);
  if (options.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (logits[offset + i] > logits[offset + best]) best = i;
    return { token: best, logprob: logits[offset + best] - lse };
  }
  const inv = 1 / options.temperature;
  const lseT = logSumExp(logits, offset, vocab, inv);
  const probs = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) probs[i] = Math.exp(logits[offset + i] * inv - lseT);
  let token: number;
  if (options.topP < 1) {
    // The smallest set of most likely tokens whose mass reaches top-p (at least one token).
    const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
    let mass = 0;
    let keep = 0;
    while (keep < vocab && (keep === 0 || mass < options.topP)) mass += probs[order[keep++]];
    let u = rng.uniform() * mass;
    token = order[keep - 1];
    for (let i = 0; i < keep; i++) {
      u -= probs[order[i]];
      if (u < 0) {
        token = order[i];
        break;
      }
    }
  } else {
    let u = rng.uniform();
    token = vocab - 1;
    for (let i = 0; i < vocab; i++) {
      u -= probs[i];
      if (u < 0) {
        token = i;
        break;
      }
    }
  }
  return { token, logprob: logits[offset + token] - lse };
}
