/**
 * Small dense linear algebra in float64, column-major: products, Gram matrices, a thin Householder QR,
 * a one-sided Jacobi SVD and principal angles between subspaces. Enough for the r×r and tall-thin
 * matrices of LoRA factors (extension/panel-worker/adapter-diff.ts); not a general library.
 */

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
export function leadingColumns(a: Mat, k: number): Mat {
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
