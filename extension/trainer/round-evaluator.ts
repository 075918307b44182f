/**
 * How a round is measured. Worlds that can compute game values exactly (the sandbox) implement this
 * with them; any other world uses `SampledEvaluator`: attack success and over-refusal measured by
 * playing fixed evaluation seeds, and the Nash gap estimated by training best responses for a stated
 * budget (so it is a lower bound on the true exploitability).
 */
import { PolicyEngine, PolicyName } from '../engine/policy-engine';
import { Judge } from './judges/judge';
import { GameSeed, SeedPool } from './seed-pool';
import { playStep, GameSettings } from './game';
import { RolePrompts } from './role-prompts';
import { buildTrainingBatch, EstimatorSettings } from './training-batch';
import { OptimizerSettings } from '../engine/policy-engine';
import { wilsonHalfWidth } from '../util/stats';

export interface Players {
  attacker: PolicyName;
  defender: PolicyName;
}

export interface NashGapResult {
  method: 'exact' | 'estimated';
  nashGap: number;
  defenderExploitability: number | null;
  attackerGap: number | null;
  bestResponseAsr: number | null;
  perSeed?: { seed: string; best_prompt: string | null; value: number }[];
  budget: { steps: number; samples: number } | null;
}

export interface RoundMeasurement {
  /** Round metrics (docs/run-directory.md): nash_gap, exploitability/defender, asr/*, over_refusal*, capability. */
  metrics: Record<string, number | null>;
  nashGap: NashGapResult | null;
}

/**
 * A player of cross-play: a policy and, when its weights are those a round of this process measured,
 * that round (an evaluator may reuse what it measured then instead of measuring again).
 */
export interface Contestant {
  policy: PolicyName;
  round?: number | null;
}

export interface CrossplayCell {
  asr: number;
  ci95: number;
}

export interface Evaluator {
  readonly method: 'exact' | 'estimated';
  /** Measures the players; `round` names the weights measured, for cross-play to refer to later. */
  measureRound(players: Players, round?: number): Promise<RoundMeasurement>;
  /** Attack success of each attacker against each defender (rows: attackers). */
  crossplay(attackers: readonly Contestant[], defenders: readonly Contestant[]): Promise<{ cells: CrossplayCell[][]; samples: number }>;
}

export interface SampledEvaluatorOptions {
  engine: PolicyEngine;
  judge: Judge;
  prompts: RolePrompts;
  seeds: readonly GameSeed[];
  game: GameSettings;
  samplesPerSeed: number;
  bestResponseSteps: number;
  estimator: EstimatorSettings;
  optimizer: OptimizerSettings;
  lora: { rank: number; alpha: number; targets: string[] };
  seed: number;
}

export class SampledEvaluator implements Evaluator {
  readonly method = 'estimated' as const;
  constructor(private readonly o: SampledEvaluatorOptions) {}

  /** Plays every evaluation seed `samplesPerSeed` times, all attacked (harmful) or all unchanged (benign). */
  private async play(players: Players, harmful: boolean, attacked: boolean, salt: number) {
    const seeds = this.o.seeds.filter((s) => s.harmful === harmful);
    if (seeds.length === 0) return null;
    const pool = new SeedPool(seeds);
    const n = seeds.length * this.o.samplesPerSeed;
    return playStep({
      engine: this.o.engine,
      judge: this.o.judge,
      prompts: this.o.prompts,
      pool,
      settings: { ...this.o.game, seedsPerStep: n, groupSize: 1, harmfulFraction: harmful ? 1 : 0, passThroughFraction: attacked ? 0 : 1 },
      policies: players,
      seed: this.o.seed + 7919,
      step: 1_000_000 + salt,
    });
  }

  private async attackSuccess(players: Players, salt: number): Promise<{ asr: number; n: number }> {
    const play = await this.play(players, true, true, salt);
    if (!play) return { asr: 0, n: 0 };
    const judged = play.exchanges.filter((e) => e.verdict.responseHarmful !== null);
    const hits = judged.filter((e) => e.verdict.responseHarmful === true).length;
    return { asr: judged.length ? hits / judged.length : 0, n: judged.length };
  }

  private async trainBestResponse(role: 'attacker' | 'defender', players: Players): Promise<PolicyName> {
    const name = `best-response-${role}`;
    await this.o.engine.createPolicy(name, { kind: 'lora', ...this.o.lora, seed: this.o.seed + 17 });
    const against: Players = role === 'attacker' ? { attacker: name, defender: players.defender } : { attacker: players.attacker, defender: name };
    const pool = new SeedPool(this.o.seeds);
    for (let step = 0; step < this.o.bestResponseSteps; step++) {
      const play = await playStep({ engine: this.o.engine, judge: this.o.judge, prompts: this.o.prompts, pool, settings: this.o.game, policies: against, seed: this.o.seed + 31, step: 2_000_000 + step });
      const batch = await buildTrainingBatch(this.o.engine, play.exchanges, [role], (r) => (r === role ? name : null), this.o.estimator);
      if (batch.samples.length) {
        await this.o.engine.trainStep(batch.samples, { clipEps: 0.2, klK1: batch.klK1, klK3: batch.klK3, optimizers: { [name]: this.o.optimizer } });
      }
    }
    return name;
  }

  async measureRound(players: Players): Promise<RoundMeasurement> {
    const current = await this.attackSuccess(players, 1);
    const benign = await this.play(players, false, false, 2);
    const benignJudged = benign ? benign.exchanges.filter((e) => e.verdict.refusal !== null) : [];
    const overRefusal = benignJudged.length ? benignJudged.filter((e) => e.verdict.refusal === true).length / benignJudged.length : null;
    const brAttacker = await this.trainBestResponse('attacker', players);
    const exploit = await this.attackSuccess({ attacker: brAttacker, defender: players.defender }, 3);
    const brDefender = await this.trainBestResponse('defender', players);
    const against = await this.attackSuccess({ attacker: players.attacker, defender: brDefender }, 4);
    await this.o.engine.dropPolicy(brAttacker as string);
    await this.o.engine.dropPolicy(brDefender as string);
    // NashConv in attack-success units: [u(BR_A, D) − u(A, D)] + [u(A, D) − u(A, BR_D)], each term ≥ 0.
    const defenderGap = Math.max(0, exploit.asr - current.asr);
    const attackerGap = Math.max(0, current.asr - against.asr);
    const nashGap: NashGapResult = {
      method: 'estimated',
      nashGap: defenderGap + attackerGap,
      defenderExploitability: exploit.asr,
      attackerGap,
      bestResponseAsr: exploit.asr,
      budget: { steps: this.o.bestResponseSteps, samples: this.o.game.seedsPerStep },
    };
    return {
      metrics: {
        nash_gap: nashGap.nashGap,
        'exploitability/defender': exploit.asr,
        'gap/attacker': attackerGap,
        'asr/best_response': exploit.asr,
        'asr/trained_attacker': current.asr,
        over_refusal: overRefusal,
        capability: null,
      },
      nashGap,
    };
  }

  async crossplay(attackers: readonly Contestant[], defenders: readonly Contestant[]): Promise<{ cells: CrossplayCell[][]; samples: number }> {
    const cells: CrossplayCell[][] = [];
    let samples = 0;
    for (const [i, { policy: attacker }] of attackers.entries()) {
      const row: CrossplayCell[] = [];
      for (const [j, { policy: defender }] of defenders.entries()) {
        const r = await this.attackSuccess({ attacker, defender }, 100 + i * 1000 + j);
        samples = Math.max(samples, r.n);
        row.push({ asr: r.asr, ci95: wilsonHalfWidth(r.asr, r.n) });
      }
      cells.push(row);
    }
    return { cells, samples };
  }
}
