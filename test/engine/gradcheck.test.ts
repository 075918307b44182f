/**
 * Every gradient rule of the graph builder against central finite differences, in float64 on ONNX
 * Runtime. The loss is Σ op(x)·R for a fixed random R, so each rule is checked on a dense upstream
 * gradient. Some inputs are declared with symbolic dimensions to exercise the run-time-shape paths.
 */
import { strict as assert } from 'node:assert';
import { gradients, hasGradientRule } from '../../extension/engine/graph/autodiff';
import { Graph, Shape, Tensor } from '../../extension/engine/graph/graph';
import { HostTensor } from '../../extension/engine/graph/dtype';
import { GraphSession } from '../../extension/engine/runtime/session';
import { Rng } from '../../extension/util/rng';

interface InputSpec {
  shape: number[];
  /** Declared shape (symbols allowed); defaults to `shape`. */
  declared?: Shape;
  positive?: boolean;
  /** Not differentiated (e.g. indices); values given. */
  fixed?: HostTensor;
}

interface Tolerance {
  h: number;
  absolute: number;
  relative: number;
}
const FLOAT64: Tolerance = { h: 1e-6, absolute: 1e-6, relative: 1e-5 };

async function checkGradient(name: string, specs: InputSpec[], build: (g: Graph, xs: Tensor[]) => Tensor, tol: Tolerance = FLOAT64): Promise<void> {
  const rng = new Rng(name.length * 7919 + 13);
  const values: HostTensor[] = specs.map((s) => {
    if (s.fixed) return s.fixed;
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = s.positive ? 0.5 + rng.uniform() : rng.normal();
    return { dtype: 'float64', dims: s.shape, data };
  });

  const makeGraph = (withGrads: boolean, rShape?: readonly number[]) => {
    const g = new Graph(name);
    const xs = specs.map((s, i) => g.input(`x${i}`, s.fixed ? s.fixed.dtype : 'float64', s.declared ?? s.shape));
    const out = build(g, xs);
    if (!rShape) {
      g.output('out', out);
      return g;
    }
    const r = g.input('r', 'float64', out.shape);
    const loss = g.reduceSum(g.mul(out, r), out.shape.map((_, i) => i), false);
    g.output('loss', loss);
    if (withGrads) {
      const trainable = xs.filter((_, i) => !specs[i].fixed);
      const grads = gradients(g, loss, trainable);
      trainable.forEach((x) => g.output(`grad_${x.name}`, grads.get(x)!));
    }
    return g;
  };

  const feeds = (vals: HostTensor[]) => Object.fromEntries(vals.map((v, i) => [`x${i}`, v]));
  const probe = await GraphSession.create(makeGraph(false), { threads: 1 });
  const outDims = (await probe.run(feeds(values))).out.dims;
  await probe.release();
  const rData = new Float64Array(outDims.reduce((a, b) => a * b, 1)).map(() => rng.normal());
  const r: HostTensor = { dtype: 'float64', dims: outDims, data: rData };

  const train = await GraphSession.create(makeGraph(true, outDims), { threads: 1 });
  const analytic = await train.run({ ...feeds(values), r });
  const lossOnly = await GraphSession.create(makeGraph(false, outDims), { threads: 1 });
  const lossAt = async (vals: HostTensor[]) => ((await lossOnly.run({ ...feeds(vals), r })).loss.data as Float64Array)[0];

  for (let i = 0; i < specs.length; i++) {
    if (specs[i].fixed) continue;
    const grad = analytic[`grad_x${i}`].data as Float64Array;
    const base = values[i].data as Float64Array;
    const picks = base.length <= 24 ? [...base.keys()] : Array.from({ length: 24 }, () => rng.int(base.length));
    for (const k of picks) {
      const plus = base.slice();
      const minus = base.slice();
      plus[k] += tol.h;
      minus[k] -= tol.h;
      const withValue = (d: Float64Array) => values.map((v, j) => (j === i ? { ...v, data: d } : v));
      const numeric = ((await lossAt(withValue(plus))) - (await lossAt(withValue(minus)))) / (2 * tol.h);
      const tolerance = tol.absolute + tol.relative * Math.abs(numeric);
      assert.ok(Math.abs(grad[k] - numeric) <= tolerance, `${name}: d/dx${i}[${k}] analytic ${grad[k]} vs numeric ${numeric}`);
    }
  }
  await train.release();
  await lossOnly.release();
}

const ids = (dims: number[], values: number[]): HostTensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) });

describe('gradient rules (float64 central differences on ONNX Runtime)', () => {
  const cases: [string, InputSpec[], (g: Graph, x: Tensor[]) => Tensor][] = [
    ['Add with broadcasting', [{ shape: [2, 3] }, { shape: [3] }], (g, [a, b]) => g.add(a, b)],
    ['Sub with broadcasting', [{ shape: [2, 1] }, { shape: [2, 3] }], (g, [a, b]) => g.sub(a, b)],
    ['Mul with broadcasting', [{ shape: [2, 3, 4] }, { shape: [1, 3, 1] }], (g, [a, b]) => g.mul(a, b)],
    ['Div', [{ shape: [3, 2] }, { shape: [3, 2], positive: true }], (g, [a, b]) => g.div(a, b)],
    ['Pow with a constant exponent', [{ shape: [5], positive: true }], (g, [a]) => g.pow(a, g.scalar(2.5, a))],
    ['Neg', [{ shape: [4] }], (g, [a]) => g.neg(a)],
    ['Exp', [{ shape: [4] }], (g, [a]) => g.exp(a)],
    ['Log', [{ shape: [4], positive: true }], (g, [a]) => g.log(a)],
    ['Sqrt', [{ shape: [4], positive: true }], (g, [a]) => g.sqrt(a)],
    ['Reciprocal', [{ shape: [4], positive: true }], (g, [a]) => g.reciprocal(a)],
    ['Sigmoid', [{ shape: [6] }], (g, [a]) => g.sigmoid(a)],
    ['Tanh', [{ shape: [6] }], (g, [a]) => g.tanh(a)],
    ['Relu', [{ shape: [6] }], (g, [a]) => g.relu(a)],
    ['Cos', [{ shape: [5] }], (g, [a]) => g.cos(a)],
    ['Sin', [{ shape: [5] }], (g, [a]) => g.sin(a)],
    ['Identity', [{ shape: [3] }], (g, [a]) => g.identity(a)],
    ['Max', [{ shape: [2, 3] }, { shape: [3] }], (g, [a, b]) => g.max(a, b)],
    ['Min', [{ shape: [2, 3] }, { shape: [2, 3] }], (g, [a, b]) => g.min(a, b)],
    ['Clip', [{ shape: [8] }], (g, [a]) => g.clip(a, g.scalar(-0.5, a), g.scalar(0.7, a))],
    ['Where', [{ shape: [2, 3] }, { shape: [2, 3] }, { shape: [2, 3] }], (g, [c, a, b]) => g.where(g.greater(c, g.scalar(0, c)), a, b)],
    ['MatMul 2-D', [{ shape: [3, 4] }, { shape: [4, 2] }], (g, [a, b]) => g.matmul(a, b)],
    ['MatMul batched with a shared weight', [{ shape: [2, 3, 4] }, { shape: [4, 5] }], (g, [a, b]) => g.matmul(a, b)],
    ['MatMul with broadcast batch dims', [{ shape: [2, 3, 2, 4] }, { shape: [2, 1, 4, 3] }], (g, [a, b]) => g.matmul(a, b)],
    ['MatMul with symbolic dims', [{ shape: [2, 3, 4], declared: ['b', 's', 4] }, { shape: [4, 2] }], (g, [a, b]) => g.matmul(a, b)],
    ['Transpose', [{ shape: [2, 3, 4] }], (g, [a]) => g.transpose(a, [2, 0, 1])],
    ['Reshape static', [{ shape: [2, 6] }], (g, [a]) => g.reshape(a, [3, 4])],
    ['Reshape symbolic', [{ shape: [2, 3, 4], declared: ['b', 's', 4] }], (g, [a]) => g.reshape(a, [0, 0, 2, 2])],
    ['Unsqueeze and Squeeze', [{ shape: [3, 2] }], (g, [a]) => g.squeeze(g.mul(g.unsqueeze(a, [1]), g.unsqueeze(a, [1])), [1])],
    ['Expand', [{ shape: [3, 1] }], (g, [a]) => g.expand(a, g.constant([2, 3, 4], 'int64'), [2, 3, 4])],
    ['Concat static', [{ shape: [2, 3] }, { shape: [2, 2] }], (g, [a, b]) => g.concat([a, b], 1)],
    ['Concat symbolic', [{ shape: [2, 3], declared: ['b', 'p'] }, { shape: [2, 2], declared: ['b', 's'] }], (g, [a, b]) => g.concat([a, b], 1)],
    ['Slice static', [{ shape: [3, 6] }], (g, [a]) => g.slice(a, [1], [4], [1])],
    // ONNX Runtime's transpose optimiser rewrites a Pad fed by transposes; this pattern once broke it.
    ['Slice between transposes', [{ shape: [2, 4, 3, 2] }], (g, [a]) => g.transpose(g.slice(g.transpose(a, [0, 2, 1, 3]), [1], [3], [2]), [0, 2, 1, 3])],
    ['Slice symbolic, from the end', [{ shape: [2, 5, 3], declared: ['b', 's', 3] }], (g, [a]) => g.slice(a, [-1], [Number.MAX_SAFE_INTEGER], [1])],
    ['Gather rows with repeats', [{ shape: [5, 3] }, { shape: [2, 3], fixed: ids([2, 3], [1, 4, 1, 0, 1, 3]) }], (g, [a, i]) => g.gather(a, i)],
    ['GatherElements', [{ shape: [2, 3, 5] }, { shape: [2, 3, 1], fixed: ids([2, 3, 1], [0, 4, 2, 2, 1, 3]) }], (g, [a, i]) => g.gatherElements(a, i, 2)],
    ['ReduceSum keepdims', [{ shape: [2, 3, 4] }], (g, [a]) => g.reduceSum(a, [1], true)],
    ['ReduceSum dropping dims', [{ shape: [2, 3, 4] }], (g, [a]) => g.reduceSum(a, [0, 2], false)],
    ['ReduceMean', [{ shape: [2, 3, 4] }], (g, [a]) => g.reduceMean(a, [-1], true)],
    ['ReduceMean symbolic', [{ shape: [2, 3, 4], declared: ['b', 's', 4] }], (g, [a]) => g.reduceMean(a, [1], false)],
    ['Softmax', [{ shape: [2, 5] }], (g, [a]) => g.softmax(a, -1)],
    ['LogSoftmax', [{ shape: [2, 5] }], (g, [a]) => g.logSoftmax(a, -1)],
    ['a tensor used twice (accumulation)', [{ shape: [3, 3] }], (g, [a]) => g.matmul(a, g.tanh(a))],
  ];
  for (const [name, specs, build] of cases) {
    it(name, () => checkGradient(name, specs, build));
  }

  // A round trip through float32 is linear but rounds the input to float32 (relative error 6e-8, so
  // about 6e-8 on inputs of order 1). With h = 1e-2 the central difference of this linear map carries
  // at most 2·6e-8/(2h) ≈ 6e-6 of rounding, hence an absolute tolerance of 1e-4.
  it('Cast float64 → float32 → float64 (float32 tolerance)', () =>
    checkGradient('Cast', [{ shape: [3] }], (g, [a]) => g.cast(g.mul(g.cast(a, 'float32'), g.scalar(2, 'float32')), 'float64'), {
      h: 1e-2,
      absolute: 1e-4,
      relative: 0,
    }));

  it('every differentiable op used by the model has a rule', () => {
    for (const op of ['Add', 'Sub', 'Mul', 'Div', 'MatMul', 'Transpose', 'Reshape', 'Softmax', 'LogSoftmax', 'Gather', 'GatherElements', 'Concat', 'Slice', 'Sigmoid', 'Sqrt', 'Reciprocal', 'ReduceMean', 'Where', 'Cast', 'Unsqueeze', 'Squeeze']) {
      assert.ok(hasGradientRule(op), op);
    }
  });

  it('gives no gradient path through frozen tensors and zero for unrelated inputs', async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [2]);
    const w = g.input('w', 'float64', [2]);
    const unused = g.input('u', 'float64', [2]);
    const loss = g.reduceSum(g.mul(x, w), [0], false);
    const before = g.nodes.length;
    const grads = gradients(g, loss, [w, unused]);
    // d/dw = x: one Expand (ReduceSum's rule) and one Mul; nothing is computed for x.
    const backwardOps = g.nodes.slice(before).map((n) => n.op);
    assert.ok(!backwardOps.includes('MatMul'));
    g.output('gw', grads.get(w)!);
    g.output('gu', grads.get(unused)!);
    const s = await GraphSession.create(g, { threads: 1 });
    const f = (v: number[]): HostTensor => ({ dtype: 'float64', dims: [2], data: Float64Array.from(v) });
    const out = await s.run({ x: f([3, 4]), w: f([1, 1]), u: f([9, 9]) });
    assert.deepEqual(Array.from(out.gw.data as Float64Array), [3, 4]);
    assert.deepEqual(Array.from(out.gu.data as Float64Array), [0, 0]);
    await s.release();
  });
});
