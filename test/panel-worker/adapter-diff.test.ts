import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deltaFactors, diffAdapters, diffModules } from '../../extension/panel-worker/adapter-diff';
import { readPeftAdapter as loadLoraAdapter, type LoraModule } from '../../extension/engine/lora/adapter';
import { householderQR, jacobiSVD, mat, matmul, principalAngles, transpose, type Mat } from '../../extension/util/linalg';
import { writeSafetensors } from '../../extension/engine/model/safetensors';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';

// ---------------------------------------------------------------------------------------------------
// Brute force: form ΔW = scale·B·A explicitly (out×in, row-major) and compute everything directly.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function lora(key: string, out: number, inn: number, r: number, scale: number, rand: () => number): LoraModule {
  return {
    key,
    layer: 0,
    module: key,
    rank: r,
    inFeatures: inn,
    outFeatures: out,
    scale,
    a: Float32Array.from({ length: r * inn }, rand),
    b: Float32Array.from({ length: out * r }, rand),
  };
}

function explicitDelta(m: LoraModule): Float64Array {
  const w = new Float64Array(m.outFeatures * m.inFeatures);
  for (let o = 0; o < m.outFeatures; o++)
    for (let i = 0; i < m.inFeatures; i++) {
      let s = 0;
      for (let k = 0; k < m.rank; k++) s += m.b[o * m.rank + k] * m.a[k * m.inFeatures + i];
      w[o * m.inFeatures + i] = m.scale * s;
    }
  return w;
}

const dot = (x: Float64Array, y: Float64Array) => x.reduce((s, v, i) => s + v * y[i], 0);
const frob = (x: Float64Array) => Math.sqrt(dot(x, x));

/** Largest singular value by power iteration on WᵀW: independent of the QR/Jacobi route. */
function topSingularValue(w: Float64Array, rows: number, cols: number): number {
  let v = Float64Array.from({ length: cols }, (_, i) => 1 + i / cols);
  let sigma = 0;
  for (let it = 0; it < 2000; it++) {
    const u = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) u[r] += w[r * cols + c] * v[c];
    const next = new Float64Array(cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) next[c] += w[r * cols + c] * u[r];
    const n = frob(next);
    v = next.map((x) => x / n);
    sigma = Math.sqrt(n);
  }
  return sigma;
}

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function orthonormalityError(q: Mat): number {
  const g = matmul(transpose(q), q);
  let e = 0;
  for (let i = 0; i < g.rows; i++) for (let j = 0; j < g.cols; j++) e = Math.max(e, Math.abs(g.data[j * g.rows + i] - (i === j ? 1 : 0)));
  return e;
}

function numpy(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0;
}

describe('adapter diff: linear algebra', () => {
  it('Householder QR gives orthonormal Q and upper-triangular R with QR = A, also for rank-deficient A', () => {
    const rand = rng(3);
    for (const [m, n] of [[9, 4], [4, 4], [3, 5]]) {
      const a = mat(m, n, Float64Array.from({ length: m * n }, rand));
      const { q, r } = householderQR(a);
      assert.ok(orthonormalityError(q) < 1e-12);
      for (let c = 0; c < r.cols; c++) for (let i = c + 1; i < r.rows; i++) assert.equal(r.data[c * r.rows + i], 0);
      const back = matmul(q, r);
      back.data.forEach((v, i) => close(v, a.data[i], 1e-12, 'QR = A'));
    }
    const zero = householderQR(mat(6, 3));
    assert.ok(zero.r.data.every((v) => v === 0));
  });

  it('Jacobi SVD reconstructs the matrix with orthonormal factors and descending singular values', () => {
    const rand = rng(5);
    for (const [p, q] of [[5, 5], [7, 3], [3, 7]]) {
      const a = mat(p, q, Float64Array.from({ length: p * q }, rand));
      const { u, s, v } = jacobiSVD(a);
      assert.ok(orthonormalityError(u) < 1e-12 && orthonormalityError(v) < 1e-12);
      for (let i = 1; i < s.length; i++) assert.ok(s[i - 1] >= s[i]);
      const us = mat(u.rows, u.cols, u.data.map((x, i) => x * s[Math.floor(i / u.rows)]));
      const back = matmul(us, transpose(v));
      back.data.forEach((x, i) => close(x, a.data[i], 1e-12, 'UΣVᵀ = A'));
    }
  });

  it('principal angles: a known angle, identical and orthogonal subspaces', () => {
    const theta = 0.3;
    const e1 = mat(3, 1, Float64Array.from([1, 0, 0]));
    const rotated = mat(3, 1, Float64Array.from([Math.cos(theta), Math.sin(theta), 0]));
    close(principalAngles(e1, rotated)[0], theta, 1e-12, 'angle');
    const plane = mat(3, 2, Float64Array.from([1, 0, 0, 0, 1, 0]));
    assert.deepEqual(principalAngles(plane, plane).map((a) => +a.toFixed(9)), [0, 0]);
    const z = mat(3, 1, Float64Array.from([0, 0, 1]));
    close(principalAngles(plane, z)[0], Math.PI / 2, 1e-12, 'orthogonal');
  });
});

describe('adapter diff: LoRA updates against brute force', () => {
  const rand = rng(11);
  const left = lora('m', 12, 9, 3, 2, rand);
  const right = lora('m', 12, 9, 5, 0.7, rand); // a different rank: allowed, the metrics are of ΔW
  const wl = explicitDelta(left);
  const wr = explicitDelta(right);

  it('norms, difference, cosine and singular values match the explicit ΔW', () => {
    const d = diffModules(left, right);
    close(d.normLeft, frob(wl), 1e-10, '‖ΔW₁‖');
    close(d.normRight, frob(wr), 1e-10, '‖ΔW₂‖');
    close(d.normDiff, frob(wr.map((v, i) => v - wl[i])), 1e-9, '‖ΔW₂ − ΔW₁‖');
    close(d.cosine!, dot(wl, wr) / (frob(wl) * frob(wr)), 1e-10, 'cosine');
    close(d.relativeChange!, frob(wr.map((v, i) => v - wl[i])) / frob(wl), 1e-9, 'relative change');
    assert.equal(d.sigmaLeft.length, 3);
    assert.equal(d.sigmaRight.length, 5);
    close(d.sigmaLeft[0], topSingularValue(wl, 12, 9), 1e-8, 'σ₁ (left)');
    close(d.sigmaRight[0], topSingularValue(wr, 12, 9), 1e-8, 'σ₁ (right)');
    close(Math.hypot(...d.sigmaLeft), frob(wl), 1e-10, 'Σσ² = ‖ΔW‖²');
    assert.equal(d.rankLeft, 3);
    assert.equal(d.rankRight, 5);
    assert.equal(d.columnAngles.length, 3);
    assert.equal(d.rowAngles.length, 3);
  });

  it('the factored form reproduces ΔW = U·diag(σ)·Vᵀ, and its bases are orthonormal', () => {
    const f = deltaFactors(left);
    const u = f.columnBasis;
    const us = mat(u.rows, u.cols, u.data.map((x, i) => x * f.sigma[Math.floor(i / u.rows)]));
    const back = matmul(us, transpose(f.rowBasis)); // column-major out×in
    for (let o = 0; o < 12; o++) for (let i = 0; i < 9; i++) close(back.data[i * 12 + o], wl[o * 9 + i], 1e-12, 'Q_B·core·Q_Aᵀ = ΔW');
    assert.ok(orthonormalityError(f.columnBasis) < 1e-12);
    assert.ok(orthonormalityError(f.rowBasis) < 1e-12);
  });

  it('an update compared with itself: no difference, cosine 1, all angles zero', () => {
    const d = diffModules(left, left);
    assert.ok(d.normDiff < 1e-7 * d.normLeft);
    close(d.cosine!, 1, 1e-12, 'cosine');
    assert.ok(d.columnAngles.every((a) => a < 1e-6) && d.rowAngles.every((a) => a < 1e-6));
    close(d.columnOverlap!, 1, 1e-12, 'overlap');
  });

  it('same column space (B₂ = B₁·M) gives zero column angles; disjoint rows give 90° row angles', () => {
    const r2 = rng(21);
    const a = lora('m', 10, 8, 2, 1, r2);
    const m = [0.5, 2, -1, 1]; // 2×2 invertible, row-major
    const b2 = new Float32Array(10 * 2);
    for (let o = 0; o < 10; o++) for (let j = 0; j < 2; j++) b2[o * 2 + j] = a.b[o * 2] * m[j] + a.b[o * 2 + 1] * m[2 + j];
    const aOnlyFirst = Float32Array.from(a.a, (v, i) => (i % 8 < 4 ? v : 0)); // reads inputs 0..3
    const aOnlyLast = Float32Array.from(a.a, (v, i) => (i % 8 >= 4 ? v : 0)); // reads inputs 4..7
    const d = diffModules({ ...a, a: aOnlyFirst }, { ...a, b: b2, a: aOnlyLast });
    assert.ok(d.columnAngles.every((x) => x < 1e-6), `column angles ${d.columnAngles}`);
    assert.ok(d.rowAngles.every((x) => Math.abs(x - Math.PI / 2) < 1e-6), `row angles ${d.rowAngles}`);
    close(d.cosine!, 0, 1e-12, 'disjoint inputs make ΔW orthogonal');
  });

  it('a freshly initialised adapter (B = 0) has a zero update: no cosine, no angles', () => {
    const zero = { ...left, b: new Float32Array(left.b.length) };
    const d = diffModules(zero, right);
    assert.equal(d.normLeft, 0);
    assert.equal(d.rankLeft, 0);
    assert.equal(d.cosine, null);
    assert.equal(d.relativeChange, null);
    assert.deepEqual(d.columnAngles, []);
    close(d.normDiff, frob(wr), 1e-10, 'the change is all of ΔW₂');
  });

  it('refuses modules of different shapes', () => {
    assert.throws(() => diffModules(left, lora('m', 12, 8, 3, 1, rand)), /same base model/);
  });

  it('agrees with numpy.linalg on a larger random pair', function () {
    if (!numpy()) this.skip();
    const r3 = rng(99);
    const l = lora('big', 64, 48, 8, 2, r3);
    const r = lora('big', 64, 48, 8, 2, r3);
    const d = diffModules(l, r);
    const script = `
import json, sys, numpy as np
d = json.load(sys.stdin)
def delta(m):
    A = np.array(m['a'], dtype=np.float32).astype(np.float64).reshape(m['r'], m['in'])
    B = np.array(m['b'], dtype=np.float32).astype(np.float64).reshape(m['out'], m['r'])
    return m['scale'] * B @ A
W1, W2 = delta(d['l']), delta(d['r'])
def basis(W, side):
    U, s, Vt = np.linalg.svd(W)
    k = int((s > s[0] * 1e-10).sum())
    return U[:, :k] if side == 'col' else Vt[:k].T
def angles(X, Y):
    c = np.linalg.svd(X.T @ Y, compute_uv=False)
    return sorted(np.arccos(np.clip(c, -1, 1)).tolist())
print(json.dumps({
  'n1': np.linalg.norm(W1), 'n2': np.linalg.norm(W2), 'nd': np.linalg.norm(W2 - W1),
  'cos': float((W1 * W2).sum() / (np.linalg.norm(W1) * np.linalg.norm(W2))),
  's1': np.linalg.svd(W1, compute_uv=False)[:8].tolist(),
  'col': angles(basis(W1, 'col'), basis(W2, 'col')), 'row': angles(basis(W1, 'row'), basis(W2, 'row')),
}))`;
    const pack = (m: LoraModule) => ({ a: [...m.a], b: [...m.b], r: m.rank, in: m.inFeatures, out: m.outFeatures, scale: m.scale });
    const res = spawnSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify({ l: pack(l), r: pack(r) }), encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    const np = JSON.parse(res.stdout);
    close(d.normLeft, np.n1, 1e-10, 'norm');
    close(d.normRight, np.n2, 1e-10, 'norm');
    close(d.normDiff, np.nd, 1e-9, 'difference');
    close(d.cosine!, np.cos, 1e-10, 'cosine');
    d.sigmaLeft.forEach((s, i) => close(s, np.s1[i], 1e-9, `σ${i + 1}`));
    d.columnAngles.forEach((a, i) => close(a, np.col[i], 1e-7, `column angle ${i + 1}`));
    d.rowAngles.forEach((a, i) => close(a, np.row[i], 1e-7, `row angle ${i + 1}`));
  });
});

describe('adapter diff: PEFT adapters on disk', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-adapter-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function writeAdapter(dir: string, config: Record<string, unknown>, tensors: Record<string, { shape: number[]; data: Float32Array }>) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', ...config }));
    writeSafetensors(path.join(dir, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { dtype: 'F32' as const, ...t }])));
  }

  it('reads PEFT key names and scales by alpha/r, alpha/√r with rsLoRA, and rank_pattern/alpha_pattern', () => {
    const rand = rng(4);
    const t = (r: number, inn: number, out: number) => ({ A: { shape: [r, inn], data: Float32Array.from({ length: r * inn }, rand) }, B: { shape: [out, r], data: Float32Array.from({ length: out * r }, rand) } });
    const q = t(4, 6, 6);
    const v = t(2, 6, 3);
    const tensors = {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': q.A,
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': q.B,
      'base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight': v.A,
      'base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight': v.B,
    };
    writeAdapter(path.join(tmp, 'plain'), { r: 4, lora_alpha: 8, rank_pattern: { v_proj: 2 }, alpha_pattern: { 'layers.1.self_attn.v_proj': 1 } }, tensors);
    writeAdapter(path.join(tmp, 'rs'), { r: 4, lora_alpha: 8, use_rslora: true, rank_pattern: { v_proj: 2 } }, tensors);
    const plain = loadLoraAdapter(path.join(tmp, 'plain'));
    const qm = plain.modules.get('model.layers.0.self_attn.q_proj')!;
    const vm = plain.modules.get('model.layers.1.self_attn.v_proj')!;
    assert.deepEqual([qm.layer, qm.module, qm.rank, qm.inFeatures, qm.outFeatures, qm.scale], [0, 'q_proj', 4, 6, 6, 2]);
    assert.deepEqual([vm.layer, vm.module, vm.rank, vm.scale], [1, 'v_proj', 2, 0.5]);
    const rs = loadLoraAdapter(path.join(tmp, 'rs'));
    assert.equal(rs.modules.get('model.layers.0.self_attn.q_proj')!.scale, 8 / Math.sqrt(4));
    assert.equal(rs.modules.get('model.layers.1.self_attn.v_proj')!.scale, 8 / Math.sqrt(2));
  });

  it('names the problem with a folder that is not a usable adapter', () => {
    assert.throws(() => loadLoraAdapter(tmp), /no adapter_config\.json/);
    fs.writeFileSync(path.join(tmp, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8 }));
    fs.writeFileSync(path.join(tmp, 'adapter_model.bin'), 'pickle');
    assert.throws(() => loadLoraAdapter(tmp), /only adapter_model\.bin/);
    writeAdapter(path.join(tmp, 'half'), { r: 1, lora_alpha: 1 }, { 'x.q_proj.lora_A.weight': { shape: [1, 2], data: new Float32Array(2) } });
    assert.throws(() => loadLoraAdapter(path.join(tmp, 'half')), /lora_A but no lora_B/);
    writeAdapter(path.join(tmp, 'ia3'), { peft_type: 'IA3', r: 1 }, {});
    assert.throws(() => loadLoraAdapter(path.join(tmp, 'ia3')), /not LORA/);
  });

  it('compares the recorded runs’ adapters, matching a brute-force ΔW from the raw tensors', () => {
    const dir = (run: string, round: number, slot: string) => path.join(FIXTURE_DIR, run, 'rounds', `round-000${round}`, slot);
    const att = loadLoraAdapter(dir(BIPOLICY_ID, 3, 'attacker'));
    const def = loadLoraAdapter(dir(BIPOLICY_ID, 3, 'defender'));
    const diff = diffAdapters(att, def);
    assert.equal(diff.modules.length, 6);
    assert.deepEqual(diff.modules.map((m) => m.layer), [0, 0, 0, 1, 1, 1]);
    assert.deepEqual(diff.onlyLeft, []);
    const m = diff.modules[0];
    const wl = explicitDelta(att.modules.get(m.key)!);
    const wr = explicitDelta(def.modules.get(m.key)!);
    close(m.normLeft, frob(wl), 1e-10, 'norm');
    close(m.cosine!, dot(wl, wr) / (frob(wl) * frob(wr)), 1e-10, 'cosine');
    const initial = diffAdapters(loadLoraAdapter(dir(BIPOLICY_ID, 0, 'attacker')), att);
    assert.ok(initial.modules.every((x) => x.normLeft === 0 && x.cosine === null), 'round 0 adapters start with B = 0');
    const bf16 = loadLoraAdapter(dir(SHARED_ID, 2, 'shared'));
    assert.equal(bf16.modules.size, 6, 'BF16 adapters read too');
  });
});
