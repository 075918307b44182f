/**
 * A model directory's tokenizer (`tokenizer.json`, read by @huggingface/tokenizers) and chat template
 * (`tokenizer_config.json`'s `chat_template`, rendered by @huggingface/jinja).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { ModelFormatError } from './model-config';

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
  private template: Template | null;
  readonly eosTokens: string[];

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly tokenizerConfig: Record<string, unknown>,
    readonly dir: string,
    generationEos: number[],
  ) {
    const tpl = tokenizerConfig.chat_template;
    const source = typeof tpl === 'string' ? tpl : Array.isArray(tpl) ? (tpl.find((t) => t?.name === 'default')?.template as string | undefined) : undefined;
    this.template = source ? new Template(source) : null;
    const eos = tokenName(tokenizerConfig.eos_token);
    this.eosTokens = eos ? [eos] : [];
    this.extraEos = generationEos;
  }
  private readonly extraEos: number[];

  static load(dir: string): TextTokenizer {
    const tokFile = path.join(dir, 'tokenizer.json');
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const json = readJson(tokFile, 'a model directory needs tokenizer.json to turn text into tokens');
    const config = fs.existsSync(cfgFile) ? readJson(cfgFile, '') : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (e) {
      throw new ModelFormatError(tokFile, `could not be loaded as a tokenizer (${(e as Error).message})`);
    }
    const genFile = path.join(dir, 'generation_config.json');
    let genEos: number[] = [];
    if (fs.existsSync(genFile)) {
      const gen = readJson(genFile, '') as { eos_token_id?: number | number[] };
      genEos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : typeof gen.eos_token_id === 'number' ? [gen.eos_token_id] : [];
    }
    return new TextTokenizer(tokenizer, config as Record<string, unknown>, dir, genEos);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  encode(text: string, addSpecialTokens = false): number[] {
    const { ids, tokens } = this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens });
    // Word-level vocabularies without an unk_token leave unknown words without an id.
    const unknown = tokens.filter((_, i) => ids[i] === undefined);
    if (unknown.length > 0) {
      throw new ModelFormatError(path.join(this.dir, 'tokenizer.json'), `has no token for ${unknown.slice(0, 5).map((t) => JSON.stringify(t)).join(', ')} and no unk_token`);
    }
    return ids;
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

  /** Renders a conversation with the model's chat template. */
  applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    if (!this.template) throw new ModelFormatError(path.join(this.dir, 'tokenizer_config.json'), 'has no chat_template');
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: tokenName(this.tokenizerConfig.bos_token) ?? '',
      eos_token: tokenName(this.tokenizerConfig.eos_token) ?? '',
      pad_token: tokenName(this.tokenizerConfig.pad_token) ?? '',
    });
  }
}

function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

function readJson(file: string, missingHint: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new ModelFormatError(file, `is missing${missingHint ? `; ${missingHint}` : ''}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(file, `is not valid JSON (${(e as Error).message})`);
  }
}
