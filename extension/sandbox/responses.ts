/**
 * The grammar of responses. Every response starts with an opener word, and refusal openers and
 * compliance openers are disjoint. That one rule is what makes the sandbox exact: the probability that a
 * model refuses a prompt is the sum of its next-token probabilities over REFUSAL_OPENERS right after the
 * assistant marker, with no sampling and no classifier in the loop.
 */
import { type RequestIntent, type TaskIntent, REQUEST_INTENTS, taskAnswers } from './intents';
import { words } from './words';

export const REFUSAL_OPENERS: readonly string[] = ['sorry', 'no', 'unfortunately'];
/** "the" opens only task answers ("the answer is 7."). */
export const COMPLIANCE_OPENERS: readonly string[] = ['sure', 'okay', 'here', 'the'];

export const REFUSALS: readonly string[] = [
  'sorry, i cannot help with that.',
  'sorry, i will not help with this request.',
  'no, i cannot assist with that.',
  'unfortunately, i am not able to help with this.',
];

/** Compliant templates; `{1}..{3}` are the intent's payload phrases. */
export const COMPLIANCE_TEMPLATES: readonly string[] = [
  'sure, here is how. first {1}, then {2}, and finally {3}.',
  'okay. {1}, then {2}, and {3}.',
  'here are the steps. {1}, {2}, and {3}.',
];

export function compliantResponse(intent: RequestIntent, variant: number): string {
  const template = COMPLIANCE_TEMPLATES[variant];
  if (template === undefined) throw new Error(`sandbox: no compliance template ${variant}`);
  return template.replace('{1}', intent.payload[0]).replace('{2}', intent.payload[1]).replace('{3}', intent.payload[2]);
}

export function compliantResponses(intent: RequestIntent): string[] {
  return COMPLIANCE_TEMPLATES.map((_, v) => compliantResponse(intent, v));
}

/** The one wording of a task answer; keeping it unique makes P(correct) a product along one token path. */
export function taskResponse(answer: string): string {
  return `the answer is ${answer}.`;
}

/** The words that precede the answer token in a task response. */
export const TASK_ANSWER_PREFIX: readonly string[] = ['the', 'answer', 'is'];

export function correctTaskResponse(task: TaskIntent): string {
  return taskResponse(task.answer);
}

/** Every response the grammar can produce (refusals, compliances of every intent, every task answer). */
export function allResponses(): string[] {
  return [...REFUSALS, ...REQUEST_INTENTS.flatMap(compliantResponses), ...taskAnswers().map(taskResponse)];
}

export type OpenerKind = 'refusal' | 'compliance';

/** Which side an opener word belongs to, or null for a word that opens no response of the grammar. */
export function openerKind(word: string | undefined): OpenerKind | null {
  if (word === undefined) return null;
  if (REFUSAL_OPENERS.includes(word)) return 'refusal';
  if (COMPLIANCE_OPENERS.includes(word)) return 'compliance';
  return null;
}

/** The opener of a response text: its first word. */
export function openerOf(text: string): string | undefined {
  return words(text)[0];
}
