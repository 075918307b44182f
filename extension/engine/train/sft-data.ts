/**
 * Supervised fine-tuning data: JSONL lines of {"text": ...}, {"ids": [...]} or {"messages": [...]}.
 * Chat lines are rendered with the model's chat template and only assistant turns are trained on.
 * Every problem is reported as `file:line: problem`.
 */
import { jsonlMessage, loadJsonl } from '../../util/jsonl-loader';
import { TextTokenizer } from '../model/tokenizer';

export interface SftExample {
  ids: number[];
  /** 1 where predicting ids[i] counts toward the loss; entry 0 is always 0. */
  lossMask: number[];
  line: number;
}

export class DataError extends Error {
  constructor(readonly file: string, readonly line: number, problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

const ROLES = new Set(['system', 'user', 'assistant']);

export interface SftDataOptions {
  tokenizer: TextTokenizer | null;
  maxLength: number;
  vocabSize: number;
}

export function loadSftData(file: string, options: SftDataOptions): SftExample[] {
  return loadJsonl(file, {
    what: 'training data',
    none: 'has no training examples',
    error: (f, line, problem) => (line === null ? new Error(jsonlMessage(f, line, problem)) : new DataError(f, line, problem)),
    parse: (value, line, fail) => parseExample(value, file, line, options, fail),
  });
}

function parseExample(value: unknown, file: string, n: number, o: SftDataOptions, fail: (problem: string) => never): SftExample {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('expected a JSON object with "text", "ids" or "messages"');
  const v = value as Record<string, unknown>;
  let example: SftExample;
  if ('ids' in v) {
    if (!Array.isArray(v.ids) || !v.ids.every((x) => Number.isInteger(x))) fail('"ids" must be a list of integers');
    const ids = v.ids as number[];
    const bad = ids.find((id) => id < 0 || id >= o.vocabSize);
    if (bad !== undefined) fail(`unknown token id ${bad} (the vocabulary has ids 0..${o.vocabSize - 1})`);
    example = { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)), line: n };
  } else if ('text' in v) {
    if (typeof v.text !== 'string') fail('"text" must be a string');
    const ids = needTokenizer(o, file, n).encode(v.text as string);
    example = { ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)), line: n };
  } else if ('messages' in v) {
    example = chatExample(v.messages, needTokenizer(o, file, n), file, n);
  } else {
    fail('expected one of the keys "text", "ids" or "messages"');
  }
  if (example.ids.length < 2) fail('needs at least two tokens to predict anything');
  if (example.ids.length > o.maxLength) fail(`is ${example.ids.length} tokens long, more than the model's limit of ${o.maxLength}`);
  if (!example.lossMask.some((m) => m > 0)) fail('has no tokens to train on (no assistant turn)');
  return example;
}

function needTokenizer(o: SftDataOptions, file: string, n: number): TextTokenizer {
  if (!o.tokenizer) throw new DataError(file, n, 'text needs the model directory to have a tokenizer.json');
  return o.tokenizer;
}

/**
 * Renders the conversation and marks the assistant turns: for each assistant message, the tokens
 * between the rendering of the conversation before it (with the generation prompt) and the rendering
 * including it — its content and end-of-turn marker, not the trailing whitespace.
 */
function chatExample(messages: unknown, tok: TextTokenizer, file: string, n: number): SftExample {
  if (!Array.isArray(messages) || messages.length === 0) throw new DataError(file, n, '"messages" must be a non-empty list');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof (m as { content?: unknown }).content !== 'string') {
      throw new DataError(file, n, `message ${i} must be an object with a string "content"`);
    }
    const role = (m as { role?: unknown }).role;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new DataError(file, n, `message ${i} has unknown role ${JSON.stringify(role)} (roles: system, user, assistant)`);
    }
  });
  const msgs = messages as { role: string; content: string }[];
  const ids = tok.encodeChat(msgs, false);
  const lossMask = new Array<number>(ids.length).fill(0);
  msgs.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = tok.encodeChat(msgs.slice(0, i), true);
    let after = tok.encodeChat(msgs.slice(0, i + 1), false);
    if (!isPrefix(before, ids) || !isPrefix(after, ids)) {
      throw new DataError(file, n, 'the chat template does not render turns as prefixes of the whole conversation; cannot locate the assistant turn');
    }
    while (after.length > before.length && tok.decode([after[after.length - 1]]).trim() === '') after = after.slice(0, -1);
    for (let t = before.length; t < after.length; t++) lossMask[t] = 1;
  });
  return { ids, lossMask, line: n };
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  return a.length <= b.length && a.every((x, i) => x === b[i]);
}
