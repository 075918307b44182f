/**
 * Loads and saves Hugging Face Qwen2 and Llama checkpoints: `config.json` plus `model.safetensors`, or shards
 * listed in `model.safetensors.index.json`. Weights are held as float32 under their HF names.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../util/atomic';
import { readTextFile } from '../../util/safe-fs';
import { ModelFormatError, ModelConfig, LORA_TARGETS, hasBias, moduleParent, moduleShape, readConfig } from './model-config';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from './safetensors';

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}
export type Weights = Map<string, WeightTensor>;

/** Every tensor the model's checkpoint must hold, with its shape. */
export function expectedWeights(config: ModelConfig): Map<string, number[]> {
  const h = config.hiddenSize;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [config.vocabSize, h]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    for (const mod of LORA_TARGETS) {
      const s = moduleShape(config, mod);
      m.set(`${p}.${moduleParent(mod)}.${mod}.weight`, [s.out, s.in]);
      if (hasBias(config, mod)) m.set(`${p}.${moduleParent(mod)}.${mod}.bias`, [s.out]);
    }
    m.set(`${p}.input_layernorm.weight`, [h]);
    m.set(`${p}.post_attention_layernorm.weight`, [h]);
  }
  m.set('model.norm.weight', [h]);
  if (!config.tieWordEmbeddings) m.set('lm_head.weight', [config.vocabSize, h]);
  return m;
}

function shardFiles(modelDir: string): { files: string[]; owner: Map<string, string> | null } {
  const single = path.join(modelDir, 'model.safetensors');
  const indexFile = path.join(modelDir, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readTextFile(indexFile, 64 * 1024 * 1024));
    } catch (e) {
      throw new ModelFormatError(indexFile, `is not valid JSON (${(e as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') throw new ModelFormatError(indexFile, 'has no weight_map object');
    const owner = new Map<string, string>();
    for (const [name, file] of Object.entries(index.weight_map)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) throw new ModelFormatError(indexFile, `weight_map entry ${name} names an invalid file ${JSON.stringify(file)}`);
      owner.set(name, path.join(modelDir, file));
    }
    return { files: [...new Set(owner.values())], owner };
  }
  if (fs.existsSync(single)) return { files: [single], owner: null };
  const pickles = fs.readdirSync(modelDir).filter((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'));
  const hint = pickles.length ? ` (found ${pickles.join(', ')}: pickle checkpoints are not loaded; convert them to safetensors)` : '';
  throw new ModelFormatError(modelDir, `has neither model.safetensors nor model.safetensors.index.json${hint}`);
}

export interface LoadedCheckpoint {
  dir: string;
  config: ModelConfig;
  weights: Weights;
}

export function loadCheckpoint(modelDir: string): LoadedCheckpoint {
  const config = readConfig(modelDir);
  const { files, owner } = shardFiles(modelDir);
  const expected = expectedWeights(config);
  const opened = new Map<string, SafetensorsFile>();
  const open = (file: string) => {
    let f = opened.get(file);
    if (!f) {
      f = SafetensorsFile.open(file);
      opened.set(file, f);
    }
    return f;
  };
  try {
    for (const f of files) open(f);
    // Every tensor config.json implies must be in a header, with that shape, before any is read: each
    // header's byte ranges were checked against its file, so the dimensions config.json claims are
    // checked against the files' sizes before anything is allocated.
    const located: [string, number[], SafetensorsFile][] = [];
    for (const [name, shape] of expected) {
      const file = owner ? owner.get(name) : files[0];
      const st = file ? open(file) : undefined;
      if (!st || !st.has(name)) {
        throw new ModelFormatError(file ?? modelDir, `is missing tensor ${name} (expected shape [${shape.join(', ')}])`);
      }
      const entry = st.entry(name);
      if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFormatError(st.file, `tensor ${name} has shape [${entry.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
      }
      located.push([name, shape, st]);
    }
    const weights: Weights = new Map();
    for (const [name, shape, st] of located) weights.set(name, { shape, data: st.readFloat32(name) });
    return { dir: modelDir, config, weights };
  } finally {
    for (const f of opened.values()) f.close();
  }
}

/** Writes a full model directory (config.json + model.safetensors in float32). */
export function saveCheckpoint(dir: string, config: ModelConfig, weights: Weights, extraFiles: Record<string, string> = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of weights) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeJsonAtomic(path.join(dir, 'config.json'), { ...config.raw, torch_dtype: 'float32' });
  for (const [name, content] of Object.entries(extraFiles)) fs.writeFileSync(path.join(dir, name), content);
}
