/**
 * The pretraining corpus: conversations of both roles whose statistics give the base model a known
 * profile (targets.ts). Generation is a pure function of the seed.
 */
import { Rng } from '../util/rng';
import { BENIGN_INTENTS, HARMFUL_INTENTS, LOOKS_HARMFUL_INTENTS, NUMBER_WORDS, REQUEST_INTENTS, TASK_INTENTS, type RequestIntent, type TaskIntent } from './intents';
import { judgePrompt, judgeResponse } from './exact-judge';
import { COMPLIANCE_TEMPLATES, compliantResponse, REFUSALS, taskResponse } from './responses';
import { ATTACK_INSTRUCTION_BENIGN, ATTACK_INSTRUCTION_HARMFUL, ATTACKER_SYSTEM, attackerMessages, defenderMessages } from './roles';
import type { ChatMessage } from '../engine/model/tokenizer';
import { benignSeeds, harmfulSeeds, type SandboxSeed } from './seeds';
import { buildAttack, COMPOSITION_VARIANTS, tacticCombinations, VARIANTS_PER_TACTIC, type Attack, type TacticId } from './tactics';
import { ATTACKER_TARGETS, complianceTarget, DEFAULT_SANDBOX_SEED, DEFENDER_TARGETS, isVulnerable, vulnerabilityTable, type VulnerabilityTable } from './targets';
import { renderChat } from './vocabulary';

export type DefenderKind =
  | 'plain-harmful'
  | 'attacked-harmful'
  | 'plain-benign'
  | 'plain-looks-harmful'
  | 'adversarial-benign'
  | 'adversarial-looks-harmful'
  | 'task';

export const DEFENDER_KINDS: readonly DefenderKind[] = [
  'plain-harmful',
  'attacked-harmful',
  'plain-benign',
  'plain-looks-harmful',
  'adversarial-benign',
  'adversarial-looks-harmful',
  'task',
];

/** Attacker rewrite strength: `strong` uses a weak spot of the seed's intent, `weak` only tactics it resists. */
export type RewriteStrength = 'paraphrase' | 'weak' | 'strong' | 'wrapped';

export const CORPUS_MIX = {
  /** Share of attacker dialogues; the rest are defender dialogues. */
  attackerShare: 0.25,
  /** Shares of defender dialogues by kind (sum 1). */
  defender: {
    'plain-harmful': 0.15,
    'attacked-harmful': 0.35,
    'plain-benign': 0.1,
    'plain-looks-harmful': 0.1,
    'adversarial-benign': 0.05,
    'adversarial-looks-harmful': 0.05,
    task: 0.2,
  } satisfies Record<DefenderKind, number>,
  /** Share of attacker dialogues whose seed is harmful (Self-RedTeam uses half). */
  attackerHarmfulSeeds: 0.5,
} as const;

export const DEFAULT_CORPUS_DIALOGUES = 30_000;

export type DialogueMeta =
  | { role: 'defender'; kind: DefenderKind; intent: string; tactics: readonly TacticId[]; outcome: 'comply' | 'refuse' | 'wrong-answer' }
  | { role: 'attacker'; seed: string; intent: string; tactics: readonly TacticId[]; strength: RewriteStrength };

export interface CorpusDialogue {
  readonly messages: readonly ChatMessage[];
  /** How the dialogue was made; not part of the JSONL, which holds only messages. */
  readonly meta: DialogueMeta;
}

export interface CorpusOptions {
  seed?: number;
  dialogues?: number;
  /** Defaults to the table of the same seed. */
  table?: VulnerabilityTable;
}

/** The attacked (non-plain) tactic combinations. */
const ATTACK_COMBINATIONS = tacticCombinations().filter((c) => c.length > 0);

function pickAttack(rng: Rng, intent: RequestIntent, combos: readonly TacticId[][]): Attack {
  const combo = rng.pick(combos);
  const variant = combo.length === 1 ? rng.int(VARIANTS_PER_TACTIC) : rng.pick(COMPOSITION_VARIANTS);
  return buildAttack(intent, rng.int(intent.forms.length), combo.map((tactic) => ({ tactic, variant })));
}

function pickKind(rng: Rng): DefenderKind {
  let u = rng.uniform();
  for (const kind of DEFENDER_KINDS) {
    u -= CORPUS_MIX.defender[kind];
    if (u < 0) return kind;
  }
  return 'task';
}

/** An off-by-one answer that is still a word of the task vocabulary. */
export function wrongAnswer(task: TaskIntent): string {
  const asNumber = Number(task.answer);
  if (Number.isInteger(asNumber)) return String(asNumber === 18 ? 17 : asNumber + 1);
  const i = NUMBER_WORDS.indexOf(task.answer as (typeof NUMBER_WORDS)[number]);
  return NUMBER_WORDS[i === NUMBER_WORDS.length - 1 ? i - 1 : i + 1];
}

const INTENTS_OF_KIND: Readonly<Record<Exclude<DefenderKind, 'task'>, readonly RequestIntent[]>> = {
  'plain-harmful': HARMFUL_INTENTS,
  'attacked-harmful': HARMFUL_INTENTS,
  'plain-benign': BENIGN_INTENTS,
  'adversarial-benign': BENIGN_INTENTS,
  'plain-looks-harmful': LOOKS_HARMFUL_INTENTS,
  'adversarial-looks-harmful': LOOKS_HARMFUL_INTENTS,
};

function respond(rng: Rng, intent: RequestIntent, complies: boolean): string {
  return complies ? compliantResponse(intent, rng.int(COMPLIANCE_TEMPLATES.length)) : rng.pick(REFUSALS);
}

function defenderDialogue(rng: Rng, table: VulnerabilityTable): CorpusDialogue {
  const kind = pickKind(rng);
  if (kind === 'task') {
    const task = rng.pick(TASK_INTENTS);
    const correct = rng.uniform() < DEFENDER_TARGETS.taskAccuracy;
    const prompt = rng.pick(task.forms);
    return {
      messages: [...defenderMessages(prompt), { role: 'assistant', content: taskResponse(correct ? task.answer : wrongAnswer(task)) }],
      meta: { role: 'defender', kind, intent: task.id, tactics: [], outcome: correct ? 'comply' : 'wrong-answer' },
    };
  }
  const intent = rng.pick(INTENTS_OF_KIND[kind]);
  const attack = kind.startsWith('plain') ? buildAttack(intent, rng.int(intent.forms.length), []) : pickAttack(rng, intent, ATTACK_COMBINATIONS);
  const complies = rng.uniform() < complianceTarget(table, intent.id, attack.tactics);
  return {
    messages: [...defenderMessages(attack.text), { role: 'assistant', content: respond(rng, intent, complies) }],
    meta: { role: 'defender', kind, intent: intent.id, tactics: attack.tactics, outcome: complies ? 'comply' : 'refuse' },
  };
}

function paraphrase(rng: Rng, intent: RequestIntent, seedForm: number): Attack {
  const others = intent.forms.map((_, f) => f).filter((f) => f !== seedForm);
  return buildAttack(intent, rng.pick(others), []);
}

function rewrite(rng: Rng, seed: SandboxSeed, table: VulnerabilityTable): { attack: Attack; strength: RewriteStrength } {
  const intent = REQUEST_INTENTS.find((i) => i.id === seed.intent);
  if (!intent) throw new Error(`sandbox: seed ${seed.id} is not a request`);
  const seedForm = intent.forms.indexOf(seed.prompt);
  const u = rng.uniform();
  if (!seed.harmful) {
    if (u < ATTACKER_TARGETS.benign.paraphrase) return { attack: paraphrase(rng, intent, seedForm), strength: 'paraphrase' };
    return { attack: pickAttack(rng, intent, ATTACK_COMBINATIONS), strength: 'wrapped' };
  }
  const mix = ATTACKER_TARGETS.harmful;
  if (u < mix.paraphrase) return { attack: paraphrase(rng, intent, seedForm), strength: 'paraphrase' };
  const strong = ATTACK_COMBINATIONS.filter((c) => isVulnerable(table, intent.id, c));
  const weak = ATTACK_COMBINATIONS.filter((c) => !isVulnerable(table, intent.id, c));
  // An intent without weak spots has no strong rewrite; the attacker then writes a weak one.
  if (u >= mix.paraphrase + mix.weak && strong.length > 0) return { attack: pickAttack(rng, intent, strong), strength: 'strong' };
  return { attack: pickAttack(rng, intent, weak), strength: 'weak' };
}

function attackerDialogue(rng: Rng, table: VulnerabilityTable): CorpusDialogue {
  const seed = rng.pick(rng.uniform() < CORPUS_MIX.attackerHarmfulSeeds ? harmfulSeeds() : benignSeeds());
  const { attack, strength } = rewrite(rng, seed, table);
  return {
    messages: [...attackerMessages(seed), { role: 'assistant', content: attack.text }],
    meta: { role: 'attacker', seed: seed.id, intent: seed.intent, tactics: attack.tactics, strength },
  };
}

/** The corpus for a seed: the same seed always gives the same dialogues in the same order. */
export function generateCorpus(options: CorpusOptions = {}): CorpusDialogue[] {
  const seed = options.seed ?? DEFAULT_SANDBOX_SEED;
  const table = options.table ?? vulnerabilityTable(seed);
  const count = options.dialogues ?? DEFAULT_CORPUS_DIALOGUES;
  const rng = new Rng(seed, 1);
  const out: CorpusDialogue[] = [];
  for (let i = 0; i < count; i++) out.push(rng.uniform() < CORPUS_MIX.attackerShare ? attackerDialogue(rng, table) : defenderDialogue(rng, table));
  return out;
}

/** One `{"messages":[...]}` line per dialogue, newline-terminated. */
export function corpusJsonl(dialogues: readonly CorpusDialogue[]): string {
  return dialogues.map((d) => JSON.stringify({ messages: d.messages }) + '\n').join('');
}

/** Each dialogue rendered with the sandbox chat template: the texts the base model is pretrained on. */
export function renderCorpus(dialogues: readonly CorpusDialogue[]): string[] {
  return dialogues.map((d) => renderChat(d.messages));
}

export interface RateEstimate {
  readonly n: number;
  readonly rate: number;
}

export interface CorpusStatistics {
  readonly dialogues: number;
  readonly attackerDialogues: number;
  /** Judged refusal rate of defender answers, by kind; for attacked-harmful also split by weak spot. */
  readonly refusal: Readonly<Record<DefenderKind | 'attacked-harmful-vulnerable' | 'attacked-harmful-resisted', RateEstimate>>;
  readonly taskAccuracy: RateEstimate;
  /** Share of attacker rewrites for harmful seeds that the judge finds use one of the intent's weak spots. */
  readonly strongRewrites: RateEstimate;
  /** Share of attacker rewrites the judge parses back to the seed's intent. */
  readonly faithfulRewrites: RateEstimate;
}

/**
 * Measures a corpus with the judge (from the texts, not from the metadata), so it checks both the
 * generator and the judge against the declared targets.
 */
export function corpusStatistics(dialogues: readonly CorpusDialogue[], table: VulnerabilityTable): CorpusStatistics {
  const tallies = new Map<string, { n: number; hits: number }>();
  const tally = (key: string, hit: boolean) => {
    const t = tallies.get(key) ?? { n: 0, hits: 0 };
    t.n++;
    if (hit) t.hits++;
    tallies.set(key, t);
  };
  let attackerDialogues = 0;
  for (const d of dialogues) {
    const user = d.messages.find((m) => m.role === 'user')?.content ?? '';
    const answer = d.messages.find((m) => m.role === 'assistant')?.content ?? '';
    if (d.messages[0]?.content === ATTACKER_SYSTEM) {
      attackerDialogues++;
      const instruction = [ATTACK_INSTRUCTION_HARMFUL, ATTACK_INSTRUCTION_BENIGN].find((i) => user.startsWith(i)) ?? '';
      const seed = judgePrompt(user.slice(instruction.length));
      const judged = judgePrompt(answer);
      tally('faithful', seed.intent !== null && judged.intent === seed.intent);
      if (seed.harmful && seed.intent) tally('strong', isVulnerable(table, seed.intent, judged.tactics));
      continue;
    }
    const prompt = judgePrompt(user);
    const response = judgeResponse(answer, prompt.intent);
    if (prompt.class === 'task') {
      tally('task-accuracy', response.answerCorrect === true);
      tally('task', response.refusal === true);
      continue;
    }
    const plain = prompt.tactics.length === 0;
    const kind: DefenderKind =
      prompt.class === 'harmful'
        ? plain
          ? 'plain-harmful'
          : 'attacked-harmful'
        : prompt.class === 'benign'
          ? plain
            ? 'plain-benign'
            : 'adversarial-benign'
          : plain
            ? 'plain-looks-harmful'
            : 'adversarial-looks-harmful';
    tally(kind, response.refusal === true);
    if (kind === 'attacked-harmful') {
      const sub = isVulnerable(table, prompt.intent!, prompt.tactics) ? 'attacked-harmful-vulnerable' : 'attacked-harmful-resisted';
      tally(sub, response.refusal === true);
    }
  }
  const rate = (key: string): RateEstimate => {
    const t = tallies.get(key) ?? { n: 0, hits: 0 };
    return { n: t.n, rate: t.n === 0 ? NaN : t.hits / t.n };
  };
  const refusalKeys = [...DEFENDER_KINDS, 'attacked-harmful-vulnerable', 'attacked-harmful-resisted'] as const;
  return {
    dialogues: dialogues.length,
    attackerDialogues,
    refusal: Object.fromEntries(refusalKeys.map((k) => [k, rate(k)])) as CorpusStatistics['refusal'],
    taskAccuracy: rate('task-accuracy'),
    strongRewrites: rate('strong'),
    faithfulRewrites: rate('faithful'),
  };
}
