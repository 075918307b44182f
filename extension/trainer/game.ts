/**
 * One step of the red-teaming game (Self-RedTeam's protocol, generalised): draw seeds, let the
 * attacker rewrite some of them, let the defender answer, judge, and reward. Rollouts of both roles
 * share batched passes: the attacker's rewrites and the defender's answers to unattacked seeds go
 * in one call, so the frozen base runs once for both adapters.
 */
import { Rng } from '../util/rng';
import { EngineError, PolicyEngine, GeneratedText, PolicyName } from '../engine/policy-engine';
import { Judge, JudgeItem } from './judges/judge';
import { ExchangeRewards, RewardConfig, computeRewards } from './rewards';
import type { ChatMessage } from '../engine/model/tokenizer';
import { RolePrompts, TurnHistory } from './role-prompts';
import type { Role } from '../rundir/schema';
import { GameSeed, SeedPool } from './seed-pool';
import { splitOutput } from './thoughts';
import { checkRolloutFingerprints } from './fingerprints';
import { Verdict } from './verdict';
import { groupNovelty } from './diversity';

export interface PlayedUtterance {
  raw: string;
  text: string;
  thought: string | null;
  wellFormed: boolean;
}

/** One generation of a role, with what training needs: the exact prompt and sampled tokens. */
export interface RoleTurn {
  role: Role;
  turn: number;
  promptIds: number[];
  tokens: number[];
  logprobs: number[];
  /** The fingerprint of the weights that sampled it (null: the frozen base; undefined: not reported). */
  fingerprint?: string | null;
}

export interface PlayedExchange {
  index: number;
  seed: GameSeed;
  /** The policy that wrote the attack: the trained attacker, or a past one from the opponent pool. */
  attackerPolicy: PolicyName;
  /** Exchanges drawn from the same seed instance share a group (GRPO's baseline). */
  group: number;
  attacked: boolean;
  turns: { attacker: PlayedUtterance | null; defender: PlayedUtterance }[];
  generations: RoleTurn[];
  verdict: Verdict;
  /** null when a judge label was unparsable: the exchange is dropped from the update. */
  rewards: ExchangeRewards | null;
}

export interface GameSettings {
  seedsPerStep: number;
  groupSize: number;
  harmfulFraction: number;
  passThroughFraction: number;
  turns: number;
  thinking: { attacker: boolean; defender: boolean };
  maxNewTokens: { attacker: number; defender: number };
  temperature: number;
  topP: number;
  rewards: RewardConfig;
  /**
   * Weight of the attacker's novelty term (0: none): a well-formed, faithful rewrite earns
   * weight · (1 − BLEU-4 against the step's rewrites of other seed instances), so once every valid
   * attack ties the attacker is still paid for trying a kind of attack the batch does not already hold.
   */
  attackerNovelty?: number;
}

export interface StepPlay {
  exchanges: PlayedExchange[];
  generatedTokens: number;
  /** Rows whose prompt left less than their token budget in the model's context (their output was cut). */
  warnings: string[];
}

interface Live {
  seed: GameSeed;
  group: number;
  attacked: boolean;
  attackerPolicy: PolicyName;
  history: TurnHistory[];
  prompts: string[];
  answers: string[];
  turns: { attacker: PlayedUtterance | null; defender: PlayedUtterance }[];
  generations: RoleTurn[];
}

function rowSeed(base: number, step: number, index: number, turn: number, role: Role): number {
  // A stable per-row seed, so a row samples the same whatever else shares its batch.
  let h = (base * 0x9e3779b1) ^ (step * 0x85ebca6b) ^ (index * 0xc2b2ae35) ^ (turn * 0x27d4eb2f) ^ (role === 'attacker' ? 0x165667b1 : 0);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

export async function playStep(options: {
  engine: PolicyEngine;
  judge: Judge;
  prompts: RolePrompts;
  pool: SeedPool;
  settings: GameSettings;
  policies: { attacker: PolicyName; defender: PolicyName };
  /**
   * Fictitious play: this share of the attacked seed instances is rewritten by `policy` (a past
   * attacker) instead of the trained one. The defender learns from those exchanges; the attacker does not.
   */
  opponent?: { policy: PolicyName; share: number } | null;
  /**
   * Attack replay (attack-replay.ts): this share of the seed instances passed through unchanged is
   * replaced by one of `seeds`, earlier successful attacks; the defender answers them like any
   * prompt passed through.
   */
  replay?: { seeds: readonly GameSeed[]; share: number } | null;
  seed: number;
  step: number;
  /** The trainer's current fingerprint of each policy; every rollout must match it. */
  fingerprints?: ReadonlyMap<string, string>;
}): Promise<StepPlay> {
  const { engine, settings: s, policies } = options;
  const rng = new Rng(options.seed, options.step + 1);
  const seeds = options.pool.draw(s.seedsPerStep, s.harmfulFraction, rng);
  const live: Live[] = [];
  const opponent = options.opponent && options.opponent.share > 0 ? options.opponent : null;
  const opponentRng = new Rng(options.seed, 700_000 + options.step);
  const replay = options.replay && options.replay.share > 0 && options.replay.seeds.length > 0 ? options.replay : null;
  const replayRng = new Rng(options.seed, 900_000 + options.step);
  seeds.forEach((drawn, group) => {
    // A seed instance is attacked or passed through as a whole group, so GRPO compares like with like.
    const attacked = rng.uniform() >= s.passThroughFraction;
    const replayed = !attacked && replay !== null && replayRng.uniform() < replay.share;
    const seed = replayed ? replay!.seeds[Math.floor(replayRng.uniform() * replay!.seeds.length)] : drawn;
    const pooled = attacked && opponent !== null && opponentRng.uniform() < opponent.share;
    const attackerPolicy = pooled ? opponent!.policy : policies.attacker;
    for (let k = 0; k < s.groupSize; k++) live.push({ seed, group, attacked, attackerPolicy, history: [], prompts: [], answers: [], turns: [], generations: [] });
  });
  const stop = engine.stopTokens();
  const context = engine.info.maxPositions;
  let generatedTokens = 0;
  const warnings: string[] = [];
  const encodeChat = (msgs: ChatMessage[]) => engine.encodeChat(msgs, true);

  const generate = async (jobs: { ex: number; role: Role; turn: number; promptIds: number[] }[]): Promise<GeneratedText[]> => {
    if (jobs.length === 0) return [];
    // Each row's budget is what its prompt leaves of the context (the engine caps per row); a prompt
    // that leaves nothing cannot be played, and one that leaves less than the budget is said.
    for (const j of jobs) {
      const cap = j.role === 'attacker' ? s.maxNewTokens.attacker : s.maxNewTokens.defender;
      const room = context - j.promptIds.length;
      const seed = live[j.ex].seed;
      const from = `seed ${seed.source === 'sandbox' ? seed.id : `${seed.source}:${seed.id}`}`;
      if (room <= 0) {
        throw new EngineError(`the ${j.role}'s prompt for ${from} (turn ${j.turn + 1}) is ${j.promptIds.length} tokens, at or over the model's context of ${context} tokens`);
      }
      if (room < cap) warnings.push(`the ${j.role}'s prompt for ${from} (turn ${j.turn + 1}) is ${j.promptIds.length} tokens: ${room} of its ${cap} new tokens fit the model's context of ${context}, so its answer may be cut short`);
    }
    // Attacker and defender rows go in one call per token budget: the engine batches by policy.
    const limit = Math.max(...jobs.map((j) => (j.role === 'attacker' ? s.maxNewTokens.attacker : s.maxNewTokens.defender)));
    const gens = await engine.generate(
      jobs.map((j) => ({ prompt: j.promptIds, policy: j.role === 'attacker' ? live[j.ex].attackerPolicy : policies.defender, seed: rowSeed(options.seed, options.step, j.ex, j.turn, j.role) })),
      { maxNewTokens: limit, temperature: s.temperature, topP: s.topP, stopTokens: stop },
    );
    if (options.fingerprints) checkRolloutFingerprints(jobs.map((j) => ({ policy: j.role === 'attacker' ? live[j.ex].attackerPolicy : policies.defender })), gens, options.fingerprints);
    return gens.map((g, i) => {
      const cap = jobs[i].role === 'attacker' ? s.maxNewTokens.attacker : s.maxNewTokens.defender;
      if (g.tokens.length <= cap) return g;
      return { ...g, tokens: g.tokens.slice(0, cap), logprobs: g.logprobs.slice(0, cap), finish: 'length' as const };
    });
  };

  const record = (x: Live, role: Role, turn: number, promptIds: number[], g: GeneratedText): PlayedUtterance => {
    generatedTokens += g.tokens.length;
    x.generations.push({ role, turn, promptIds, tokens: g.tokens, logprobs: g.logprobs, fingerprint: g.fingerprint });
    const raw = engine.decode(g.tokens);
    const split = splitOutput(raw, s.thinking[role]);
    // A generation cut off by the token limit is not a finished utterance.
    return { raw, text: split.answer, thought: split.thought, wellFormed: split.wellFormed && g.finish === 'stop' };
  };

  for (let turn = 0; turn < s.turns; turn++) {
    // Phase 1: attacker moves, plus the defender's answers to seeds passed through unchanged.
    const phase1: { ex: number; role: Role; turn: number; promptIds: number[] }[] = [];
    live.forEach((x, ex) => {
      if (x.attacked) phase1.push({ ex, role: 'attacker', turn, promptIds: encodeChat(options.prompts.attacker(x.seed, x.history)) });
      else if (turn === 0) phase1.push({ ex, role: 'defender', turn, promptIds: encodeChat(options.prompts.defender([x.seed.prompt], [])) });
    });
    const out1 = await generate(phase1);
    const pendingDefender: { ex: number; role: Role; turn: number; promptIds: number[] }[] = [];
    const attackerUtterances = new Map<number, PlayedUtterance>();
    phase1.forEach((job, i) => {
      const x = live[job.ex];
      const u = record(x, job.role, turn, job.promptIds, out1[i]);
      if (job.role === 'attacker') {
        attackerUtterances.set(job.ex, u);
        x.prompts.push(u.text);
        pendingDefender.push({ ex: job.ex, role: 'defender', turn, promptIds: encodeChat(options.prompts.defender(x.prompts, x.answers)) });
      } else {
        x.prompts.push(x.seed.prompt);
        x.answers.push(u.raw);
        x.turns.push({ attacker: null, defender: u });
      }
    });
    // Phase 2: the defender answers this turn's attacks.
    const out2 = await generate(pendingDefender);
    pendingDefender.forEach((job, i) => {
      const x = live[job.ex];
      const d = record(x, 'defender', turn, job.promptIds, out2[i]);
      const a = attackerUtterances.get(job.ex)!;
      x.answers.push(d.raw);
      x.turns.push({ attacker: a, defender: d });
      x.history.push({ attackerRaw: a.raw, attackerText: a.text, defenderRaw: d.raw, defenderText: d.text });
    });
  }

  // The judge scores each exchange's last turn.
  const items: JudgeItem[] = live.map((x) => {
    const last = x.turns[x.turns.length - 1];
    return {
      seed: x.seed,
      attackerRaw: last.attacker ? last.attacker.raw : null,
      prompt: last.attacker ? last.attacker.text : x.seed.prompt,
      defenderRaw: last.defender.raw,
      response: last.defender.text,
      attackerWellFormed: x.attacked ? x.turns.every((t) => t.attacker?.wellFormed === true) : null,
      defenderWellFormed: x.turns.every((t) => t.defender.wellFormed),
    };
  });
  const verdicts = await options.judge.judge(items);
  const exchanges = live.map((x, index) => ({
    index,
    seed: x.seed,
    attackerPolicy: x.attacked ? x.attackerPolicy : null,
    group: x.group,
    attacked: x.attacked,
    turns: x.turns,
    generations: x.generations,
    verdict: verdicts[index],
    rewards: computeRewards(x.seed.harmful, x.attacked, verdicts[index], s.rewards),
  }));
  if (s.attackerNovelty) addAttackerNovelty(exchanges, s.attackerNovelty);
  return { exchanges, generatedTokens, warnings };
}

/** Adds the novelty term (GameSettings.attackerNovelty) to the attacker's reward of valid rewrites. */
export function addAttackerNovelty(exchanges: PlayedExchange[], weight: number): void {
  const attacked = exchanges.filter((e) => e.attacked);
  const texts = attacked.map((e) => e.generations.filter((g) => g.role === 'attacker').flatMap((g) => g.tokens));
  const novelty = groupNovelty(texts, attacked.map((e) => e.group));
  attacked.forEach((e, i) => {
    if (!e.rewards || e.rewards.attacker === null || e.verdict.wellFormed.attacker !== true || e.verdict.faithful !== true) return;
    const bonus = weight * novelty[i];
    e.rewards.components['attacker/novelty'] = bonus;
    e.rewards.attacker += bonus;
  });
}
