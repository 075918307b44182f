/**
 * Opens a model directory for inference: the checkpoint, its tokenizer, and optional adapters. The
 * name `builtin:sandbox` stands for the sandbox model shipped with the extension.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LanguageModel, LanguageModelOptions } from '../runtime/language-model';
import { LoraAdapter, loadAdapter } from '../lora/adapter';
import { TextTokenizer } from './tokenizer';

export const BUILTIN_SANDBOX = 'builtin:sandbox';

/** The folder of the extension or package (where package.json is). */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'extension'))) return dir;
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'dist'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export function resolveModelDir(spec: string): string {
  if (spec === BUILTIN_SANDBOX) return path.join(packageRoot(), 'models', 'sandbox');
  return path.resolve(spec);
}

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
