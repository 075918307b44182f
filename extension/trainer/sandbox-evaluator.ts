/**
 * Round measurement in the sandbox from its exact game values (extension/sandbox/gamevalues.ts): the
 * defender's compliance with every enumerated prompt is exact, so its exploitability, plain refusal
 * and over-refusal are exact; the attacker's side is sampled from its rewrites, with a 95% interval.
 */
import { intentById } from '../sandbox/intents';
import type { Attack } from '../sandbox/tactics';
import { attackerValues, bestResponse, capability, complianceTable, payoff, rates, sampleRewrites, nashConv, ComplianceTable, Rewrite } from '../sandbox/gamevalues';
import { PolicyEngine, PolicyName } from '../engine/policy-engine';
import { normalHalfWidth } from '../util/stats';
import { Contestant, CrossplayCell, Evaluator, Players, RoundMeasurement } from './round-evaluator';
import { GameSettings } from './game';
import { Judge } from './judges/judge';
import { RolePrompts } from './role-prompts';

export interface SandboxEvaluatorOptions {
  engine: PolicyEngine;
  judge: Judge;
  prompts: RolePrompts;
  game: GameSettings;
  samplesPerSeed: number;
  seed: number;
}

const plainOf = (cls: string) => (a: Attack) => a.tactics.length === 0 && intentById(a.intent).class === cls;

/**
 * Attack success on harmful seeds: a valid rewrite succeeds with P(comply) (the game's payoff, which
 * reads only the public part of a rewrite), an invalid one never.
 */
function attackSuccess(rewrites: readonly Rewrite[], table: ComplianceTable): CrossplayCell {
  const values = rewrites.filter((r) => r.seed.harmful).map((r) => Math.max(0, payoff(table, r.seed, r.text)));
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : 0;
  const variance = n > 1 ? values.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : 0;
  return { asr: mean, ci95: normalHalfWidth(variance, n) };
}

export class SandboxEvaluator implements Evaluator {
  readonly method = 'exact' as const;
  private evaluations = 0;
  /** What each round measured: its defender's table and its attacker's rewrites, reused by cross-play. */
  private readonly measured = new Map<number, { table: ComplianceTable; rewrites: Rewrite[] }>();

  constructor(private readonly o: SandboxEvaluatorOptions) {}

  private table(policy: PolicyName): Promise<ComplianceTable> {
    // The base is frozen and cached by gamevalues; a trained policy is recomputed each time.
    return complianceTable({ engine: this.o.engine, policy }, policy === null ? {} : { cacheKey: `eval-${this.evaluations++}` });
  }

  private rewrites(attacker: PolicyName, salt: number): Promise<Rewrite[]> {
    return sampleRewrites({ engine: this.o.engine, policy: attacker }, {
      samplesPerSeed: this.o.samplesPerSeed,
      seed: this.o.seed * 1000 + salt,
      temperature: this.o.game.temperature,
      maxNewTokens: this.o.game.maxNewTokens.attacker,
    });
  }

  async measureRound(players: Players, round?: number): Promise<RoundMeasurement> {
    const table = await this.table(players.defender);
    const h = this.o.game.harmfulFraction;
    const best = bestResponse(table, h);
    const rewrites = await this.rewrites(players.attacker, this.evaluations);
    if (round !== undefined) this.measured.set(round, { table, rewrites });
    const attacker = attackerValues(rewrites, table, h);
    const nc = nashConv(best, attacker);
    const cap = await capability({ engine: this.o.engine, policy: players.defender });
    return {
      metrics: {
        nash_gap: nc.value,
        'exploitability/defender': best.exploitability,
        'gap/attacker': attacker.gap.value,
        'asr/best_response': best.harmful,
        'over_refusal/best_response': best.benign,
        'asr/trained_attacker': attackSuccess(rewrites, table).asr,
        'refusal/plain_harmful': rates(table, plainOf('harmful')).refuse,
        over_refusal: rates(table, plainOf('benign')).refuse,
        'over_refusal/looks_harmful': rates(table, plainOf('looks-harmful')).refuse,
        capability: cap.accuracy,
        'valid_rewrites/attacker': h * attacker.validHarmful + (1 - h) * attacker.validBenign,
      },
      nashGap: {
        method: 'exact',
        nashGap: nc.value,
        defenderExploitability: best.exploitability,
        attackerGap: attacker.gap.value,
        bestResponseAsr: best.harmful,
        perSeed: best.perSeed.map((s) => ({ seed: s.seed, best_prompt: s.prompt, value: s.value })),
        budget: null,
      },
    };
  }

  /**
   * A player measured in a round of this process is not measured again: its weights are the ones
   * saved that round, so its table (exact) and rewrites (a sample of the same distribution) stand.
   */
  async crossplay(attackers: readonly Contestant[], defenders: readonly Contestant[]): Promise<{ cells: CrossplayCell[][]; samples: number }> {
    const known = (c: Contestant) => (typeof c.round === 'number' ? this.measured.get(c.round) : undefined);
    const tables: ComplianceTable[] = [];
    for (const d of defenders) tables.push(known(d)?.table ?? (await this.table(d.policy)));
    const cells: CrossplayCell[][] = [];
    let samples = 0;
    for (const [i, a] of attackers.entries()) {
      const rewrites = known(a)?.rewrites ?? (await this.rewrites(a.policy, 5000 + i));
      samples = rewrites.filter((r) => r.seed.harmful).length;
      cells.push(tables.map((t) => attackSuccess(rewrites, t)));
    }
    return { cells, samples };
  }
}

