/** Opens a model directory for inference: the checkpoint, its tokenizer, and optional adapters. */
import * as path from 'node:path';
import { resolveModelDir } from '../model/model-dir';
import { TextTokenizer } from '../model/tokenizer';
import { LoraAdapter, loadAdapter } from '../lora/adapter';
import { LanguageModel, LanguageModelOptions } from './language-model';

export interface OpenedModel {
  dir: string;
  model: LanguageModel;
  /** Loaded on first use, so token-id commands work on directories without a tokenizer. */
  readonly tokenizer: TextTokenizer;
}

export function openModel(spec: string, options: LanguageModelOptions = {}): OpenedModel {
  const dir = resolveModelDir(spec);
  const model = LanguageModel.load(dir, options);
  let tokenizer: TextTokenizer | undefined;
  return {
    dir,
    model,
    get tokenizer() {
      tokenizer ??= TextTokenizer.load(dir);
      return tokenizer;
    },
  };
}

export function openAdapters(dirs: readonly string[], model: LanguageModel): LoraAdapter[] {
  return dirs.map((d) => loadAdapter(path.resolve(d), model.config));
}
