/**
 * The sandbox tokenizer, written as a Hugging Face `tokenizer.json` (word-level) plus a
 * `tokenizer_config.json` with a Qwen-style chat template, so the built-in model loads through the same
 * path as a downloaded checkpoint.
 *
 * Text normal form: the tokenizer lowercases, splits words from punctuation and drops whitespace, and
 * decoding joins tokens with single spaces and then re-attaches `. , ? !` (clean_up_tokenization_spaces).
 * So decode(encode(s)) === s exactly for canonical text (lowercase, single spaces, `. , ? !` attached to
 * the preceding word, other punctuation standing alone); all sandbox text is canonical. Newlines in the
 * chat template are whitespace and vanish: a rendered conversation decodes with spaces where they were.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { writeJsonAtomic } from '../util/atomic';
import { ALL_INTENTS, NUMBER_WORDS } from './intents';
import { allResponses } from './responses';
import { ROLE_TEXTS } from './roles';
import type { ChatMessage } from '../engine/model/tokenizer';
import { enumerateAllAttacks } from './tactics';
import { NORMALIZER_CONFIG, PRE_TOKENIZER_CONFIG, words } from './words';

export const SPECIAL_TOKENS = {
  endOfText: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  thinkOpen: '<think>',
  thinkClose: '</think>',
  unknown: '<unk>',
} as const;

/** Ids 0..5, in this order. Only the chat markers and end-of-text are "special" (skipped when decoding). */
const ADDED_TOKENS: readonly { content: string; special: boolean }[] = [
  { content: SPECIAL_TOKENS.endOfText, special: true },
  { content: SPECIAL_TOKENS.imStart, special: true },
  { content: SPECIAL_TOKENS.imEnd, special: true },
  // Like Qwen3: think tags are added tokens but not special, so a decoded output keeps them for the judge.
  { content: SPECIAL_TOKENS.thinkOpen, special: false },
  { content: SPECIAL_TOKENS.thinkClose, special: false },
  { content: SPECIAL_TOKENS.unknown, special: true },
];

/** Qwen2's role markers, without Qwen's default system prompt. */
export const CHAT_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** Every rendered corpus dialogue is shorter than this many tokens (a test checks the worst case). */
export const MAX_SEQUENCE_TOKENS = 96;

/** Every text the sandbox world can put in a conversation: prompts, attacks, responses, role texts. */
export function grammarTexts(): string[] {
  return [...ALL_INTENTS.flatMap((i) => i.forms), ...enumerateAllAttacks().map((a) => a.text), ...allResponses(), ...ROLE_TEXTS];
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
const DIGITS = '0123456789'.split('');

/** The word vocabulary (specials excluded), sorted: grammar words plus single letters, digits and number words. */
export function sandboxVocabulary(): string[] {
  const vocab = new Set<string>([...LETTERS, ...DIGITS, ...NUMBER_WORDS]);
  for (const text of grammarTexts()) for (const w of words(text)) vocab.add(w);
  return [...vocab].sort();
}

export function buildTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  ADDED_TOKENS.forEach((t, id) => (vocab[t.content] = id));
  let next = ADDED_TOKENS.length;
  for (const w of sandboxVocabulary()) vocab[w] = next++;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ADDED_TOKENS.map((t, id) => ({ id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special })),
    normalizer: NORMALIZER_CONFIG,
    pre_tokenizer: PRE_TOKENIZER_CONFIG,
    post_processor: null,
    // No decoder: tokens are joined with spaces, which is what a word-level vocabulary needs.
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: SPECIAL_TOKENS.unknown },
  };
}

export function buildTokenizerConfig(): Record<string, unknown> {
  return {
    added_tokens_decoder: Object.fromEntries(
      ADDED_TOKENS.map((t, id) => [String(id), { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special }]),
    ),
    additional_special_tokens: [SPECIAL_TOKENS.imStart, SPECIAL_TOKENS.imEnd],
    bos_token: null,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    eos_token: SPECIAL_TOKENS.imEnd,
    pad_token: SPECIAL_TOKENS.endOfText,
    // @huggingface/tokenizers reads the unknown token from here, not from the WordLevel model.
    unk_token: SPECIAL_TOKENS.unknown,
    model_max_length: MAX_SEQUENCE_TOKENS,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed), each atomically. */
export function writeTokenizerFiles(dir: string): { tokenizerFile: string; configFile: string } {
  fs.mkdirSync(dir, { recursive: true });
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const configFile = path.join(dir, 'tokenizer_config.json');
  writeJsonAtomic(tokenizerFile, buildTokenizerJson());
  writeJsonAtomic(configFile, buildTokenizerConfig());
  return { tokenizerFile, configFile };
}

let cached: Tokenizer | null = null;
/** The sandbox tokenizer, built in memory (the same object `writeTokenizerFiles` would load back). */
export function sandboxTokenizer(): Tokenizer {
  cached ??= new Tokenizer(buildTokenizerJson(), buildTokenizerConfig());
  return cached;
}

let template: Template | null = null;
/** A conversation rendered with the sandbox chat template. */
export function renderChat(messages: readonly ChatMessage[], addGenerationPrompt = false): string {
  template ??= new Template(CHAT_TEMPLATE);
  return template.render({ messages, add_generation_prompt: addGenerationPrompt, bos_token: '', eos_token: SPECIAL_TOKENS.imEnd, pad_token: SPECIAL_TOKENS.endOfText });
}
