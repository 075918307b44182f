/**
 * Advantage estimators without a critic.
 * - REINFORCE++ (as OpenRLHF implements it): per-token rewards −β·(log π − log π_ref) with the outcome
 *   reward added at the last token, returns with discount γ, then whitened (zero mean, unit variance)
 *   over all tokens of the role's batch.
 * - GRPO: the outcome reward normalised within its group of samples of the same seed,
 *   (r − mean) / (std + eps), the same for every token; its KL goes into the loss instead.
 */

export interface SequenceReward {
  reward: number;
  /** log π − log π_ref for each generated token (the k1 estimate), used when the KL is in the reward. */
  kl: readonly number[];
  /** A per-token reward added to the KL term (the entropy bonus, −α·log π), if any. */
  bonus?: readonly number[];
}

function whiten(values: number[][]): number[][] {
  const flat = values.flat();
  if (flat.length === 0) return values;
  const mean = flat.reduce((a, b) => a + b, 0) / flat.length;
  const variance = flat.reduce((a, b) => a + (b - mean) ** 2, 0) / flat.length;
  const std = Math.sqrt(variance);
  return values.map((row) => row.map((v) => (v - mean) / (std + 1e-8)));
}

export function reinforcePlusPlus(seqs: readonly SequenceReward[], klCoef: number, gamma = 1): number[][] {
  const returns = seqs.map((s) => {
    const rewards = s.kl.map((k, t) => -klCoef * k + (s.bonus?.[t] ?? 0));
    if (rewards.length > 0) rewards[rewards.length - 1] += s.reward;
    const g = new Array<number>(rewards.length);
    let running = 0;
    for (let t = rewards.length - 1; t >= 0; t--) {
      running = rewards[t] + gamma * running;
      g[t] = running;
    }
    return g;
  });
  return whiten(returns);
}

export function grpo(rewards: readonly number[], groups: readonly (string | number)[], eps = 1e-6): number[] {
  const members = new Map<string | number, number[]>();
  groups.forEach((g, i) => members.set(g, [...(members.get(g) ?? []), i]));
  const out = new Array<number>(rewards.length).fill(0);
  for (const idx of members.values()) {
    const rs = idx.map((i) => rewards[i]);
    const mean = rs.reduce((a, b) => a + b, 0) / rs.length;
    // Sample standard deviation, as GRPO implementations use (torch.std's default).
    const std = rs.length > 1 ? Math.sqrt(rs.reduce((a, b) => a + (b - mean) ** 2, 0) / (rs.length - 1)) : 0;
    idx.forEach((i) => (out[i] = (rewards[i] - mean) / (std + eps)));
  }
  return out;
}

/**
 * The entropy bonus in GRPO's form: each sample's mean surprisal −(1/T)·Σ log π(y_t) (a one-sample
 * estimate of the policy's per-token entropy), centred within its group and scaled by α. Added to the
 * normalised advantage, it pushes probability from the group's likelier outputs to its rarer ones
 * whatever the rewards were, so a policy whose group outcomes all tie still keeps exploring.
 */
export function groupEntropyBonus(logprobs: readonly (readonly number[])[], groups: readonly (string | number)[], alpha: number): number[] {
  const surprisal = logprobs.map((lp) => (lp.length ? -lp.reduce((a, b) => a + b, 0) / lp.length : 0));
  const members = new Map<string | number, number[]>();
  groups.forEach((g, i) => members.set(g, [...(members.get(g) ?? []), i]));
  const out = new Array<number>(logprobs.length).fill(0);
  for (const idx of members.values()) {
    const mean = idx.reduce((a, i) => a + surprisal[i], 0) / idx.length;
    idx.forEach((i) => (out[i] = alpha * (surprisal[i] - mean)));
  }
  return out;
}
