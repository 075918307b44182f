/**
 * Safety and capability evaluation of a run's defender on a local JSONL file. Lines are
 * {"prompt": ..., "harmful": true|false} (safety) or {"prompt": ..., "answer": ...} (capability).
 * The defender answers greedily; the run's judge labels the answers; rates come with 95% Wilson
 * intervals. Exact match compares normalised text: the whole answer, or its final word.
 */
import { PolicyEngine, PolicyName } from '../engine/policy-engine';
import { Judge, JudgeItem } from './judges/judge';
import { RolePrompts } from './role-prompts';
import { splitOutput } from './thoughts';
import { jsonlMessage, loadJsonl } from '../util/jsonl-loader';
import { wilson } from '../util/stats';
import type { EvalMetric } from '../rundir/schema';

export interface EvalItem {
  prompt: string;
  harmful?: boolean;
  answer?: string;
  line: number;
}

export class EvalDataError extends Error {}

export function loadEvalData(file: string): EvalItem[] {
  return loadJsonl(file, {
    what: 'the evaluation data',
    none: 'has no items',
    error: (f, line, problem) => new EvalDataError(jsonlMessage(f, line, problem)),
    parse: (value, line, fail): EvalItem => {
      const v = value as Record<string, unknown>;
      if (typeof v !== 'object' || v === null || typeof v.prompt !== 'string' || v.prompt.trim() === '') fail('needs a non-empty "prompt" string');
      const hasHarmful = typeof v.harmful === 'boolean';
      const hasAnswer = typeof v.answer === 'string';
      if (hasHarmful === hasAnswer) fail('give exactly one of "harmful" (true/false, a safety item) or "answer" (a string, a capability item)');
      return { prompt: v.prompt as string, harmful: hasHarmful ? (v.harmful as boolean) : undefined, answer: hasAnswer ? (v.answer as string) : undefined, line };
    },
  });
}

const normalise = (s: string) => s.toLowerCase().replace(/[.,!?;:"']/g, ' ').replace(/\s+/g, ' ').trim();

export function exactMatch(response: string, answer: string): boolean {
  const r = normalise(response);
  const a = normalise(answer);
  if (a === '') return false;
  const words = r.split(' ');
  return r === a || words[words.length - 1] === a;
}

function rate(hits: number, n: number): EvalMetric {
  if (n === 0) return { value: null, ci95: null, n };
  const ci = wilson(hits, n);
  return { value: hits / n, ci95: [ci.low, ci.high], n };
}

export async function evaluateDefender(o: {
  engine: PolicyEngine;
  judge: Judge;
  prompts: RolePrompts;
  defender: PolicyName;
  items: readonly EvalItem[];
  maxNewTokens: number;
  thinking: boolean;
}): Promise<Record<string, EvalMetric>> {
  const { engine } = o;
  const contexts = o.items.map((it) => engine.encodeChat(o.prompts.defender([it.prompt], []), true));
  const gens = await engine.generate(contexts.map((prompt, i) => ({ prompt, policy: o.defender, seed: i })), { maxNewTokens: o.maxNewTokens, temperature: 0, topP: 1, stopTokens: engine.stopTokens() });
  const outputs = gens.map((g) => {
    const raw = engine.decode(g.tokens);
    return { raw, split: splitOutput(raw, o.thinking) };
  });
  const safety = o.items.map((it, i) => ({ it, i })).filter((x) => x.it.harmful !== undefined);
  const items: JudgeItem[] = safety.map(({ it, i }) => ({
    seed: { id: String(it.line), prompt: it.prompt, harmful: it.harmful!, source: 'eval' },
    attackerRaw: null,
    prompt: it.prompt,
    defenderRaw: outputs[i].raw,
    response: outputs[i].split.answer,
    attackerWellFormed: null,
    defenderWellFormed: outputs[i].split.wellFormed,
  }));
  const verdicts = await o.judge.judge(items);
  const harmful = safety.map((s, k) => ({ s, v: verdicts[k] })).filter((x) => x.s.it.harmful);
  const benign = safety.map((s, k) => ({ s, v: verdicts[k] })).filter((x) => !x.s.it.harmful);
  const judged = <T extends { v: { responseHarmful: boolean | null; refusal: boolean | null } }>(xs: T[], key: 'responseHarmful' | 'refusal') => xs.filter((x) => x.v[key] !== null);
  const capability = o.items.map((it, i) => ({ it, i })).filter((x) => x.it.answer !== undefined);
  const correct = capability.filter(({ it, i }) => exactMatch(outputs[i].split.answer, it.answer!)).length;
  const hArm = judged(harmful, 'responseHarmful');
  const hRef = judged(harmful, 'refusal');
  const bRef = judged(benign, 'refusal');
  return {
    attack_success: rate(hArm.filter((x) => x.v.responseHarmful).length, hArm.length),
    refusal_harmful: rate(hRef.filter((x) => x.v.refusal).length, hRef.length),
    over_refusal: rate(bRef.filter((x) => x.v.refusal).length, bRef.length),
    capability_exact_match: rate(correct, capability.length),
    unparsable: { value: verdicts.filter((v) => v.unparsable).length, ci95: null, n: verdicts.length },
  };
}
