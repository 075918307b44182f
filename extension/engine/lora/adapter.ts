/**
 * LoRA adapters in PEFT's format: `adapter_config.json` and `adapter_model.safetensors` whose keys are
 * `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`. A is [r, in], B is
 * [out, r], and a targeted linear computes y = x Wᵀ + b + scale·(x Aᵀ) Bᵀ with scale = alpha / r
 * (alpha / √r with rsLoRA). Adapters made here load in PEFT and PEFT's load here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../util/atomic';
import { LORA_MODULES, LoraModule, Qwen2Config, moduleParent, moduleShape } from '../model/config';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../model/safetensors';
import { Rng } from '../../util/rng';

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
  targets: LoraModule[];
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

  get(layer: number, module: LoraModule): LoraMatrices | undefined {
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

export function moduleKey(layer: number, module: LoraModule): string {
  return `${layer}.${module}`;
}

export function peftKey(layer: number, module: LoraModule, matrix: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(module)}.${module}.lora_${matrix}.weight`;
}

function hfModuleName(layer: number, module: LoraModule): string {
  return `model.layers.${layer}.${moduleParent(module)}.${module}`;
}

/** PEFT matches rank/alpha pattern keys against the end of a module's name. */
function patternValue(patterns: Record<string, number>, name: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`(^|\\.)(${key})$`);
    } catch {
      continue;
    }
    if (re.test(name)) return value;
  }
  return undefined;
}

export function moduleRankAndScale(settings: LoraSettings, layer: number, module: LoraModule): { rank: number; scale: number } {
  const name = hfModuleName(layer, module);
  const rank = patternValue(settings.rankPattern, name) ?? settings.rank;
  const alpha = patternValue(settings.alphaPattern, name) ?? settings.alpha;
  return { rank, scale: settings.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

function resolveTargets(raw: unknown, file: string): LoraModule[] {
  if (raw === 'all-linear') return [...LORA_MODULES];
  if (typeof raw === 'string') {
    // PEFT treats a string as a regular expression matched against the whole module name.
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${raw})$`);
    } catch (e) {
      throw new AdapterError(file, `target_modules ${JSON.stringify(raw)} is not a valid regular expression`);
    }
    const hits = LORA_MODULES.filter((m) => re.test(`model.layers.0.${moduleParent(m)}.${m}`) || re.test(m));
    if (hits.length === 0) throw new AdapterError(file, `target_modules ${JSON.stringify(raw)} matches none of ${LORA_MODULES.join(', ')}`);
    return hits;
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new AdapterError(file, 'target_modules must be a non-empty list of module names');
  const out: LoraModule[] = [];
  for (const t of raw) {
    const name = String(t).split('.').pop() as LoraModule;
    if (!LORA_MODULES.includes(name)) {
      throw new AdapterError(file, `target module ${JSON.stringify(t)} does not exist in a Qwen2 model (targets: ${LORA_MODULES.join(', ')})`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

export function parseAdapterConfig(raw: unknown, file: string): LoraSettings {
  if (typeof raw !== 'object' || raw === null) throw new AdapterError(file, 'is not a JSON object');
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== undefined && c.peft_type !== 'LORA') throw new AdapterError(file, `peft_type ${JSON.stringify(c.peft_type)} is not supported (only LORA)`);
  if (c.use_dora === true) throw new AdapterError(file, 'DoRA adapters (use_dora: true) are not supported');
  if (c.fan_in_fan_out === true) throw new AdapterError(file, 'fan_in_fan_out: true is not supported for Qwen2 linear layers');
  if (c.bias !== undefined && c.bias !== 'none') throw new AdapterError(file, `bias ${JSON.stringify(c.bias)} is not supported (only "none")`);
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) throw new AdapterError(file, 'modules_to_save is not supported');
  const rank = c.r;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0) throw new AdapterError(file, `r must be a positive integer, got ${JSON.stringify(rank)}`);
  const alpha = c.lora_alpha ?? rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new AdapterError(file, `lora_alpha must be a number, got ${JSON.stringify(c.lora_alpha)}`);
  let layers: number[] | null = null;
  if (typeof c.layers_to_transform === 'number') layers = [c.layers_to_transform];
  else if (Array.isArray(c.layers_to_transform)) layers = c.layers_to_transform.map(Number);
  const patterns = (v: unknown): Record<string, number> => (v && typeof v === 'object' ? (v as Record<string, number>) : {});
  return {
    rank,
    alpha,
    targets: resolveTargets(c.target_modules, file),
    useRslora: c.use_rslora === true,
    layers,
    rankPattern: patterns(c.rank_pattern),
    alphaPattern: patterns(c.alpha_pattern),
  };
}

function layerIndices(settings: LoraSettings, config: Qwen2Config): number[] {
  return settings.layers ?? Array.from({ length: config.numLayers }, (_, i) => i);
}

export function loadAdapter(dir: string, config: Qwen2Config): LoraAdapter {
  const configFile = path.join(dir, 'adapter_config.json');
  const weightsFile = path.join(dir, 'adapter_model.safetensors');
  if (!fs.existsSync(dir)) throw new AdapterError(dir, 'adapter directory does not exist');
  if (!fs.existsSync(configFile)) throw new AdapterError(configFile, 'is missing; a PEFT adapter directory needs adapter_config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (e) {
    throw new AdapterError(configFile, `is not valid JSON (${(e as Error).message})`);
  }
  const settings = parseAdapterConfig(raw, configFile);
  if (!fs.existsSync(weightsFile)) {
    const bin = path.join(dir, 'adapter_model.bin');
    throw new AdapterError(weightsFile, fs.existsSync(bin) ? 'is missing (adapter_model.bin is a pickle and is not loaded; save with safe_serialization)' : 'is missing');
  }
  for (const l of settings.layers ?? []) {
    if (!Number.isInteger(l) || l < 0 || l >= config.numLayers) throw new AdapterError(configFile, `layers_to_transform names layer ${l}, but the model has ${config.numLayers} layers`);
  }
  const st = SafetensorsFile.open(weightsFile);
  try {
    const modules = new Map<string, LoraMatrices>();
    for (const layer of layerIndices(settings, config)) {
      for (const module of settings.targets) {
        const { in: inp, out } = moduleShape(config, module);
        const { rank, scale } = moduleRankAndScale(settings, layer, module);
        const keyA = peftKey(layer, module, 'A');
        const keyB = peftKey(layer, module, 'B');
        // PEFT also accepts keys saved with the adapter name; accept ".default." variants.
        const find = (k: string) => (st.has(k) ? k : st.has(k.replace('.weight', '.default.weight')) ? k.replace('.weight', '.default.weight') : null);
        const a = find(keyA);
        const b = find(keyB);
        if (!a || !b) throw new AdapterError(weightsFile, `is missing ${!a ? keyA : keyB} (adapter_config.json targets ${module} on layer ${layer})`);
        const shapeA = st.entry(a).shape;
        const shapeB = st.entry(b).shape;
        if (shapeA.length !== 2 || shapeA[0] !== rank || shapeA[1] !== inp) {
          throw new AdapterError(weightsFile, `${a} has shape [${shapeA.join(', ')}], but rank ${rank} on this model needs [${rank}, ${inp}]`);
        }
        if (shapeB.length !== 2 || shapeB[0] !== out || shapeB[1] !== rank) {
          throw new AdapterError(weightsFile, `${b} has shape [${shapeB.join(', ')}], but rank ${rank} on this model needs [${out}, ${rank}]`);
        }
        modules.set(moduleKey(layer, module), { A: st.readFloat32(a), B: st.readFloat32(b), rank, scale });
      }
    }
    const base = (raw as Record<string, unknown>).base_model_name_or_path;
    return new LoraAdapter(settings, modules, typeof base === 'string' ? base : null);
  } finally {
    st.close();
  }
}

export interface NewAdapterOptions {
  rank: number;
  alpha: number;
  targets: readonly LoraModule[];
  seed: number;
  useRslora?: boolean;
  /** `peft`: A ~ kaiming-uniform (a=√5), B = 0, as PEFT initialises; `random`: both small normal. */
  init?: 'peft' | 'random';
}

export function createAdapter(config: Qwen2Config, options: NewAdapterOptions): LoraAdapter {
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

export function saveAdapter(dir: string, adapter: LoraAdapter, baseModel: string, config: Qwen2Config): void {
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
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const s = adapter.settings;
  writeJsonAtomic(path.join(dir, 'adapter_config.json'), {
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
