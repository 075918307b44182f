/**
 * A model's `config.json`, validated: every field the decoder (decoder.ts) uses, with the file named
 * in errors. The description is architecture-neutral — which linear layers carry a bias, how rotary
 * frequencies are made, whether the head is tied to the embedding — so the two decoder families read
 * here, Qwen2 (biases on q, k, v) and Llama (`attention_bias`, `mlp_bias`), differ only in it.
 * Rotary settings are read in both spellings transformers has written: `rope_theta` with
 * `rope_scaling`, and transformers 5's `rope_parameters`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTextFile, UnsafeFileError } from '../../util/safe-fs';

/** How rotary frequencies are stretched for long contexts (transformers' rope types). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface ModelConfig {
  /** Hugging Face's `model_type`. */
  architecture: 'qwen2' | 'llama';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** null: the default rotary frequencies. */
  ropeScaling: RopeScaling | null;
  /** The linear layers that add a bias (Qwen2: q, k and v; Llama: q, k, v, o with attention_bias, the MLP's with mlp_bias). */
  biased: readonly LoraTarget[];
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The raw JSON, written back unchanged (plus our edits) when a full model is saved. */
  raw: Record<string, unknown>;
}

export class ModelFormatError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

/** model_type -> the class transformers builds for it. */
const ARCHITECTURES: Record<ModelConfig['architecture'], string> = { qwen2: 'Qwen2ForCausalLM', llama: 'LlamaForCausalLM' };

/**
 * The largest value of each dimension config.json may give (well above any released model of the
 * family): a config from someone else must not make the loader plan gigabytes or a billion layers
 * before a single file is checked. Weights are then checked against the files' sizes (checkpoint.ts).
 */
export const DIMENSION_LIMITS: Record<string, number> = {
  vocab_size: 4_194_304,
  hidden_size: 65_536,
  intermediate_size: 262_144,
  num_hidden_layers: 1_024,
  num_attention_heads: 1_024,
  num_key_value_heads: 1_024,
  head_dim: 2_048,
  max_position_embeddings: 16_777_216,
};

export function readConfig(modelDir: string): ModelConfig {
  const file = path.join(modelDir, 'config.json');
  let text: string;
  try {
    text = readTextFile(file, 16 * 1024 * 1024);
  } catch (e) {
    if (e instanceof UnsafeFileError) throw new ModelFormatError(file, `cannot be read: it ${e.problem}`);
    if (!fs.existsSync(modelDir)) throw new ModelFormatError(modelDir, 'model directory does not exist');
    throw new ModelFormatError(file, 'is missing; a Hugging Face model directory needs a config.json');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(file, `is not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw, file);
}

export function parseConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelFormatError(file, 'is not a JSON object');
  const c = raw as Record<string, unknown>;
  const archs = Array.isArray(c.architectures) ? (c.architectures as unknown[]) : [];
  const modelType = c.model_type;
  const known = typeof modelType === 'string' && Object.hasOwn(ARCHITECTURES, modelType);
  if (!known || (archs.length > 0 && !archs.includes(ARCHITECTURES[modelType as ModelConfig['architecture']]))) {
    const what = archs.length ? archs.join(', ') : String(modelType);
    const supported = Object.entries(ARCHITECTURES).map(([t, a]) => `${a} (model_type "${t}")`).join(', ');
    throw new ModelFormatError(file, `unsupported architecture ${what} (model_type ${JSON.stringify(modelType)}); supported: ${supported}`);
  }
  const architecture = modelType as ModelConfig['architecture'];
  const posInt = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ModelFormatError(file, `${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
    const max = DIMENSION_LIMITS[key];
    if (max !== undefined && v > max) throw new ModelFormatError(file, `${key} is ${v}, more than ${max}, the largest this engine accepts`);
    return v;
  };
  const posNum = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new ModelFormatError(file, `${key} must be a positive number, got ${JSON.stringify(c[key])}`);
    return v;
  };
  const hiddenSize = posInt('hidden_size');
  const numHeads = posInt('num_attention_heads');
  const numKvHeads = posInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw new ModelFormatError(file, `num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : posInt('head_dim');
  if (!Number.isInteger(headDim)) throw new ModelFormatError(file, `hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads})`);
  if (headDim % 2 !== 0) throw new ModelFormatError(file, `head dimension ${headDim} must be even for rotary embeddings`);
  const rope = ropeSettings(c, file);
  if (c.use_sliding_window === true) throw new ModelFormatError(file, 'use_sliding_window: true is not supported');
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw new ModelFormatError(file, `hidden_act ${JSON.stringify(c.hidden_act)} is not supported (Qwen2 and Llama use silu)`);
  const flag = (key: string): boolean => {
    const v = c[key];
    if (v !== undefined && v !== null && typeof v !== 'boolean') throw new ModelFormatError(file, `${key} must be true or false, got ${JSON.stringify(v)}`);
    return v === true;
  };
  const biased: LoraTarget[] =
    architecture === 'qwen2'
      ? ['q_proj', 'k_proj', 'v_proj']
      : [...(flag('attention_bias') ? (['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) : []), ...(flag('mlp_bias') ? (['gate_proj', 'up_proj', 'down_proj'] as const) : [])];
  const eos = c.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? eos.filter((x): x is number => typeof x === 'number') : typeof eos === 'number' ? [eos] : [];
  return {
    architecture,
    vocabSize: posInt('vocab_size'),
    hiddenSize,
    intermediateSize: posInt('intermediate_size'),
    numLayers: posInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions: posInt('max_position_embeddings', 32768),
    rmsNormEps: posNum('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    biased,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    eosTokenIds,
    raw: c,
  };
}

/** The linear layers LoRA can target, with their (in, out) sizes. */
export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export function moduleShape(config: ModelConfig, module: LoraTarget): { in: number; out: number } {
  const h = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  switch (module) {
    case 'q_proj':
      return { in: h, out: q };
    case 'k_proj':
    case 'v_proj':
      return { in: h, out: kv };
    case 'o_proj':
      return { in: q, out: h };
    case 'gate_proj':
    case 'up_proj':
      return { in: h, out: config.intermediateSize };
    case 'down_proj':
      return { in: config.intermediateSize, out: h };
  }
}

export function moduleParent(module: LoraTarget): 'self_attn' | 'mlp' {
  return module === 'q_proj' || module === 'k_proj' || module === 'v_proj' || module === 'o_proj' ? 'self_attn' : 'mlp';
}

/** Parameters of the model, counted from its config. */
export function parameterCount(config: ModelConfig): number {
  const h = config.hiddenSize;
  let perLayer = 2 * h; // two norms
  for (const m of LORA_TARGETS) {
    const s = moduleShape(config, m);
    perLayer += s.in * s.out;
  }
  for (const m of config.biased) perLayer += moduleShape(config, m).out;
  const embed = config.vocabSize * h;
  return embed + (config.tieWordEmbeddings ? 0 : embed) + config.numLayers * perLayer + h;
}

export function hasBias(config: ModelConfig, module: LoraTarget): boolean {
  return config.biased.includes(module);
}

/**
 * The rotary settings: theta and scaling from `rope_theta` + `rope_scaling`, or from transformers 5's
 * `rope_parameters` (which holds both). Types read: default, linear, llama3 (Llama 3.1 and later).
 */
function ropeSettings(c: Record<string, unknown>, file: string): { theta: number; scaling: RopeScaling | null } {
  const params = c.rope_parameters;
  if (params !== undefined && params !== null && (typeof params !== 'object' || Array.isArray(params))) throw new ModelFormatError(file, 'rope_parameters must be an object');
  const p = (params ?? {}) as Record<string, unknown>;
  const thetaValue = c.rope_theta ?? p.rope_theta ?? 10000;
  if (typeof thetaValue !== 'number' || !(thetaValue > 0) || !Number.isFinite(thetaValue)) throw new ModelFormatError(file, `rope_theta must be a positive number, got ${JSON.stringify(thetaValue)}`);
  const scalingValue = c.rope_scaling ?? (params !== undefined && params !== null ? p : null);
  if (scalingValue === null) return { theta: thetaValue, scaling: null };
  if (typeof scalingValue !== 'object' || Array.isArray(scalingValue)) throw new ModelFormatError(file, 'rope_scaling must be an object');
  const s = scalingValue as Record<string, unknown>;
  const where = c.rope_scaling !== undefined && c.rope_scaling !== null ? 'rope_scaling' : 'rope_parameters';
  const kind = s.rope_type ?? s.type ?? 'default';
  const num = (key: string, fallback?: number): number => {
    const v = s[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new ModelFormatError(file, `${where}.${key} must be a positive number, got ${JSON.stringify(s[key])}`);
    return v;
  };
  switch (kind) {
    case 'default':
      return { theta: thetaValue, scaling: null };
    case 'linear':
      return { theta: thetaValue, scaling: { type: 'linear', factor: num('factor') } };
    case 'llama3': {
      const scaling: RopeScaling = { type: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'), originalMaxPositions: num('original_max_position_embeddings') };
      if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) throw new ModelFormatError(file, `${where}: high_freq_factor must exceed low_freq_factor`);
      return { theta: thetaValue, scaling };
    }
    default:
      throw new ModelFormatError(file, `${where} of type ${JSON.stringify(kind)} is not supported (supported: default, linear, llama3)`);
  }
}

/**
 * The rotary embedding's inverse frequencies, one per pair of head dimensions, after the model's
 * scaling. llama3 (transformers' `_compute_llama3_parameters`): wavelengths longer than
 * original_max_positions / low_freq_factor are slowed by `factor`, shorter than
 * original_max_positions / high_freq_factor kept, and those between interpolated smoothly.
 */
export function ropeInverseFrequencies(config: ModelConfig): number[] {
  const d = config.headDim;
  const base = Array.from({ length: d / 2 }, (_, i) => 1 / Math.pow(config.ropeTheta, (2 * i) / d));
  const s = config.ropeScaling;
  if (s === null) return base;
  if (s.type === 'linear') return base.map((f) => f / s.factor);
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}
