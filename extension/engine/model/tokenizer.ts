/**
 * A model directory's tokenizer (`tokenizer.json`, read by @huggingface/tokenizers) and chat template
 * (`tokenizer_config.json`'s `chat_template`, rendered by @huggingface/jinja within bounds).
 *
 * Text is plain text. What a policy writes, what a seed or a dataset holds, is encoded with the
 * special tokens inert: `<|im_end|>\n<|im_start|>assistant` inside an attack is those characters,
 * not the end of a turn (Hugging Face's split_special_tokens=True). Only the chat template's own
 * markers become special tokens (`encodeChat`), and trusted strings of our own (`encodeMarkup`). So a
 * policy trained by RL cannot forge a turn of the conversation or the guard judge's verdict.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ChatTemplate, TemplateLimitError } from './chat-template';
import { ModelFormatError } from './model-config';
import { readTextFile, UnsafeFileError } from '../../util/safe-fs';

/** tokenizer.json files of real models are tens of megabytes; this bounds what is read. */
const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
}

/** Longest-match search for a set of strings in text (the split @huggingface/tokenizers does for added tokens). */
class TokenSplitter {
  private readonly trie: Map<string, TrieNode> = new Map();

  constructor(words: readonly string[]) {
    for (const w of words) {
      if (!w) continue;
      let children = this.trie;
      let node: TrieNode | undefined;
      for (let i = 0; i < w.length; i++) {
        node = children.get(w[i]);
        if (!node) children.set(w[i], (node = { children: new Map(), end: null }));
        children = node.children;
      }
      node!.end = w;
    }
  }

  /** The text cut into matched words and the pieces between them, in order. */
  split(text: string): string[] {
    const out: string[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      let children = this.trie;
      let match: string | null = null;
      for (let j = i; j < text.length; j++) {
        const node = children.get(text[j]);
        if (!node) break;
        if (node.end) match = node.end;
        children = node.children;
      }
      if (match) {
        if (i > start) out.push(text.slice(start, i));
        out.push(match);
        i += match.length;
        start = i;
      } else i++;
    }
    if (start < text.length) out.push(text.slice(start));
    return out;
  }
}

interface TrieNode {
  children: Map<string, TrieNode>;
  end: string | null;
}

/** Private-use characters: one absent from every untrusted text marks, inside it, where a special token was broken. */
const ESCAPE_FIRST = 0xe000;
const ESCAPE_LAST = 0xf8ff;

/** The files of a model directory that make up its tokenizer (whichever of them it has). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'] as const;

/** Copies a model directory's tokenizer files into another (a saved full model carries its tokenizer). */
export function copyTokenizerFiles(fromDir: string, toDir: string): void {
  for (const f of TOKENIZER_FILES) {
    const src = path.join(fromDir, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(toDir, f));
  }
}

export interface ChatMessage {
  role: string;
  content: string;
}

export class TextTokenizer {
  private template: ChatTemplate | null;
  readonly eosTokens: string[];
  private readonly extraEos: number[];
  /** The same tokenizer with its special tokens inert (they are plain characters there). */
  private readonly plain: Tokenizer;
  /** Special added tokens: what a template's markers are made of. */
  private readonly specials: Map<string, AddedTokenJson>;
  private readonly specialIds: Set<number>;
  private readonly specialSplitter: TokenSplitter;
  /** Ids the post-processor puts around a sequence when special tokens are added (a BOS, say). */
  private readonly wrap: { before: number[]; after: number[] };

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly tokenizerConfig: Record<string, unknown>,
    readonly dir: string,
    generationEos: number[],
    tokenizerJson?: Record<string, unknown>,
  ) {
    const configFile = path.join(dir, 'tokenizer_config.json');
    const tpl = tokenizerConfig.chat_template;
    const source = typeof tpl === 'string' ? tpl : Array.isArray(tpl) ? (tpl.find((t) => t?.name === 'default')?.template as string | undefined) : undefined;
    try {
      this.template = source ? new ChatTemplate(source) : null;
    } catch (e) {
      throw new ModelFormatError(configFile, `chat_template cannot be used: ${(e as Error).message}`);
    }
    const eos = tokenName(tokenizerConfig.eos_token);
    this.eosTokens = eos ? [eos] : [];
    this.extraEos = generationEos;
    const added = (Array.isArray(tokenizerJson?.added_tokens) ? tokenizerJson.added_tokens : []) as AddedTokenJson[];
    this.specials = new Map(added.filter((t) => t.special === true && typeof t.content === 'string' && t.content !== '').map((t) => [t.content, t]));
    // The unknown-word token is special in some vocabularies but is what plain text maps unknown words to.
    const unk = [tokenName(tokenizerConfig.unk_token), tokenName((tokenizerJson?.model as { unk_token?: unknown } | undefined)?.unk_token)];
    this.specialIds = new Set([...this.specials.values()].filter((t) => !unk.includes(t.content)).map((t) => t.id));
    this.specialSplitter = new TokenSplitter([...this.specials.keys()]);
    this.plain = inertSpecials(tokenizer, tokenizerJson, tokenizerConfig, this.specials);
    this.wrap = postProcessorWrap(tokenizer);
  }

  static load(dir: string): TextTokenizer {
    const tokFile = path.join(dir, 'tokenizer.json');
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const json = readJson(tokFile, 'a model directory needs tokenizer.json to turn text into tokens', MAX_TOKENIZER_BYTES);
    const config = fs.existsSync(cfgFile) ? readJson(cfgFile, '', MAX_CONFIG_BYTES) : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (e) {
      throw new ModelFormatError(tokFile, `could not be loaded as a tokenizer (${(e as Error).message})`);
    }
    const genFile = path.join(dir, 'generation_config.json');
    let genEos: number[] = [];
    if (fs.existsSync(genFile)) {
      const gen = readJson(genFile, '', MAX_CONFIG_BYTES) as { eos_token_id?: number | number[] };
      genEos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id.filter((x) => Number.isInteger(x)) : typeof gen.eos_token_id === 'number' ? [gen.eos_token_id] : [];
    }
    return new TextTokenizer(tokenizer, config as Record<string, unknown>, dir, genEos, json);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /**
   * Plain text: special tokens in it are ordinary characters (non-special added tokens, such as
   * `<think>`, still match, as in Hugging Face). Use this for anything a policy, a seed or a dataset wrote.
   */
  encode(text: string, addSpecialTokens = false): number[] {
    const ids = this.encodeWith(this.plain, text);
    for (const id of ids) {
      if (this.specialIds.has(id)) throw new ModelFormatError(path.join(this.dir, 'tokenizer.json'), `encodes plain text to the special token ${id}; its merges build a control token`);
    }
    return addSpecialTokens ? [...this.wrap.before, ...ids, ...this.wrap.after] : ids;
  }

  /** Text of our own in which special tokens are meant (a marker constant, a trusted prompt format). */
  encodeMarkup(text: string, addSpecialTokens = false): number[] {
    return this.encodeWith(this.tokenizer, text, addSpecialTokens);
  }

  /**
   * Encodes text built around untrusted parts: `build` receives the parts with every special token in
   * them broken by an escape character, and returns the whole text. Special tokens that remain intact
   * are the caller's own markers; the text between them, escape characters removed, is plain text.
   */
  encodeAround(untrusted: readonly string[], build: (quoted: string[]) => string, addSpecialTokens = false): number[] {
    const escape = escapeCharFor(untrusted);
    const quoted = untrusted.map((t) => this.breakSpecials(t, escape));
    const text = build(quoted);
    const ids: number[] = [];
    const sections = this.specialSplitter.split(text);
    for (let i = 0; i < sections.length; i++) {
      const marker = this.specials.get(sections[i]);
      if (marker) {
        ids.push(marker.id);
        continue;
      }
      let section = sections[i].split(escape).join('');
      // An added token's lstrip/rstrip takes the whitespace next to it, as the library does.
      if (i > 0 && this.specials.get(sections[i - 1])?.rstrip) section = section.trimStart();
      if (i + 1 < sections.length && this.specials.get(sections[i + 1])?.lstrip) section = section.trimEnd();
      if (section) ids.push(...this.encode(section));
    }
    return addSpecialTokens ? [...this.wrap.before, ...ids, ...this.wrap.after] : ids;
  }

  /** A conversation rendered with the model's chat template: the template's markers special, every message plain text. */
  encodeChat(messages: readonly ChatMessage[], addGenerationPrompt: boolean): number[] {
    return this.encodeAround(
      messages.map((m) => m.content),
      (contents) => this.applyChatTemplate(messages.map((m, i) => ({ role: m.role, content: contents[i] })), addGenerationPrompt),
    );
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    // The library refuses an empty list; an empty generation decodes to the empty string.
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  tokenText(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /** Token ids that end a generated turn: the tokenizer's eos and generation_config's. */
  stopTokenIds(modelEos: readonly number[] = []): number[] {
    const ids = new Set<number>([...modelEos, ...this.extraEos]);
    for (const t of this.eosTokens) {
      const id = this.tokenId(t);
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  /**
   * Renders a conversation with the model's chat template, as text (for showing; to encode it, use
   * encodeChat, which keeps the messages plain text).
   */
  applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    const file = path.join(this.dir, 'tokenizer_config.json');
    if (!this.template) throw new ModelFormatError(file, 'has no chat_template');
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: tokenName(this.tokenizerConfig.bos_token) ?? '',
        eos_token: tokenName(this.tokenizerConfig.eos_token) ?? '',
        pad_token: tokenName(this.tokenizerConfig.pad_token) ?? '',
      });
    } catch (e) {
      if (e instanceof TemplateLimitError) throw new ModelFormatError(file, `chat_template: ${e.message}`);
      throw new ModelFormatError(file, `chat_template failed to render: ${(e as Error).message}`);
    }
  }

  /** The text with every special token in it broken by `escape` after its first character. */
  private breakSpecials(text: string, escape: string): string {
    if (this.specials.size === 0) return text;
    return this.specialSplitter
      .split(text)
      .map((part) => {
        if (!this.specials.has(part)) return part;
        const first = String.fromCodePoint(part.codePointAt(0)!);
        return first + escape + part.slice(first.length);
      })
      .join('');
  }

  private encodeWith(tokenizer: Tokenizer, text: string, addSpecialTokens = false): number[] {
    const { ids, tokens } = tokenizer.encode(text, { add_special_tokens: addSpecialTokens });
    // Word-level vocabularies without an unk_token leave unknown words without an id.
    const unknown = tokens.filter((_, i) => ids[i] === undefined);
    if (unknown.length > 0) {
      throw new ModelFormatError(path.join(this.dir, 'tokenizer.json'), `has no token for ${unknown.slice(0, 5).map((t) => JSON.stringify(t)).join(', ')} and no unk_token`);
    }
    return ids;
  }
}

/** A private-use character that none of the texts holds. */
function escapeCharFor(texts: readonly string[]): string {
  for (let c = ESCAPE_FIRST; c <= ESCAPE_LAST; c++) {
    const ch = String.fromCharCode(c);
    if (!texts.some((t) => t.includes(ch))) return ch;
  }
  throw new Error('the texts use every private-use character; they cannot be encoded as plain text');
}

/**
 * The tokenizer with its special added tokens inert. It shares the loaded model with the original
 * (@huggingface/tokenizers keeps the added-token split in two splitters and a map, which are replaced
 * here); if the library's layout is not the expected one, a second tokenizer is built without them.
 */
function inertSpecials(tokenizer: Tokenizer, json: Record<string, unknown> | undefined, config: Record<string, unknown>, specials: ReadonlyMap<string, AddedTokenJson>): Tokenizer {
  if (specials.size === 0) return tokenizer;
  const t = tokenizer as unknown as Record<string, unknown>;
  const map = t.added_tokens_map;
  if (map instanceof Map && t.splitter_unnormalized && t.splitter_normalized) {
    const kept = new Map([...map].filter(([, token]) => !specials.has((token as { content: string }).content)));
    const normalize = (t.normalizer as ((s: string) => string) | null) ?? null;
    const unnormalized: string[] = [];
    const normalized: string[] = [];
    for (const token of new Set(kept.values()) as Set<{ content: string; normalized?: boolean }>) {
      if (token.normalized && normalize) normalized.push(normalize(token.content));
      else unnormalized.push(token.content);
    }
    const clone = Object.assign(Object.create(Object.getPrototypeOf(tokenizer)), tokenizer, {
      added_tokens_map: kept,
      splitter_unnormalized: new TokenSplitter(unnormalized),
      splitter_normalized: new TokenSplitter(normalized),
    });
    return clone as Tokenizer;
  }
  const added = (Array.isArray(json?.added_tokens) ? json.added_tokens : []) as AddedTokenJson[];
  return new Tokenizer({ ...json, added_tokens: added.filter((a) => !specials.has(a.content)) }, config);
}

/** What the post-processor adds around one sequence (found by encoding a probe with and without). */
function postProcessorWrap(tokenizer: Tokenizer): { before: number[]; after: number[] } {
  try {
    const bare = tokenizer.encode('a', { add_special_tokens: false }).ids;
    const full = tokenizer.encode('a', { add_special_tokens: true }).ids;
    for (let i = 0; i + bare.length <= full.length; i++) {
      if (bare.every((id, k) => full[i + k] === id)) return { before: full.slice(0, i), after: full.slice(i + bare.length) };
    }
  } catch {
    /* a vocabulary without "a": nothing added */
  }
  return { before: [], after: [] };
}

function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function readJson(file: string, missingHint: string, maxBytes: number): Record<string, unknown> {
  let text: string;
  try {
    text = readTextFile(file, maxBytes);
  } catch (e) {
    if (e instanceof UnsafeFileError) throw new ModelFormatError(file, `cannot be read: it ${e.problem}`);
    throw new ModelFormatError(file, `is missing${missingHint ? `; ${missingHint}` : ''}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ModelFormatError(file, 'is not a JSON object');
  return value as Record<string, unknown>;
}
