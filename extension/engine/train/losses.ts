/**
 * The losses the project trains with, as graph nodes over per-token log-probabilities lp[b, t] (the
 * model's log p of the token it should predict at position t). `weights` carries both the mask (0 on
 * prompt and padding tokens) and the normaliser, so a loss is always Σ w·ℓ and gradient accumulation
 * over micro-batches is a plain sum.
 */
import { Graph, Tensor } from '../graph/graph';

/** Token-level cross-entropy: Σ w·(−lp). With w = mask / #predicted tokens it is the pooled mean NLL. */
export function nllLoss(g: Graph, lp: Tensor, weights: Tensor): Tensor {
  return g.neg(g.reduceSum(g.mul(weights, lp), [0, 1], false));
}

export interface PolicyGradientInputs {
  weights: Tensor;
  advantages: Tensor;
  /** log-probabilities under the behaviour policy that sampled the tokens. */
  oldLogprobs: Tensor;
  /** log-probabilities under the frozen base (the anchor). */
  refLogprobs: Tensor;
  /** Scalars: PPO clip ε and the coefficients of the k1 and k3 KL estimators. */
  clipEps: Tensor;
  klK1: Tensor;
  klK3: Tensor;
}

/**
 * REINFORCE++ / GRPO objective per token: −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) with ρ = exp(lp − old), plus
 * β₁·k1 + β₃·k3 where k1 = lp − ref and k3 = exp(ref − lp) − (ref − lp) − 1 (Schulman's estimators of
 * KL(π‖π_ref)). Returns the loss and the per-token terms.
 */
export function policyGradientLoss(g: Graph, lp: Tensor, x: PolicyGradientInputs): { loss: Tensor; tokenLoss: Tensor } {
  const one = g.scalar(1, lp);
  const ratio = g.exp(g.sub(lp, x.oldLogprobs));
  const clipped = g.clip(ratio, g.sub(one, x.clipEps), g.add(one, x.clipEps));
  const pg = g.neg(g.min(g.mul(ratio, x.advantages), g.mul(clipped, x.advantages)));
  const k1 = g.sub(lp, x.refLogprobs);
  const logRatioRef = g.sub(x.refLogprobs, lp);
  const k3 = g.sub(g.sub(g.exp(logRatioRef), logRatioRef), one);
  const tokenLoss = g.add(pg, g.add(g.mul(x.klK1, k1), g.mul(x.klK3, k3)));
  return { loss: g.reduceSum(g.mul(x.weights, tokenLoss), [0, 1], false), tokenLoss };
}
