/**
 * LoRA adapters in PEFT's format: `adapter_config.json` and `adapter_model.safetensors` whose keys are
 * `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`. A is [r, in], B is
 * [out, r], and a targeted linear computes y = x Wᵀ + b + scale·(x Aᵀ) Bᵀ with scale = alpha / r
 * (alpha / √r with rsLoRA). Adapters made here load in PEFT and PEFT's load here.
 *
 * One reader, in two steps: `readPeftAdapter` reads a folder as stored, without a model (every LoRA
 * pair it holds, with its shape and scale; what it cannot use becomes a warning), and `fitAdapter`
 * checks that reading against a model and turns it into the `LoraAdapter` the engine runs.
 * `loadAdapter` is the two in a row.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../util/atomic';
import { readTextFile, UnsafeFileError } from '../../util/safe-fs';
import { LORA_TARGETS, LoraTarget, ModelConfig, moduleParent, moduleShape } from '../model/model-config';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../model/safetensors';
import { Rng } from '../../util/rng';
import { RE2JS } from 're2js';

export interface LoraMatrices {
  /** [r, in] row-major. */
  A: Float32Array;
  /** [out, r] row-major. */
  B: Float32Array;
  rank: number;
  /** alpha / r (or alpha / √r) for this module. */
  scale: number;
}

export interface LoraSettings {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  useRslora: boolean;
  /** Layers the adapter touches; null = all. */
  layers: number[] | null;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
}

export class LoraAdapter {
  constructor(
    readonly settings: LoraSettings,
    /** Keyed by `moduleKey(layer, module)`. */
    readonly modules: Map<string, LoraMatrices>,
    readonly baseModel: string | null = null,
  ) {}

  get(layer: number, module: LoraTarget): LoraMatrices | undefined {
    return this.modules.get(moduleKey(layer, module));
  }

  get maxRank(): number {
    let r = 0;
    for (const m of this.modules.values()) r = Math.max(r, m.rank);
    return r;
  }

  get parameterCount(): number {
    let n = 0;
    for (const m of this.modules.values()) n += m.A.length + m.B.length;
    return n;
  }

  clone(): LoraAdapter {
    const modules = new Map<string, LoraMatrices>();
    for (const [k, m] of this.modules) modules.set(k, { ...m, A: m.A.slice(), B: m.B.slice() });
    return new LoraAdapter({ ...this.settings, targets: [...this.settings.targets] }, modules, this.baseModel);
  }
}

export class AdapterError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

export function moduleKey(layer: number, module: LoraTarget): string {
  return `${layer}.${module}`;
}

export function peftKey(layer: number, module: LoraTarget, matrix: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(module)}.${module}.lora_${matrix}.weight`;
}

function hfModuleName(layer: number, module: LoraTarget): string {
  return `model.layers.${layer}.${moduleParent(module)}.${module}`;
}

/**
 * Regular expressions from adapter_config.json (`target_modules` as a string, the keys of
 * `rank_pattern` and `alpha_pattern`) come with someone else's adapter. They run on RE2 (re2js),
 * which matches in time linear in the input whatever the pattern, so `(.*.*.*.*)*X` costs
 * microseconds instead of hanging the loader; RE2 has no backreferences or lookaround, and a pattern
 * using them is refused with the field named.
 */
const MAX_PATTERN_CHARS = 1024;
const MAX_PATTERNS = 4096;
const compiled = new Map<string, RE2JS>();

function compilePattern(source: string, file: string, field: string): RE2JS {
  const cached = compiled.get(source);
  if (cached) return cached;
  if (source.length > MAX_PATTERN_CHARS) throw new AdapterError(file, `${field} is a pattern of ${source.length} characters, more than ${MAX_PATTERN_CHARS}`);
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (e) {
    throw new AdapterError(file, `${field} ${JSON.stringify(source.slice(0, 100))} is not a regular expression this reader accepts (RE2 syntax, without backreferences or lookaround): ${(e as Error).message}`);
  }
  if (compiled.size > 1024) compiled.clear();
  compiled.set(source, re);
  return re;
}

/** PEFT matches rank/alpha pattern keys against the end of a module's name (`(.*\.)?(key)$`). */
function patternValue(patterns: Record<string, number>, name: string, file = 'adapter_config.json', field = 'rank_pattern'): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    if (compilePattern(`(?:.*\\.)?(?:${key})`, file, `${field} key`).matches(name)) return value;
  }
  return undefined;
}

/** A rank_pattern or alpha_pattern object: pattern keys with positive numbers (ranks: integers). */
function readPatterns(v: unknown, file: string, field: string, integer: boolean): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new AdapterError(file, `${field} must be an object of pattern: value`);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_PATTERNS) throw new AdapterError(file, `${field} has ${entries.length} patterns, more than ${MAX_PATTERNS}`);
  const out: Record<string, number> = {};
  for (const [key, value] of entries) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && (!Number.isInteger(value) || value > MAX_RANK))) {
      throw new AdapterError(file, `${field}[${JSON.stringify(key.slice(0, 100))}] must be a positive ${integer ? `integer up to ${MAX_RANK}` : 'number'}, got ${JSON.stringify(value)}`);
    }
    compilePattern(`(?:.*\\.)?(?:${key})`, file, `${field} key`);
    out[key] = value;
  }
  return out;
}

/** LoRA ranks above this are not LoRA; tensor shapes are checked against the file anyway. */
const MAX_RANK = 65_536;

function rankAndScale(config: { rank: number; alpha: number; useRslora: boolean; rankPattern: Record<string, number>; alphaPattern: Record<string, number> }, name: string): { rank: number; scale: number } {
  const rank = patternValue(config.rankPattern, name) ?? config.rank;
  const alpha = patternValue(config.alphaPattern, name) ?? config.alpha;
  return { rank, scale: config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

export function moduleRankAndScale(settings: LoraSettings, layer: number, module: LoraTarget): { rank: number; scale: number } {
  return rankAndScale(settings, hfModuleName(layer, module));
}

// ---------------------------------------------------------------------------------------------------
// Reading a PEFT adapter as stored, without a model

/** What `adapter_config.json` says about the weights. */
export interface PeftConfig {
  r: number;
  lora_alpha: number;
  use_rslora: boolean;
  use_dora: boolean;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  base_model_name_or_path: string | null;
  /** The whole file, for what only a model check looks at (targets, layers, bias, …). */
  raw: Record<string, unknown>;
}

/** One module's update ΔW = scale·B·A as stored. */
export interface LoraModule {
  /** The module's name in the model, e.g. model.layers.0.self_attn.q_proj. */
  key: string;
  layer: number | null;
  /** The last part of the key, e.g. q_proj. */
  module: string;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
  /** r×in, row-major as stored. */
  a: Float32Array;
  /** out×r, row-major as stored. */
  b: Float32Array;
}

export interface PeftAdapter {
  dir: string;
  configFile: string;
  weightsFile: string;
  config: PeftConfig;
  /** By module name (model.layers.0.self_attn.q_proj). */
  modules: Map<string, LoraModule>;
  /** Each module's A and B tensor names in adapter_model.safetensors. */
  tensorNames: Map<string, { a: string; b: string }>;
  /** Things read but not part of the update (DoRA magnitudes, embedding LoRA, a rank that disagrees). */
  warnings: string[];
}

const ADAPTER_CONFIG_FILE = 'adapter_config.json';
const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** PEFT key names: <prefix>.<module>.lora_A[.<adapter name>].weight */
const LORA_KEY = /^(.*)\.lora_([AB])(?:\.([^.]+))?\.weight$/;

/** Reads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) as it is stored. */
export function readPeftAdapter(dir: string): PeftAdapter {
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  const weightsFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const config = readPeftConfig(dir);
  if (!fs.existsSync(weightsFile)) {
    const bin = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new AdapterError(weightsFile, bin ? 'is missing (only adapter_model.bin, a pickle, which is not read; re-save it with safe_serialization=True)' : 'is missing');
  }
  const file = SafetensorsFile.open(weightsFile);
  try {
    return { dir, configFile, weightsFile, config, ...readModules(file, config) };
  } finally {
    file.close();
  }
}

/** Reads just adapter_config.json (cheap: no weights). */
export function readPeftConfig(dir: string): PeftConfig {
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!fs.existsSync(dir)) throw new AdapterError(dir, 'adapter directory does not exist');
  if (!fs.existsSync(configFile)) throw new AdapterError(dir, 'is not a PEFT adapter: it has no adapter_config.json');
  let raw: unknown;
  let text: string;
  try {
    text = readTextFile(configFile, 16 * 1024 * 1024);
  } catch (e) {
    throw new AdapterError(configFile, `cannot be read: ${e instanceof UnsafeFileError ? `it ${e.problem}` : (e as Error).message}`);
  }
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AdapterError(configFile, `is not valid JSON (${(e as Error).message})`);
  }
  return parsePeftConfig(raw, configFile);
}

function parsePeftConfig(raw: unknown, file: string): PeftConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AdapterError(file, 'is not a JSON object');
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== undefined && c.peft_type !== 'LORA') throw new AdapterError(file, `peft_type ${JSON.stringify(c.peft_type)} is not LORA, the only adapter type read`);
  const rank = c.r;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0 || rank > MAX_RANK) throw new AdapterError(file, `r must be a positive integer up to ${MAX_RANK}, got ${JSON.stringify(rank)}`);
  const alpha = c.lora_alpha ?? rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new AdapterError(file, `lora_alpha must be a number, got ${JSON.stringify(c.lora_alpha)}`);
  return {
    r: rank,
    lora_alpha: alpha,
    use_rslora: c.use_rslora === true,
    use_dora: c.use_dora === true,
    rank_pattern: readPatterns(c.rank_pattern, file, 'rank_pattern', true),
    alpha_pattern: readPatterns(c.alpha_pattern, file, 'alpha_pattern', false),
    base_model_name_or_path: typeof c.base_model_name_or_path === 'string' ? c.base_model_name_or_path : null,
    raw: c,
  };
}

function readModules(file: SafetensorsFile, config: PeftConfig): Pick<PeftAdapter, 'modules' | 'tensorNames' | 'warnings'> {
  const warnings: string[] = [];
  const halves = new Map<string, { a?: string; b?: string }>();
  for (const name of file.entries.keys()) {
    const m = LORA_KEY.exec(name);
    if (!m) {
      if (/lora_magnitude_vector/.test(name)) warnings.push('DoRA magnitude vectors are not included in ΔW');
      else if (/lora_embedding_[AB]/.test(name)) warnings.push(`embedding LoRA ${name} is left out`);
      continue;
    }
    const key = m[1].replace(/^base_model\.model\./, '');
    const h = halves.get(key) ?? {};
    if (m[2] === 'A') h.a = name;
    else h.b = name;
    halves.set(key, h);
  }
  const scaling = { rank: config.r, alpha: config.lora_alpha, useRslora: config.use_rslora, rankPattern: config.rank_pattern, alphaPattern: config.alpha_pattern };
  const modules = new Map<string, LoraModule>();
  const tensorNames = new Map<string, { a: string; b: string }>();
  for (const [key, h] of halves) {
    if (!h.a || !h.b) throw new AdapterError(file.file, `${key} has lora_${h.a ? 'A' : 'B'} but no lora_${h.a ? 'B' : 'A'}`);
    const shapeA = file.entry(h.a).shape;
    const shapeB = file.entry(h.b).shape;
    const [rank, inFeatures] = shapeA;
    const [outFeatures, rankB] = shapeB;
    if (shapeA.length !== 2 || shapeB.length !== 2 || rank !== rankB) {
      throw new AdapterError(file.file, `${key} has lora_A of shape [${shapeA}] and lora_B of shape [${shapeB}]; expected [r, in] and [out, r]`);
    }
    const { rank: configured, scale } = rankAndScale(scaling, key);
    if (configured !== rank) warnings.push(`${key}: adapter_config says rank ${configured} but the tensors have rank ${rank}; scaling with ${configured}`);
    const layerMatch = /(?:^|\.)layers\.(\d+)\./.exec(key);
    modules.set(key, {
      key,
      layer: layerMatch ? Number(layerMatch[1]) : null,
      module: key.slice(key.lastIndexOf('.') + 1),
      rank,
      inFeatures,
      outFeatures,
      scale,
      a: file.readFloat32(h.a),
      b: file.readFloat32(h.b),
    });
    tensorNames.set(key, { a: h.a, b: h.b });
  }
  if (config.use_dora && !warnings.some((w) => w.startsWith('DoRA'))) warnings.push('DoRA magnitude vectors are not included in ΔW');
  return { modules, tensorNames, warnings: [...new Set(warnings)] };
}

// ---------------------------------------------------------------------------------------------------
// Checking an adapter against a model

function resolveTargets(raw: unknown, file: string): LoraTarget[] {
  if (raw === 'all-linear') return [...LORA_TARGETS];
  if (typeof raw === 'string') {
    // PEFT treats a string as a regular expression matched against the whole module name (re.fullmatch).
    const re = compilePattern(raw, file, 'target_modules');
    const hits = LORA_TARGETS.filter((m) => re.matches(`model.layers.0.${moduleParent(m)}.${m}`) || re.matches(m));
    if (hits.length === 0) throw new AdapterError(file, `target_modules ${JSON.stringify(raw)} matches none of ${LORA_TARGETS.join(', ')}`);
    return hits;
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new AdapterError(file, 'target_modules must be a non-empty list of module names');
  if (raw.length > MAX_PATTERNS) throw new AdapterError(file, `target_modules lists ${raw.length} names, more than ${MAX_PATTERNS}`);
  const out: LoraTarget[] = [];
  for (const t of raw) {
    const name = String(t).split('.').pop() as LoraTarget;
    if (!LORA_TARGETS.includes(name)) {
      throw new AdapterError(file, `target module ${JSON.stringify(t)} does not exist in a Qwen2 or Llama model (targets: ${LORA_TARGETS.join(', ')})`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** The settings the engine runs an adapter with; what it cannot run is refused, naming the file. */
function loraSettings(peft: PeftAdapter): LoraSettings {
  const { configFile: file, config } = peft;
  const c = config.raw;
  if (config.use_dora) throw new AdapterError(file, 'DoRA adapters (use_dora: true) are not supported');
  if (c.fan_in_fan_out === true) throw new AdapterError(file, 'fan_in_fan_out: true is not supported for Qwen2 and Llama linear layers');
  if (c.bias !== undefined && c.bias !== 'none') throw new AdapterError(file, `bias ${JSON.stringify(c.bias)} is not supported (only "none")`);
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) throw new AdapterError(file, 'modules_to_save is not supported');
  let layers: number[] | null = null;
  if (typeof c.layers_to_transform === 'number') layers = [c.layers_to_transform];
  else if (Array.isArray(c.layers_to_transform)) {
    if (c.layers_to_transform.length > 4096) throw new AdapterError(file, `layers_to_transform lists ${c.layers_to_transform.length} layers, more than 4096`);
    layers = c.layers_to_transform.map(Number);
  }
  return {
    rank: config.r,
    alpha: config.lora_alpha,
    targets: resolveTargets(c.target_modules, file),
    useRslora: config.use_rslora,
    layers,
    rankPattern: config.rank_pattern,
    alphaPattern: config.alpha_pattern,
  };
}

function layerIndices(settings: LoraSettings, config: ModelConfig): number[] {
  return settings.layers ?? Array.from({ length: config.numLayers }, (_, i) => i);
}

/** Checks an adapter as read against a model: every targeted module present, with this model's shapes. */
export function fitAdapter(peft: PeftAdapter, config: ModelConfig): LoraAdapter {
  const settings = loraSettings(peft);
  for (const l of settings.layers ?? []) {
    if (!Number.isInteger(l) || l < 0 || l >= config.numLayers) throw new AdapterError(peft.configFile, `layers_to_transform names layer ${l}, but the model has ${config.numLayers} layers`);
  }
  const modules = new Map<string, LoraMatrices>();
  for (const layer of layerIndices(settings, config)) {
    for (const module of settings.targets) {
      const { in: inp, out } = moduleShape(config, module);
      const { rank, scale } = moduleRankAndScale(settings, layer, module);
      const name = hfModuleName(layer, module);
      const m = peft.modules.get(name);
      const tensors = peft.tensorNames.get(name);
      if (!m || !tensors) throw new AdapterError(peft.weightsFile, `is missing ${peftKey(layer, module, 'A')} (adapter_config.json targets ${module} on layer ${layer})`);
      if (m.rank !== rank || m.inFeatures !== inp) {
        throw new AdapterError(peft.weightsFile, `${tensors.a} has shape [${m.rank}, ${m.inFeatures}], but rank ${rank} on this model needs [${rank}, ${inp}]`);
      }
      if (m.outFeatures !== out) {
        throw new AdapterError(peft.weightsFile, `${tensors.b} has shape [${m.outFeatures}, ${m.rank}], but rank ${rank} on this model needs [${out}, ${rank}]`);
      }
      modules.set(moduleKey(layer, module), { A: m.a, B: m.b, rank, scale });
    }
  }
  return new LoraAdapter(settings, modules, peft.config.base_model_name_or_path);
}

/** Reads an adapter folder and checks it against a model. */
export function loadAdapter(dir: string, config: ModelConfig): LoraAdapter {
  return fitAdapter(readPeftAdapter(dir), config);
}

export interface NewAdapterOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  seed: number;
  useRslora?: boolean;
  /** `peft`: A ~ kaiming-uniform (a=√5), B = 0, as PEFT initialises; `random`: both small normal. */
  init?: 'peft' | 'random';
}

export function createAdapter(config: ModelConfig, options: NewAdapterOptions): LoraAdapter {
  if (!Number.isInteger(options.rank) || options.rank <= 0) throw new Error(`LoRA rank must be a positive integer, got ${options.rank}`);
  const settings: LoraSettings = {
    rank: options.rank,
    alpha: options.alpha,
    targets: [...options.targets],
    useRslora: options.useRslora ?? false,
    layers: null,
    rankPattern: {},
    alphaPattern: {},
  };
  const rng = new Rng(options.seed);
  const modules = new Map<string, LoraMatrices>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const module of settings.targets) {
      const { in: inp, out } = moduleShape(config, module);
      const { rank, scale } = moduleRankAndScale(settings, layer, module);
      const A = new Float32Array(rank * inp);
      const B = new Float32Array(out * rank);
      if ((options.init ?? 'peft') === 'peft') {
        const bound = 1 / Math.sqrt(inp);
        for (let i = 0; i < A.length; i++) A[i] = (rng.uniform() * 2 - 1) * bound;
      } else {
        for (let i = 0; i < A.length; i++) A[i] = rng.normal() * 0.1;
        for (let i = 0; i < B.length; i++) B[i] = rng.normal() * 0.1;
      }
      modules.set(moduleKey(layer, module), { A, B, rank, scale });
    }
  }
  return new LoraAdapter(settings, modules, null);
}

export function saveAdapter(dir: string, adapter: LoraAdapter, baseModel: string, config: ModelConfig): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const layer of layerIndices(adapter.settings, config)) {
    for (const module of adapter.settings.targets) {
      const m = adapter.get(layer, module);
      if (!m) continue;
      const { in: inp, out } = moduleShape(config, module);
      tensors[peftKey(layer, module, 'A')] = { dtype: 'F32', shape: [m.rank, inp], data: m.A };
      tensors[peftKey(layer, module, 'B')] = { dtype: 'F32', shape: [out, m.rank], data: m.B };
    }
  }
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  const s = adapter.settings;
  writeJsonAtomic(path.join(dir, ADAPTER_CONFIG_FILE), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: s.rank,
    lora_alpha: s.alpha,
    lora_dropout: 0.0,
    target_modules: s.targets,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: s.useRslora,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: s.layers,
    layers_pattern: null,
    rank_pattern: s.rankPattern,
    alpha_pattern: s.alphaPattern,
    revision: null,
  });
}
