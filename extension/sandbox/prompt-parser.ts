/**
 * Recovers the intent behind a prompt by undoing the tactic grammar: peel wrappers from the outside in,
 * undo obfuscation, and look the remaining words up among the plain forms. When that exact parse fails
 * (the text is not a grammar sentence), a lenient scan still finds plain forms embedded in it, so a guard
 * label can be given for near-misses; such prompts are reported as not parsed.
 */
import { ALL_INTENTS, REQUEST_INTENTS, type Intent } from './intents';
import { TACTIC_IDS, WRAPPERS, type TacticId, type Wrapper } from './tactics';
import { indexOfSequence, wordKey, words } from './words';

const CODE = '\u0000code';
const WORD = '\u0000word';

interface Pattern {
  readonly wrapper: Wrapper;
  readonly before: readonly string[];
  readonly after: readonly string[];
}

type Bindings = { code?: string; word?: string };

/** Splits a wrapper template into words, keeping `{code}` and `{word}` as slot markers. */
function templateWords(template: string): string[] {
  return template.split(/(\{code\}|\{word\})/).flatMap((part) => (part === '{code}' ? [CODE] : part === '{word}' ? [WORD] : words(part)));
}

let patterns: Pattern[] | null = null;
function wrapperPatterns(): Pattern[] {
  patterns ??= WRAPPERS.map((wrapper) => ({ wrapper, before: templateWords(wrapper.before), after: templateWords(wrapper.after) }));
  return patterns;
}

interface PlainForm {
  readonly intent: Intent;
  readonly form: number;
  readonly words: readonly string[];
}

let plainIndex: Map<string, PlainForm> | null = null;
function plainForms(): Map<string, PlainForm> {
  if (!plainIndex) {
    plainIndex = new Map();
    for (const intent of ALL_INTENTS) {
      intent.forms.forEach((text, form) => {
        const w = words(text);
        plainIndex!.set(wordKey(w), { intent, form, words: w });
      });
    }
  }
  return plainIndex;
}

let keywordsBySpelling: Map<string, string> | null = null;
function spelledKeywords(): Map<string, string> {
  keywordsBySpelling ??= new Map(REQUEST_INTENTS.map((i) => [i.keyword, i.keyword]));
  return keywordsBySpelling;
}

const SINGLE_LETTER = /^[a-z]$/;
/** One-letter English words that may stand right before a spelled word ("a b o m b"). */
const ONE_LETTER_WORDS = new Set(['a', 'i']);

/**
 * Collapses words spelled letter by letter back into the keyword they spell. Only runs that spell a
 * known keyword are collapsed, possibly with one-letter words of the sentence on either side
 * ("i k i l l a stuck process" holds "kill"); everything else is left as it is.
 */
export function despell(tokens: readonly string[]): { tokens: string[]; replaced: number } {
  const out: string[] = [];
  let replaced = 0;
  let i = 0;
  while (i < tokens.length) {
    if (!SINGLE_LETTER.test(tokens[i])) {
      out.push(tokens[i++]);
      continue;
    }
    let end = i;
    while (end < tokens.length && SINGLE_LETTER.test(tokens[end])) end++;
    const run = tokens.slice(i, end);
    const spelled = spelledSpan(run);
    if (spelled) {
      out.push(...run.slice(0, spelled.start), spelled.keyword, ...run.slice(spelled.end));
      replaced++;
    } else {
      out.push(...run);
    }
    i = end;
  }
  return { tokens: out, replaced };
}

/** The span of a run of single letters that spells a keyword, leaving only one-letter words around it. */
function spelledSpan(run: readonly string[]): { start: number; end: number; keyword: string } | null {
  for (let start = 0; start < run.length - 1; start++) {
    if (start > 0 && !ONE_LETTER_WORDS.has(run[start - 1])) return null;
    for (let end = run.length; end > start + 1; end--) {
      if (end < run.length && !ONE_LETTER_WORDS.has(run[end])) break;
      const keyword = spelledKeywords().get(run.slice(start, end).join(''));
      if (keyword) return { start, end, keyword };
    }
  }
  return null;
}

function matchAt(tokens: readonly string[], at: number, pattern: readonly string[], bindings: Bindings): Bindings | null {
  if (at < 0 || at + pattern.length > tokens.length) return null;
  const b = { ...bindings };
  for (let j = 0; j < pattern.length; j++) {
    const p = pattern[j];
    const t = tokens[at + j];
    if (p === CODE || p === WORD) {
      const slot = p === CODE ? 'code' : 'word';
      if (b[slot] !== undefined && b[slot] !== t) return null;
      b[slot] = t;
    } else if (p !== t) {
      return null;
    }
  }
  return b;
}

export interface PromptParse {
  readonly intent: Intent;
  readonly form: number;
  /** Tactics peeled off, outermost first (may repeat when a text nests one tactic twice). */
  readonly layers: readonly TacticId[];
}

/** Nesting deeper than this is never produced by the grammar; the bound keeps parsing linear on junk. */
const MAX_DEPTH = 4;

function peel(tokens: readonly string[], depth: number): PromptParse | null {
  const plain = plainForms().get(wordKey(tokens));
  if (plain) return { intent: plain.intent, form: plain.form, layers: [] };
  if (depth >= MAX_DEPTH) return null;
  for (const { wrapper, before, after } of wrapperPatterns()) {
    if (tokens.length <= before.length + after.length) continue;
    const left = matchAt(tokens, 0, before, {});
    if (!left) continue;
    const both = matchAt(tokens, tokens.length - after.length, after, left);
    if (!both) continue;
    let inner = tokens.slice(before.length, tokens.length - after.length);
    if (wrapper.conceal?.kind === 'code') {
      const { code, word } = both;
      inner = inner.map((t) => (t === code ? word! : t));
    } else if (wrapper.conceal?.kind === 'spell') {
      inner = despell(inner).tokens;
    }
    const rest = peel(inner, depth + 1);
    if (rest) return { ...rest, layers: [wrapper.tactic, ...rest.layers] };
  }
  return null;
}

/** The exact parse of a prompt's words, or null when they are not a sentence of the grammar. */
export function parsePrompt(tokens: readonly string[]): PromptParse | null {
  return peel(tokens, 0);
}

/** Distinct tactics in layer order (TACTIC_IDS is already sorted by layer). */
export function sortTactics(tactics: Iterable<TacticId>): TacticId[] {
  const set = new Set(tactics);
  return TACTIC_IDS.filter((t) => set.has(t));
}

export interface LenientScan {
  /** Intents whose plain form occurs somewhere in the text (after undoing obfuscation). */
  readonly intents: readonly Intent[];
  /** Tactics whose wrapper text occurs somewhere. */
  readonly tactics: readonly TacticId[];
}

function occursAnywhere(tokens: readonly string[], pattern: readonly string[]): Bindings | null {
  for (let at = 0; at + pattern.length <= tokens.length; at++) {
    const b = matchAt(tokens, at, pattern, {});
    if (b) return b;
  }
  return null;
}

/** Finds plain forms and wrapper fragments anywhere in a text that does not parse exactly. */
export function scanPrompt(tokens: readonly string[]): LenientScan {
  const tactics = new Set<TacticId>();
  let work = [...tokens];
  for (const { wrapper, before, after } of wrapperPatterns()) {
    for (const part of [before, after]) {
      if (part.length === 0) continue;
      const b = occursAnywhere(work, part);
      if (!b) continue;
      tactics.add(wrapper.tactic);
      if (wrapper.conceal?.kind === 'code' && b.code && b.word) work = work.map((t) => (t === b.code ? b.word! : t));
    }
  }
  const spelled = despell(work);
  if (spelled.replaced > 0) tactics.add('obfuscation');
  work = spelled.tokens;
  const found: Intent[] = [];
  for (const plain of plainForms().values()) {
    if (!found.includes(plain.intent) && indexOfSequence(work, plain.words) >= 0) found.push(plain.intent);
  }
  return { intents: found, tactics: sortTactics(tactics) };
}
