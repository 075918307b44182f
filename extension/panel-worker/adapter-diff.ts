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
import type { LoraModule, PeftAdapter } from '../engine/lora/adapter';
import {
  crossGram,
  frobeniusDot,
  fromRowMajor,
  householder,
  jacobiSVD,
  leadingColumns,
  mat,
  matmul,
  numericalRank,
  principalAngles,
  transpose,
  applyQ,
  type Mat,
} from '../util/linalg';
import type { AdapterDiff, ModuleDiff } from './protocol';

// ---------------------------------------------------------------------------------------------------
// One LoRA module's update ΔW = scale·B·A

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

/** Compares every module the two adapters share, in layer order. */
export function diffAdapters(left: PeftAdapter, right: PeftAdapter, onProgress?: (done: number, total: number) => void): AdapterDiff {
  const shared = [...left.modules.keys()].filter((k) => right.modules.has(k)).sort(byLayerThenName(left.modules));
  const modules: ModuleDiff[] = [];
  shared.forEach((key, i) => {
    modules.push(diffModules(left.modules.get(key)!, right.modules.get(key)!));
    onProgress?.(i + 1, shared.length);
  });
  const describe = (a: PeftAdapter) => ({ dir: a.dir, rank: a.config.r, alpha: a.config.lora_alpha, rslora: a.config.use_rslora });
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
