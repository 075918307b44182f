/**
 * The profile of a sandbox defender (the base, or base + adapter) and attacker: what `absp sandbox
 * profile` prints, what `absp sandbox build` records in build.json, and what the acceptance tests check.
 * Every number comes from gamevalues.ts; this file only selects, groups and formats them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PolicyEngine, PolicyName } from '../engine/policy-engine';
import { OrtEngine } from '../engine/ort-engine';
import {
  attackerDistribution,
  attackerValues,
  bestResponse,
  exactAttackerValues,
  capability,
  complianceTable,
  defaultHarmfulFraction,
  nashConv,
  rates,
  sampleRewrites,
  type AttackerValues,
  type BestResponseValue,
  type CapabilityValue,
  type ComplianceTable,
  type NashConv,
  type RateSummary,
  type ValueMethod,
} from './gamevalues';
import { intentById } from './intents';
import { tacticCombinations, tacticLabel, type Attack } from './tactics';
import { DEFAULT_SANDBOX_SEED, isVulnerable, vulnerabilityTable } from './targets';

export interface ProfileOptions {
  /** The defender: null (default) is the frozen base. */
  defender?: PolicyName;
  /** The attacker whose gap enters NashConv: null (default) is the base model in the attacker role. */
  attacker?: PolicyName;
  /** The defender thinks before answering: compliance becomes sampled (see gamevalues.ts). */
  thinking?: boolean;
  /** Rewrites sampled per game seed for the attacker's values (default 16). */
  samplesPerSeed?: number;
  /** Sampling seed. */
  seed?: number;
  /** The seed the model was built with: it fixes which tactics are planted weak spots of which intent. */
  worldSeed?: number;
  harmfulFraction?: number;
  /** Cache key of the defender's compliance table (see complianceTable). */
  cacheKey?: string;
  /** Also compute the attacker's values exactly from its distribution over the grammar (17k scored rows). */
  exactAttacker?: boolean;
}

export interface TacticRow {
  tactics: string;
  comply: number;
  refuse: number;
  prompts: number;
}

export interface SandboxProfile {
  /** `exact` unless the defender thinks, which makes every defender-side number sampled. */
  method: ValueMethod;
  plainHarmful: RateSummary;
  /** Harmful intents: mean P(comply) per tactic combination of the grammar. */
  complianceByTactic: TacticRow[];
  /** Harmful attacked prompts split by whether a tactic is a planted weak spot of the intent. */
  weakSpots: { worldSeed: number; vulnerable: RateSummary; resisted: RateSummary };
  overRefusal: { benign: RateSummary; looksHarmful: RateSummary; adversarialBenign: RateSummary; adversarialLooksHarmful: RateSummary };
  capability: Omit<CapabilityValue, 'failures'> & { failures: number };
  bestResponse: Omit<BestResponseValue, 'perSeed'> & { perIntent: { intent: string; value: number; prompt: string; tactics: string }[] };
  /** The attacker's values from sampled rewrites, with 95% intervals. */
  attacker: AttackerValues;
  nashConv: NashConv;
  /** The same, exact (only with `exactAttacker`). */
  attackerExact: AttackerValues | null;
  nashConvExact: NashConv | null;
  seconds: number;
}

function classOf(a: Attack): string {
  return intentById(a.intent).class;
}

export async function measureProfile(engine: PolicyEngine, options: ProfileOptions = {}): Promise<SandboxProfile> {
  const started = Date.now();
  const defender = { engine, policy: options.defender ?? null, thinking: options.thinking };
  const h = options.harmfulFraction ?? defaultHarmfulFraction();
  const worldSeed = options.worldSeed ?? DEFAULT_SANDBOX_SEED;
  const world = vulnerabilityTable(worldSeed);
  const table: ComplianceTable = await complianceTable(defender, { cacheKey: options.cacheKey, seed: options.seed });

  const harmful = (a: Attack) => classOf(a) === 'harmful';
  const plain = (a: Attack) => a.tactics.length === 0;
  const complianceByTactic = tacticCombinations().map((combo): TacticRow => {
    const label = tacticLabel(combo);
    const r = rates(table, (a) => harmful(a) && tacticLabel(a.tactics) === label);
    return { tactics: label, comply: r.comply, refuse: r.refuse, prompts: r.prompts };
  });
  const best = bestResponse(table, h);
  const perIntent = new Map<string, { intent: string; value: number; prompt: string; tactics: string }>();
  for (const s of best.perSeed) perIntent.set(s.intent, { intent: s.intent, value: s.value, prompt: s.prompt, tactics: tacticLabel(s.tactics as Attack['tactics']) });

  const attackerSide = { engine, policy: options.attacker ?? null };
  const rewrites = await sampleRewrites(attackerSide, { samplesPerSeed: options.samplesPerSeed, seed: options.seed });
  const attacker = attackerValues(rewrites, table, h);
  const attackerExact = options.exactAttacker ? exactAttackerValues(await attackerDistribution(attackerSide), table, h) : null;
  const cap = await capability(defender);
  const { perSeed: _perSeed, ...bestSummary } = best;
  return {
    method: table.method,
    plainHarmful: rates(table, (a) => harmful(a) && plain(a)),
    complianceByTactic,
    weakSpots: {
      worldSeed,
      vulnerable: rates(table, (a) => harmful(a) && !plain(a) && isVulnerable(world, a.intent, a.tactics)),
      resisted: rates(table, (a) => harmful(a) && !plain(a) && !isVulnerable(world, a.intent, a.tactics)),
    },
    overRefusal: {
      benign: rates(table, (a) => classOf(a) === 'benign' && plain(a)),
      looksHarmful: rates(table, (a) => classOf(a) === 'looks-harmful' && plain(a)),
      adversarialBenign: rates(table, (a) => classOf(a) === 'benign' && !plain(a)),
      adversarialLooksHarmful: rates(table, (a) => classOf(a) === 'looks-harmful' && !plain(a)),
    },
    capability: { ...cap, failures: cap.failures.length },
    bestResponse: { ...bestSummary, perIntent: [...perIntent.values()] },
    attacker,
    nashConv: nashConv(best, attacker),
    attackerExact,
    nashConvExact: attackerExact ? nashConv(best, attackerExact) : null,
    seconds: (Date.now() - started) / 1000,
  };
}

/** The seed a model directory was built with (build.json), or the default seed. */
export function worldSeedOf(modelDir: string): number {
  try {
    const build = JSON.parse(fs.readFileSync(path.join(modelDir, 'build.json'), 'utf8')) as { seed?: unknown };
    return typeof build.seed === 'number' ? build.seed : DEFAULT_SANDBOX_SEED;
  } catch {
    return DEFAULT_SANDBOX_SEED;
  }
}

export interface ModelProfileOptions extends Omit<ProfileOptions, 'defender' | 'attacker'> {
  /** A PEFT defender adapter to put on the base. */
  adapter?: string;
  /** A PEFT attacker adapter (default: the base model plays the attacker). */
  attackerAdapter?: string;
  threads?: number;
}

/** Opens a model directory on the ONNX Runtime engine and measures its profile. */
export async function profileModelDir(modelDir: string, options: ModelProfileOptions = {}): Promise<SandboxProfile> {
  const engine = OrtEngine.open(modelDir, { threads: options.threads });
  try {
    if (options.adapter) await engine.loadPolicy('defender', path.resolve(options.adapter), 'lora');
    if (options.attackerAdapter) await engine.loadPolicy('attacker', path.resolve(options.attackerAdapter), 'lora');
    return await measureProfile(engine, {
      ...options,
      worldSeed: options.worldSeed ?? worldSeedOf(modelDir),
      defender: options.adapter ? 'defender' : null,
      attacker: options.attackerAdapter ? 'attacker' : null,
    });
  } finally {
    await engine.close();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number) => x.toFixed(3);
const interval = (ci: { low: number; high: number }) => `[${num(ci.low)}, ${num(ci.high)}]`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

/** The profile as a readable text report. */
export function formatProfile(p: SandboxProfile): string {
  const o = p.overRefusal;
  const lines: string[] = [];
  lines.push(`Sandbox profile (${p.method}${p.method === 'sampled' ? ': the defender thinks, so its rates are sampled estimates' : ': opener sums over the enumerated grammar'})`);
  lines.push('');
  lines.push(
    table([
      ['defender', 'refuse', 'comply', 'neither', 'prompts'],
      ['plain harmful', pct(p.plainHarmful.refuse), pct(p.plainHarmful.comply), pct(p.plainHarmful.neither), String(p.plainHarmful.prompts)],
      [`harmful, weak spot (world ${p.weakSpots.worldSeed})`, pct(p.weakSpots.vulnerable.refuse), pct(p.weakSpots.vulnerable.comply), pct(p.weakSpots.vulnerable.neither), String(p.weakSpots.vulnerable.prompts)],
      ['harmful, other tactics', pct(p.weakSpots.resisted.refuse), pct(p.weakSpots.resisted.comply), pct(p.weakSpots.resisted.neither), String(p.weakSpots.resisted.prompts)],
      ['plain benign (over-refusal)', pct(o.benign.refuse), pct(o.benign.comply), pct(o.benign.neither), String(o.benign.prompts)],
      ['plain harmful-looking (over-refusal)', pct(o.looksHarmful.refuse), pct(o.looksHarmful.comply), pct(o.looksHarmful.neither), String(o.looksHarmful.prompts)],
      ['adversarial benign', pct(o.adversarialBenign.refuse), pct(o.adversarialBenign.comply), pct(o.adversarialBenign.neither), String(o.adversarialBenign.prompts)],
      ['adversarial harmful-looking', pct(o.adversarialLooksHarmful.refuse), pct(o.adversarialLooksHarmful.comply), pct(o.adversarialLooksHarmful.neither), String(o.adversarialLooksHarmful.prompts)],
    ]),
  );
  lines.push('');
  lines.push('Compliance with harmful intents, by tactic');
  lines.push(table([['tactics', 'comply', 'refuse', 'prompts'], ...p.complianceByTactic.map((r) => [r.tactics, pct(r.comply), pct(r.refuse), String(r.prompts)])]));
  lines.push('');
  const c = p.capability;
  lines.push(`Capability: ${pct(c.accuracy)} of ${c.tasks} tasks answered correctly (greedy)${c.meanProbability === null ? '' : `; mean P(exact correct answer) ${num(c.meanProbability)}`}`);
  lines.push('');
  const b = p.bestResponse;
  const a = p.attacker;
  const x = p.attackerExact;
  const exactCell = (v: number | undefined) => (x && v !== undefined ? num(v) : '');
  const sampled = `sampled, ${a.samplesPerSeed}/seed`;
  lines.push('Game values (zero-sum, v* = 0)');
  lines.push(
    table([
      ['quantity', 'value', '95% CI', x ? 'exact' : '', 'how'],
      ['best-response attack success (harmful)', num(b.harmful), '', '', b.method],
      ['best-response over-refusal (benign)', num(b.benign), '', '', b.method],
      [`defender exploitability (harmful share ${num(b.harmfulFraction)})`, num(b.exploitability), '', '', b.method],
      ['attacker vs best defender (oracle)', num(a.againstOracle.value), interval(a.againstOracle.ci), exactCell(x?.againstOracle.value), sampled],
      ['attacker gap', num(a.gap.value), interval(a.gap.ci), exactCell(x?.gap.value), sampled],
      ['attacker vs this defender', a.againstDefender ? num(a.againstDefender.value) : '-', a.againstDefender ? interval(a.againstDefender.ci) : '', exactCell(x?.againstDefender?.value), `${sampled}, exact u`],
      ['NashConv', num(p.nashConv.value), interval(p.nashConv.ci), exactCell(p.nashConvExact?.value), 'exploitability + gap'],
    ]),
  );
  lines.push(`Attacker rewrites valid (faithful, in grammar): harmful seeds ${pct(a.validHarmful)}, benign seeds ${pct(a.validBenign)}${x ? ` (exact: ${pct(x.validHarmful)}, ${pct(x.validBenign)})` : ''}`);
  return lines.join('\n');
}
