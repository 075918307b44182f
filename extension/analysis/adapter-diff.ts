/**
 * How two LoRA adapters differ, module by module: the size of each update ΔW = scale·B·A, the size of
 * their difference, their cosine, their singular values, and the principal angles between the
 * subspaces they write to (columns) and read from (rows). This is the adapter-diff panel's picture
 * of how separate the attacker and the defender really are.
 *
 * ΔW is out×in (4096×4096 and more for real models) but has rank r (8…64), so nothing here forms it:
 * norms and inner products come from r×r Gram matrices, and everything else from thin QR
 * factorisations B = Q_B·R_B and Aᵀ = Q_A·R_A, which give ΔW = Q_B·(scale·R_B·R_Aᵀ)·Q_Aᵀ — an r×r
 * core between two orthonormal bases. Arithmetic is in float64 whatever the stored dtype.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../engine/model/safetensors';

// ---------------------------------------------------------------------------------------------------
// Small dense linear algebra (column-major, float64)

/** A column-major matrix: element (i, j) is data[j * rows + i]. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array): Mat {
  return { rows, cols, data: data ?? new Float64Array(rows * cols) };
}

/** From row-major storage (as safetensors and PyTorch keep tensors). */
export function fromRowMajor(rows: number, cols: number, src: ArrayLike<number>): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m.data[j * rows + i] = src[i * cols + j];
  return m;
}

export function transpose(a: Mat): Mat {
  const t = mat(a.cols, a.rows);
  for (let j = 0; j < a.cols; j++) for (let i = 0; i < a.rows; i++) t.data[i * a.cols + j] = a.data[j * a.rows + i];
  return t;
}

export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}×${a.cols} by ${b.rows}×${b.cols}`);
  const c = mat(a.rows, b.cols);
  for (let j = 0; j < b.cols; j++) {
    for (let k = 0; k < a.cols; k++) {
      const bkj = b.data[j * b.rows + k];
      if (bkj === 0) continue;
      const aOff = k * a.rows;
      const cOff = j * c.rows;
      for (let i = 0; i < a.rows; i++) c.data[cOff + i] += a.data[aOff + i] * bkj;
    }
  }
  return c;
}

/** Σ x[xo+k]·y[yo+k] for k < n, with four accumulators (the inner loop of everything here). */
function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += x[xo + k] * y[yo + k];
    s1 += x[xo + k + 1] * y[yo + k + 1];
    s2 += x[xo + k + 2] * y[yo + k + 2];
    s3 += x[xo + k + 3] * y[yo + k + 3];
  }
  for (; k < n; k++) s0 += x[xo + k] * y[yo + k];
  return s0 + s1 + s2 + s3;
}

/** y[yo+k] += a·x[xo+k] for k < n. */
function axpy(a: number, x: Float64Array, xo: number, y: Float64Array, yo: number, n: number): void {
  for (let k = 0; k < n; k++) y[yo + k] += a * x[xo + k];
}

/** XᵀY for two matrices with the same number of rows: the cheap way to inner products of tall factors. */
export function crossGram(x: Mat, y: Mat): Mat {
  if (x.rows !== y.rows) throw new Error(`crossGram: ${x.rows} rows against ${y.rows}`);
  const g = mat(x.cols, y.cols);
  const n = x.rows;
  const symmetric = x === y;
  for (let i = 0; i < x.cols; i++) {
    for (let j = symmetric ? i : 0; j < y.cols; j++) {
      const v = dot(x.data, i * n, y.data, j * n, n);
      g.data[j * x.cols + i] = v;
      if (symmetric) g.data[i * x.cols + j] = v;
    }
  }
  return g;
}

/** Σ_ij X_ij·Y_ij, the Frobenius inner product. */
export function frobeniusDot(x: Mat, y: Mat): number {
  let s = 0;
  for (let i = 0; i < x.data.length; i++) s += x.data[i] * y.data[i];
  return s;
}

export interface QR {
  /** m×k with orthonormal columns, k = min(m, n). */
  q: Mat;
  /** k×n, upper triangular. */
  r: Mat;
}

/** A thin QR kept as its Householder reflectors: Q is applied, not stored (it is m×k, R only k×n). */
export interface Householder {
  rows: number;
  /** The reflectors' unit vectors; reflector j acts on rows j… */
  vs: Float64Array[];
  r: Mat;
}

/** Householder reflections (backward stable, unlike Gram–Schmidt or Cholesky on XᵀX). */
export function householder(a: Mat): Householder {
  const m = a.rows;
  const n = a.cols;
  const k = Math.min(m, n);
  const w = new Float64Array(a.data); // reduced in place to R
  const vs: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const off = j * m;
    const len = m - j;
    const norm = Math.sqrt(dot(w, off + j, w, off + j, len));
    const v = new Float64Array(len);
    if (norm === 0) {
      vs.push(v); // nothing to reflect: H = I
      continue;
    }
    const alpha = w[off + j] > 0 ? -norm : norm;
    for (let i = 0; i < len; i++) v[i] = w[off + j + i];
    v[0] -= alpha;
    const vnorm = Math.sqrt(dot(v, 0, v, 0, len));
    if (vnorm > 0) for (let i = 0; i < len; i++) v[i] /= vnorm;
    vs.push(v);
    for (let c = j; c < n; c++) reflect(w, c * m + j, v);
  }
  const r = mat(k, n);
  for (let c = 0; c < n; c++) for (let i = 0; i <= Math.min(c, k - 1); i++) r.data[c * k + i] = w[c * m + i];
  return { rows: m, vs, r };
}

/** Q·X for X with k rows (k = the number of reflectors): X padded with zeros to m rows, reflected. */
export function applyQ(h: Householder, x: Mat): Mat {
  const m = h.rows;
  const k = h.vs.length;
  if (x.rows !== k) throw new Error(`applyQ: ${x.rows} rows, expected ${k}`);
  const out = mat(m, x.cols);
  for (let c = 0; c < x.cols; c++) for (let i = 0; i < k; i++) out.data[c * m + i] = x.data[c * k + i];
  for (let j = k - 1; j >= 0; j--) for (let c = 0; c < x.cols; c++) reflect(out.data, c * m + j, h.vs[j]);
  return out;
}

/** Thin QR with Q formed explicitly. */
export function householderQR(a: Mat): QR {
  const h = householder(a);
  const k = h.vs.length;
  const eye = mat(k, k);
  for (let i = 0; i < k; i++) eye.data[i * k + i] = 1;
  return { q: applyQ(h, eye), r: h.r };
}

/** x ← (I − 2vvᵀ)x for the slice of x starting at `start`. */
function reflect(x: Float64Array, start: number, v: Float64Array): void {
  const d = dot(v, 0, x, start, v.length);
  if (d !== 0) axpy(-2 * d, v, 0, x, start, v.length);
}

export interface SVD {
  /** p×k left singular vectors. */
  u: Mat;
  /** k singular values, descending. */
  s: number[];
  /** q×k right singular vectors. */
  v: Mat;
}

/**
 * One-sided Jacobi SVD (Hestenes): rotate pairs of columns until all are orthogonal; their norms are
 * the singular values. Slow for big matrices, accurate and simple for the r×r cores used here.
 */
export function jacobiSVD(a: Mat, maxSweeps = 80): SVD {
  if (a.rows < a.cols) {
    const t = jacobiSVD(transpose(a), maxSweeps);
    return { u: t.v, s: t.s, v: t.u };
  }
  const p = a.rows;
  const q = a.cols;
  const g = new Float64Array(a.data);
  const v = new Float64Array(q * q);
  for (let i = 0; i < q; i++) v[i * q + i] = 1;
  const eps = 1e-15;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let i = 0; i < q - 1; i++) {
      for (let j = i + 1; j < q; j++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let k = 0; k < p; k++) {
          const gi = g[i * p + k];
          const gj = g[j * p + k];
          alpha += gi * gi;
          beta += gj * gj;
          gamma += gi * gj;
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotateColumns(g, p, i, j, c, s);
        rotateColumns(v, q, i, j, c, s);
      }
    }
    if (!rotated) break;
  }
  const order = Array.from({ length: q }, (_, i) => i);
  const norms = order.map((i) => {
    let n = 0;
    for (let k = 0; k < p; k++) n += g[i * p + k] * g[i * p + k];
    return Math.sqrt(n);
  });
  order.sort((x, y) => norms[y] - norms[x]);
  const u = mat(p, q);
  const vOut = mat(q, q);
  order.forEach((src, dst) => {
    const n = norms[src];
    for (let k = 0; k < p; k++) u.data[dst * p + k] = n > 0 ? g[src * p + k] / n : 0;
    for (let k = 0; k < q; k++) vOut.data[dst * q + k] = v[src * q + k];
  });
  return { u, s: order.map((i) => norms[i]), v: vOut };
}

function rotateColumns(x: Float64Array, rows: number, i: number, j: number, c: number, s: number): void {
  const io = i * rows;
  const jo = j * rows;
  for (let k = 0; k < rows; k++) {
    const xi = x[io + k];
    const xj = x[jo + k];
    x[io + k] = c * xi - s * xj;
    x[jo + k] = s * xi + c * xj;
  }
}

/** The first k columns. */
function leadingColumns(a: Mat, k: number): Mat {
  return mat(a.rows, k, a.data.slice(0, a.rows * k));
}

/** Singular values below this share of the largest one count as zero (exact zeros come from B = 0). */
const RANK_TOLERANCE = 1e-10;

export function numericalRank(sigma: readonly number[]): number {
  const top = sigma[0] ?? 0;
  if (!(top > 0)) return 0;
  return sigma.filter((s) => s > top * RANK_TOLERANCE).length;
}

/**
 * Principal angles (radians, ascending) between the spans of two matrices with orthonormal columns:
 * the arccosines of the singular values of U₁ᵀU₂. There are min(k₁, k₂) of them.
 */
export function principalAngles(u1: Mat, u2: Mat): number[] {
  if (u1.cols === 0 || u2.cols === 0) return [];
  const { s } = jacobiSVD(crossGram(u1, u2));
  return s.map((c) => Math.acos(Math.min(1, Math.max(-1, c)))).sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------
// One LoRA module's update ΔW = scale·B·A

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

export interface DeltaFactors {
  module: LoraModule;
  /** As matrices: B (out×r) and Aᵀ (in×r). */
  b: Mat;
  at: Mat;
  /** ΔW = Q_B·core·Q_Aᵀ, with B = Q_B·R_B and Aᵀ = Q_A·R_A, core = scale·R_B·R_Aᵀ (r×r). */
  core: Mat;
  /** Singular values of ΔW, descending (min(out, in, r) of them). */
  sigma: number[];
  rank: number;
  /** Orthonormal bases of ΔW's column space (out×rank) and row space (in×rank): ΔW = U·diag(σ)·Vᵀ. */
  columnBasis: Mat;
  rowBasis: Mat;
  /** ‖ΔW‖_F from the r×r Gram products: scale²·Σ (BᵀB)∘(AAᵀ). */
  norm: number;
}

export function deltaFactors(m: LoraModule): DeltaFactors {
  const b = fromRowMajor(m.outFeatures, m.rank, m.b);
  const at = mat(m.inFeatures, m.rank, Float64Array.from(m.a)); // A row-major is Aᵀ column-major
  const normSq = m.scale * m.scale * frobeniusDot(crossGram(b, b), crossGram(at, at));
  const qrB = householder(b);
  const qrA = householder(at);
  const core = matmul(qrB.r, transpose(qrA.r));
  for (let i = 0; i < core.data.length; i++) core.data[i] *= m.scale;
  const svd = jacobiSVD(core);
  const rank = numericalRank(svd.s);
  return {
    module: m,
    b,
    at,
    core,
    sigma: svd.s,
    rank,
    // The singular vectors of ΔW are those of the core carried out by Q_B and Q_A.
    columnBasis: applyQ(qrB, leadingColumns(svd.u, rank)),
    rowBasis: applyQ(qrA, leadingColumns(svd.v, rank)),
    norm: Math.sqrt(Math.max(0, normSq)),
  };
}

/** ⟨ΔW₁, ΔW₂⟩_F = s₁s₂·Σ (B₁ᵀB₂)∘(A₁A₂ᵀ), from two r₁×r₂ cross-Gram matrices. */
export function deltaInner(x: DeltaFactors, y: DeltaFactors): number {
  return x.module.scale * y.module.scale * frobeniusDot(crossGram(x.b, y.b), crossGram(x.at, y.at));
}

export interface ModuleDiff {
  key: string;
  layer: number | null;
  module: string;
  outFeatures: number;
  inFeatures: number;
  normLeft: number;
  normRight: number;
  /** ‖ΔW_right − ΔW_left‖_F. */
  normDiff: number;
  /** normDiff / normLeft; null when the left update is zero (e.g. a freshly initialised adapter). */
  relativeChange: number | null;
  /** ⟨ΔW₁,ΔW₂⟩/(‖ΔW₁‖‖ΔW₂‖); null when either update is zero. */
  cosine: number | null;
  sigmaLeft: number[];
  sigmaRight: number[];
  rankLeft: number;
  rankRight: number;
  /** Principal angles in radians, ascending; empty when either update is zero. */
  columnAngles: number[];
  rowAngles: number[];
  /** Mean squared cosine of the principal angles: 1 = same subspace, 0 = orthogonal. */
  columnOverlap: number | null;
  rowOverlap: number | null;
}

export function diffModules(left: LoraModule, right: LoraModule): ModuleDiff {
  if (left.outFeatures !== right.outFeatures || left.inFeatures !== right.inFeatures) {
    throw new Error(`${left.key}: shapes differ (${left.outFeatures}×${left.inFeatures} against ${right.outFeatures}×${right.inFeatures}); are these adapters for the same base model?`);
  }
  return diffFactors(deltaFactors(left), deltaFactors(right));
}

export function diffFactors(l: DeltaFactors, r: DeltaFactors): ModuleDiff {
  const inner = deltaInner(l, r);
  const normDiff = Math.sqrt(Math.max(0, l.norm * l.norm + r.norm * r.norm - 2 * inner));
  const both = l.norm > 0 && r.norm > 0;
  const columnAngles = principalAngles(l.columnBasis, r.columnBasis);
  const rowAngles = principalAngles(l.rowBasis, r.rowBasis);
  const overlap = (angles: number[]) => (angles.length ? angles.reduce((s, a) => s + Math.cos(a) ** 2, 0) / angles.length : null);
  const m = l.module;
  return {
    key: m.key,
    layer: m.layer,
    module: m.module,
    outFeatures: m.outFeatures,
    inFeatures: m.inFeatures,
    normLeft: l.norm,
    normRight: r.norm,
    normDiff,
    relativeChange: l.norm > 0 ? normDiff / l.norm : null,
    cosine: both ? Math.max(-1, Math.min(1, inner / (l.norm * r.norm))) : null,
    sigmaLeft: l.sigma,
    sigmaRight: r.sigma,
    rankLeft: l.rank,
    rankRight: r.rank,
    columnAngles,
    rowAngles,
    columnOverlap: overlap(columnAngles),
    rowOverlap: overlap(rowAngles),
  };
}

// ---------------------------------------------------------------------------------------------------
// PEFT adapters on disk

export interface LoraAdapterConfig {
  r: number;
  lora_alpha: number;
  use_rslora: boolean;
  use_dora: boolean;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  base_model_name_or_path: string | null;
}

export interface LoraAdapter {
  dir: string;
  config: LoraAdapterConfig;
  modules: Map<string, LoraModule>;
  /** Things that were read but are not part of the picture (DoRA magnitudes, embeddings). */
  warnings: string[];
}

export class AdapterError extends Error {}

/** PEFT key names: <prefix>.<module>.lora_A[.<adapter name>].weight */
const LORA_KEY = /^(.*)\.lora_([AB])(?:\.([^.]+))?\.weight$/;

/** Reads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors). */
export function loadLoraAdapter(dir: string): LoraAdapter {
  const configFile = path.join(dir, 'adapter_config.json');
  const weightsFile = path.join(dir, 'adapter_model.safetensors');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AdapterError(code === 'ENOENT' ? `${dir} is not a PEFT adapter: it has no adapter_config.json` : `${configFile}: ${(e as Error).message}`);
  }
  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') throw new AdapterError(`${configFile}: peft_type is ${JSON.stringify(raw.peft_type)}, not LORA`);
  const num = (v: unknown, what: string) => {
    if (typeof v !== 'number' || !(v > 0)) throw new AdapterError(`${configFile}: ${what} must be a positive number, not ${JSON.stringify(v)}`);
    return v;
  };
  const config: LoraAdapterConfig = {
    r: num(raw.r, 'r'),
    lora_alpha: num(raw.lora_alpha ?? raw.r, 'lora_alpha'),
    use_rslora: raw.use_rslora === true,
    use_dora: raw.use_dora === true,
    rank_pattern: (raw.rank_pattern ?? {}) as Record<string, number>,
    alpha_pattern: (raw.alpha_pattern ?? {}) as Record<string, number>,
    base_model_name_or_path: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null,
  };
  if (!fs.existsSync(weightsFile)) {
    const bin = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new AdapterError(`${dir} has no adapter_model.safetensors${bin ? ' (only adapter_model.bin, a pickle, which is not read; re-save it with safe_serialization=True)' : ''}`);
  }
  const file = SafetensorsFile.open(weightsFile);
  try {
    return { dir, config, ...readModules(file, config) };
  } finally {
    file.close();
  }
}

function readModules(file: SafetensorsFile, config: LoraAdapterConfig): { modules: Map<string, LoraModule>; warnings: string[] } {
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
  const modules = new Map<string, LoraModule>();
  for (const [key, h] of halves) {
    if (!h.a || !h.b) throw new AdapterError(`${file.file}: ${key} has lora_${h.a ? 'A' : 'B'} but no lora_${h.a ? 'B' : 'A'}`);
    const [rank, inFeatures] = file.entry(h.a).shape;
    const [outFeatures, rankB] = file.entry(h.b).shape;
    if (file.entry(h.a).shape.length !== 2 || file.entry(h.b).shape.length !== 2 || rank !== rankB) {
      throw new AdapterError(`${file.file}: ${key} has lora_A of shape [${file.entry(h.a).shape}] and lora_B of shape [${file.entry(h.b).shape}]; expected [r, in] and [out, r]`);
    }
    const r = patternValue(config.rank_pattern, key) ?? config.r;
    const alpha = patternValue(config.alpha_pattern, key) ?? config.lora_alpha;
    if (r !== rank) warnings.push(`${key}: adapter_config says rank ${r} but the tensors have rank ${rank}; scaling with ${r}`);
    const layerMatch = /(?:^|\.)layers\.(\d+)\./.exec(key);
    modules.set(key, {
      key,
      layer: layerMatch ? Number(layerMatch[1]) : null,
      module: key.slice(key.lastIndexOf('.') + 1),
      rank,
      inFeatures,
      outFeatures,
      scale: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r,
      a: file.readFloat32(h.a),
      b: file.readFloat32(h.b),
    });
  }
  if (config.use_dora && !warnings.some((w) => w.startsWith('DoRA'))) warnings.push('DoRA magnitude vectors are not included in ΔW');
  return { modules, warnings: [...new Set(warnings)] };
}

/** PEFT's rule: a pattern key matches a module whose name is the key or ends with "." + key (as a regex). */
function patternValue(patterns: Record<string, number>, key: string): number | undefined {
  for (const [p, value] of Object.entries(patterns)) {
    try {
      if (new RegExp(`^(?:.*\\.)?${p}$`).test(key)) return value;
    } catch {
      if (key === p || key.endsWith(`.${p}`)) return value;
    }
  }
  return undefined;
}

export interface AdapterDiff {
  left: { dir: string; rank: number; alpha: number; rslora: boolean };
  right: { dir: string; rank: number; alpha: number; rslora: boolean };
  modules: ModuleDiff[];
  /** Modules present in only one of the two adapters. */
  onlyLeft: string[];
  onlyRight: string[];
  warnings: string[];
}

/** Compares every module the two adapters share, in layer order. */
export function diffAdapters(left: LoraAdapter, right: LoraAdapter, onProgress?: (done: number, total: number) => void): AdapterDiff {
  const shared = [...left.modules.keys()].filter((k) => right.modules.has(k)).sort(byLayerThenName(left.modules));
  const modules: ModuleDiff[] = [];
  shared.forEach((key, i) => {
    modules.push(diffModules(left.modules.get(key)!, right.modules.get(key)!));
    onProgress?.(i + 1, shared.length);
  });
  const describe = (a: LoraAdapter) => ({ dir: a.dir, rank: a.config.r, alpha: a.config.lora_alpha, rslora: a.config.use_rslora });
  return {
    left: describe(left),
    right: describe(right),
    modules,
    onlyLeft: [...left.modules.keys()].filter((k) => !right.modules.has(k)).sort(),
    onlyRight: [...right.modules.keys()].filter((k) => !left.modules.has(k)).sort(),
    warnings: [...new Set([...left.warnings, ...right.warnings])],
  };
}

/** The order modules run in within a transformer layer; other modules follow, by name. */
const MODULE_ORDER = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function byLayerThenName(modules: Map<string, LoraModule>): (a: string, b: string) => number {
  const rank = (m: LoraModule) => {
    const i = MODULE_ORDER.indexOf(m.module);
    return i < 0 ? MODULE_ORDER.length : i;
  };
  return (a, b) => {
    const ma = modules.get(a)!;
    const mb = modules.get(b)!;
    return (ma.layer ?? -1) - (mb.layer ?? -1) || rank(ma) - rank(mb) || a.localeCompare(b);
  };
}
