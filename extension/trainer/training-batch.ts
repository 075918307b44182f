/**
 * Turns a played step into policy-gradient samples: each role generation of a kept exchange becomes a
 * row (its exact prompt tokens plus the sampled tokens), with per-token advantages from the chosen
 * estimator, the behaviour log-probs recorded at sampling, and the frozen base's log-probs (the anchor).
 * Token weights make each role's loss a mean over that role's generated tokens.
 */
import { PolicyEngine, TrainSample } from '../engine/policy-engine';
import { HelpfulExample } from './helpful-data';
import { RolePrompts } from './role-prompts';
import { groupEntropyBonus, grpo, reinforcePlusPlus } from './estimators';
import { PlayedExchange, RoleTurn } from './game';
import type { Role } from '../rundir/schema';

export interface EstimatorSettings {
  estimator: 'reinforce++' | 'grpo';
  klCoef: number;
  klEstimator: 'k1' | 'k3';
  klInReward: boolean;
  gamma: number;
  /** Entropy bonus α per role (0: none); see estimators.ts. */
  entropyBonus?: Partial<Record<Role, number>>;
  /**
   * GRPO: leave out of the update the groups whose rewards all tie (their advantage is zero, so they
   * would add only the KL term), as DAPO's dynamic sampling does; each role's loss is then a mean
   * over the tokens of its groups that carry a signal.
   */
  dropTiedGroups?: boolean;
}

export interface BuiltBatch {
  samples: TrainSample[];
  /** Mean k1 KL to the anchor over each role's generated tokens. */
  kl: Partial<Record<Role, number>>;
  tokens: Partial<Record<Role, number>>;
  /** The loss-side KL coefficients to pass to the engine. */
  klK1: number;
  klK3: number;
}

interface RoleSample {
  exchange: PlayedExchange;
  gen: RoleTurn;
  reward: number;
  policy: string;
}

export async function buildTrainingBatch(
  engine: PolicyEngine,
  exchanges: readonly PlayedExchange[],
  roles: readonly Role[],
  policyOf: (role: Role) => string | null,
  settings: EstimatorSettings,
): Promise<BuiltBatch> {
  const rows: RoleSample[] = [];
  for (const ex of exchanges) {
    if (!ex.rewards) continue;
    for (const gen of ex.generations) {
      const policy = policyOf(gen.role);
      if (!roles.includes(gen.role) || policy === null || gen.tokens.length === 0) continue;
      // An attack written by a past attacker (fictitious play) trains the defender only.
      if (gen.role === 'attacker' && ex.attackerPolicy !== policy) continue;
      const reward = gen.role === 'attacker' ? ex.rewards.attacker : ex.rewards.defender;
      if (reward === null) continue;
      rows.push({ exchange: ex, gen, reward, policy });
    }
  }
  if (settings.estimator === 'grpo' && settings.dropTiedGroups) {
    const tied = tiedGroups(rows, settings);
    for (let i = rows.length - 1; i >= 0; i--) if (tied.has(groupKey(rows[i]))) rows.splice(i, 1);
  }
  const useLossKl = !settings.klInReward || settings.estimator === 'grpo';
  const result: BuiltBatch = {
    samples: [],
    kl: {},
    tokens: {},
    klK1: useLossKl && settings.klEstimator === 'k1' ? settings.klCoef : 0,
    klK3: useLossKl && settings.klEstimator === 'k3' ? settings.klCoef : 0,
  };
  if (rows.length === 0) return result;
  const ref = await engine.logprobs(rows.map((r) => ({ ids: [...r.gen.promptIds, ...r.gen.tokens], policy: null })));
  const genKl = rows.map((r, i) => r.gen.logprobs.map((lp, t) => lp - (ref[i][r.gen.promptIds.length + t] as number)));

  const advantages = new Array<number[]>(rows.length);
  for (const role of ['attacker', 'defender'] as const) {
    const idx = rows.map((r, i) => (r.gen.role === role ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) continue;
    const tokens = idx.reduce((n, i) => n + rows[i].gen.tokens.length, 0);
    result.tokens[role] = tokens;
    result.kl[role] = idx.reduce((s, i) => s + genKl[i].reduce((a, b) => a + b, 0), 0) / tokens;
    const alpha = settings.entropyBonus?.[role] ?? 0;
    if (settings.estimator === 'reinforce++') {
      const adv = reinforcePlusPlus(
        idx.map((i) => ({ reward: rows[i].reward, kl: genKl[i], bonus: alpha ? rows[i].gen.logprobs.map((lp) => -alpha * lp) : undefined })),
        useLossKl ? 0 : settings.klCoef,
        settings.gamma,
      );
      idx.forEach((i, k) => (advantages[i] = adv[k]));
    } else {
      const groups = idx.map((i) => rows[i].exchange.group);
      const adv = grpo(idx.map((i) => rows[i].reward), groups);
      const bonus = alpha ? groupEntropyBonus(idx.map((i) => rows[i].gen.logprobs), groups, alpha) : null;
      idx.forEach((i, k) => (advantages[i] = rows[i].gen.tokens.map(() => adv[k] + (bonus ? bonus[k] : 0))));
    }
  }
  rows.forEach((r, i) => {
    const p = r.gen.promptIds.length;
    const n = p + r.gen.tokens.length;
    const weight = 1 / result.tokens[r.gen.role]!;
    const weights = new Array<number>(n).fill(0);
    const adv = new Array<number>(n).fill(0);
    const old = new Array<number>(n).fill(0);
    const refRow = new Array<number>(n).fill(0);
    for (let t = 0; t < r.gen.tokens.length; t++) {
      weights[p + t] = weight;
      adv[p + t] = advantages[i][t];
      old[p + t] = r.gen.logprobs[t];
      refRow[p + t] = ref[i][p + t] as number;
    }
    result.samples.push({ ids: [...r.gen.promptIds, ...r.gen.tokens], policy: r.policy, weights, advantages: adv, oldLogprobs: old, refLogprobs: refRow });
  });
  return result;
}

const groupKey = (r: RoleSample) => `${r.gen.role}:${r.exchange.group}`;

/** Groups (per role) whose members all earned the same reward and get no entropy bonus. */
function tiedGroups(rows: readonly RoleSample[], settings: EstimatorSettings): Set<string> {
  const rewards = new Map<string, number[]>();
  for (const r of rows) rewards.set(groupKey(r), [...(rewards.get(groupKey(r)) ?? []), r.reward]);
  const tied = new Set<string>();
  for (const [key, rs] of rewards) {
    const role = key.split(':')[0] as Role;
    if ((settings.entropyBonus?.[role] ?? 0) === 0 && rs.every((x) => x === rs[0])) tied.add(key);
  }
  return tied;
}

/**
 * Rows of the auxiliary supervised loss on benign helpful answers, in the policy-gradient form the
 * engine trains: advantage = coef and behaviour log-probs equal to the current ones, so the ratio is
 * 1, the clip is inactive, and the gradient is exactly coef · ∇ log p of the answer (mean over its
 * tokens). The reference equals the current log-probs, so a k3 penalty adds no gradient.
 */
export async function helpfulRows(
  engine: PolicyEngine,
  prompts: RolePrompts,
  examples: readonly HelpfulExample[],
  policy: string,
  coef: number,
): Promise<TrainSample[]> {
  if (examples.length === 0 || coef === 0) return [];
  const stop = engine.stopTokens()[0];
  const rows = examples.map((ex) => {
    const prompt = engine.encodeChat(prompts.defender([ex.prompt], []), true);
    const answer = [...engine.encode(ex.response), ...(stop === undefined ? [] : [stop])];
    return { prompt, ids: [...prompt, ...answer] };
  });
  const current = await engine.logprobs(rows.map((r) => ({ ids: r.ids, policy })));
  const tokens = rows.reduce((n, r) => n + r.ids.length - r.prompt.length, 0);
  return rows.map((r, i) => {
    const answerStart = r.prompt.length;
    const weights = r.ids.map((_, t) => (t >= answerStart ? coef / tokens : 0));
    const lp = current[i].map((x) => x ?? 0);
    return { ids: r.ids, policy, weights, advantages: r.ids.map(() => 1), oldLogprobs: lp, refLogprobs: lp };
  });
}
