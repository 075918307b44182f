/**
 * Optimisers over named float32 parameter tensors, with PyTorch's semantics: AdamW (decoupled weight
 * decay, bias-corrected moments, eps added after the bias-corrected root), plain SGD, global
 * gradient-norm clipping, and learning-rate schedules (linear warmup, then constant, linear or cosine
 * decay). The whole state round-trips through a checkpoint so a resumed run continues exactly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../util/atomic';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../model/safetensors';

export type Params = Map<string, Float32Array>;
export type Grads = Map<string, ArrayLike<number>>;

export interface ScheduleConfig {
  kind: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  /** Steps over which linear/cosine decay from the peak to minLrRatio·lr. */
  totalSteps: number;
  minLrRatio: number;
}

export interface OptimizerConfig {
  kind: 'adamw' | 'sgd';
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Global L2 norm to clip gradients to; null disables clipping. */
  clipNorm: number | null;
  schedule: ScheduleConfig;
}

export function defaultOptimizerConfig(kind: 'adamw' | 'sgd', lr: number, totalSteps = 1): OptimizerConfig {
  return {
    kind,
    lr,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: kind === 'adamw' ? 0.01 : 0,
    clipNorm: kind === 'adamw' ? 1.0 : null,
    schedule: { kind: 'constant', warmupSteps: 0, totalSteps, minLrRatio: 0 },
  };
}

export function scheduledLr(config: OptimizerConfig, step: number): number {
  const s = config.schedule;
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (config.lr * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return config.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  const factor = s.kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return config.lr * (s.minLrRatio + (1 - s.minLrRatio) * factor);
}

export function globalNorm(grads: Grads): number {
  let sum = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

export interface StepReport {
  lr: number;
  gradNorm: number;
  /** True when a non-finite gradient made the step be skipped (parameters and state untouched). */
  skipped: boolean;
}

export class Optimizer {
  /** Number of updates applied so far (Adam's t). */
  step = 0;
  /** Steps skipped for a non-finite loss or gradient; they still consume their batch. */
  skipped = 0;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();

  constructor(readonly config: OptimizerConfig) {}

  apply(params: Params, grads: Grads): StepReport {
    const gradNorm = globalNorm(grads);
    const lr = scheduledLr(this.config, this.step);
    if (!Number.isFinite(gradNorm)) {
      this.skipped++;
      return { lr, gradNorm, skipped: true };
    }
    const c = this.config;
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const clip = c.clipNorm !== null ? Math.min(1, c.clipNorm / (gradNorm + 1e-6)) : 1;
    const t = this.step + 1;
    const [b1, b2] = c.betas;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, t));
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) throw new Error(`no gradient for parameter ${name}`);
      if (g.length !== p.length) throw new Error(`gradient of ${name} has ${g.length} values for ${p.length} parameters`);
      if (c.kind === 'sgd') {
        for (let i = 0; i < p.length; i++) p[i] = p[i] - lr * (g[i] * clip) - lr * c.weightDecay * p[i];
        continue;
      }
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      const decay = 1 - lr * c.weightDecay;
      const stepSize = lr / bc1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * clip;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] = p[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + c.eps);
      }
    }
    this.step = t;
    return { lr, gradNorm, skipped: false };
  }

  /** Records a step skipped before any gradient was formed (non-finite loss). */
  skip(): void {
    this.skipped++;
  }

  /** Batches consumed: applied plus skipped steps. */
  get position(): number {
    return this.step + this.skipped;
  }

  /** Writes `<name>.safetensors` (moments) and `<name>.json` (step and config) into `dir`, atomically. */
  save(dir: string, name: string): void {
    fs.mkdirSync(dir, { recursive: true });
    const tensors: Record<string, TensorToWrite> = {};
    for (const [k, m] of this.m) tensors[`m.${k}`] = { dtype: 'F32', shape: [m.length], data: m };
    for (const [k, v] of this.v) tensors[`v.${k}`] = { dtype: 'F32', shape: [v.length], data: v };
    writeSafetensors(path.join(dir, `${name}.safetensors`), tensors);
    writeJsonAtomic(path.join(dir, `${name}.json`), { step: this.step, skipped: this.skipped, config: this.config });
  }

  static load(dir: string, name: string): Optimizer {
    const jsonFile = path.join(dir, `${name}.json`);
    let meta: { step: number; skipped?: number; config: OptimizerConfig };
    try {
      meta = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
    } catch (e) {
      throw new Error(`${jsonFile}: cannot read optimizer state (${(e as Error).message})`);
    }
    const opt = new Optimizer(meta.config);
    opt.step = meta.step;
    opt.skipped = meta.skipped ?? 0;
    const st = SafetensorsFile.open(path.join(dir, `${name}.safetensors`));
    try {
      for (const key of st.entries.keys()) {
        const data = st.readFloat32(key);
        if (key.startsWith('m.')) opt.m.set(key.slice(2), data);
        else if (key.startsWith('v.')) opt.v.set(key.slice(2), data);
      }
    } finally {
      st.close();
    }
    return opt;
  }
}

/** Sums gradients of micro-batches into `into` (allocated on first use). */
export function accumulate(into: Map<string, Float64Array>, grads: Grads): void {
  for (const [k, g] of grads) {
    let acc = into.get(k);
    if (!acc) {
      acc = new Float64Array(g.length);
      into.set(k, acc);
    }
    for (let i = 0; i < g.length; i++) acc[i] += g[i];
  }
}
