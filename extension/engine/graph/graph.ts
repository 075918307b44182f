/**
 * The graph builder: a small IR of tensors and ONNX operators with shape inference over symbolic
 * dimensions. Models are described once with it (see ../model/decoder.ts); `onnx.ts` turns a graph into
 * an ONNX model and `autodiff.ts` appends its backward pass. Every op is a real ONNX operator (opset
 * 18), so what is built here is exactly what ONNX Runtime executes.
 */
import { DType, TypedArray, allocate, fromNumbers, isFloat } from './dtype';

/** A dimension: a number, or a symbol (`batch`, `seq`, `past+seq`) known only at run time. */
export type Dim = number | string;
export type Shape = readonly Dim[];

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: ConstantData };

export interface ConstantData {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export class Tensor {
  constructor(
    readonly id: number,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly producer: OpNode | null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}<${this.dtype}>[${this.shape.join(',')}]`;
  }
}

export class OpNode {
  constructor(
    readonly op: string,
    /** `null` stands for an omitted optional input. */
    readonly inputs: readonly (Tensor | null)[],
    readonly outputs: Tensor[],
    readonly attrs: Readonly<Record<string, AttrValue>>,
    readonly domain = '',
  ) {}
}

export class GraphError extends Error {}

/** The largest int64 ONNX Slice accepts as "to the end". */
export const SLICE_END = Number.MAX_SAFE_INTEGER;

export function int(value: number): AttrValue {
  return { kind: 'int', value };
}
export function float(value: number): AttrValue {
  return { kind: 'float', value };
}
export function ints(value: readonly number[]): AttrValue {
  return { kind: 'ints', value };
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function sumDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return `${a}+${b}`;
}

export function broadcastShapes(...shapes: Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i];
      if (d === undefined || d === 1) continue;
      if (dim === 1) dim = d;
      else if (dim !== d) {
        if (typeof dim === 'number' && typeof d === 'number') {
          throw new GraphError(`cannot broadcast shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')}`);
        }
        // A symbol against a number: the number is what run time must agree with.
        if (typeof d === 'number') dim = d;
      }
    }
    out.push(dim);
  }
  return out;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphError(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export class Graph {
  readonly nodes: OpNode[] = [];
  readonly inputs: Tensor[] = [];
  readonly initializers = new Map<Tensor, ConstantData>();
  readonly outputs = new Map<string, Tensor>();
  private nextId = 0;
  private readonly names = new Set<string>();
  private readonly scalarCache = new Map<string, Tensor>();

  constructor(readonly name = 'graph') {}

  // ---- leaves -------------------------------------------------------------------------------

  input(name: string, dtype: DType, shape: Shape): Tensor {
    const t = this.leaf(name, dtype, shape);
    this.inputs.push(t);
    return t;
  }

  initializer(name: string, data: TypedArray, shape: readonly number[], dtype: DType): Tensor {
    if (data.length !== numel(shape)) {
      throw new GraphError(`initializer ${name}: ${data.length} values for shape [${shape.join(',')}]`);
    }
    const t = this.leaf(name, dtype, shape);
    this.initializers.set(t, { dtype, shape: [...shape], data });
    return t;
  }

  /** A small constant, stored as an initializer. Scalars are shared. */
  constant(values: number | readonly number[], dtype: DType, shape?: readonly number[]): Tensor {
    const list = typeof values === 'number' ? [values] : values;
    const dims = shape ?? (typeof values === 'number' ? [] : [list.length]);
    if (typeof values === 'number' && shape === undefined) {
      const key = `${dtype}:${Object.is(values, -0) ? '-0' : values}`;
      const cached = this.scalarCache.get(key);
      if (cached) return cached;
      const t = this.initializer(this.freshName('const'), fromNumbers(dtype, list), dims, dtype);
      this.scalarCache.set(key, t);
      return t;
    }
    return this.initializer(this.freshName('const'), fromNumbers(dtype, list), dims, dtype);
  }

  scalar(value: number, like: Tensor | DType): Tensor {
    return this.constant(value, typeof like === 'string' ? like : like.dtype);
  }

  output(name: string, tensor: Tensor): void {
    if (this.outputs.has(name)) throw new GraphError(`output ${name} is defined twice`);
    this.outputs.set(name, tensor);
  }

  freshName(prefix: string): string {
    let name = `${prefix}_${this.nextId}`;
    while (this.names.has(name)) name = `${prefix}_${++this.nextId}`;
    return name;
  }

  private leaf(name: string, dtype: DType, shape: Shape): Tensor {
    if (this.names.has(name)) throw new GraphError(`tensor name ${name} is used twice`);
    this.names.add(name);
    return new Tensor(this.nextId++, name, dtype, [...shape], null);
  }

  /** Adds one ONNX node; `outputs` gives each output's dtype and inferred shape. */
  node(
    op: string,
    inputs: readonly (Tensor | null)[],
    attrs: Record<string, AttrValue>,
    outputs: readonly { dtype: DType; shape: Shape }[],
    domain = '',
  ): Tensor[] {
    const made: Tensor[] = [];
    const node = new OpNode(op, inputs, made, attrs, domain);
    for (const spec of outputs) {
      const name = this.freshName('t');
      this.names.add(name);
      made.push(new Tensor(this.nextId++, name, spec.dtype, [...spec.shape], node));
    }
    this.nodes.push(node);
    return made;
  }

  private one(op: string, inputs: readonly (Tensor | null)[], attrs: Record<string, AttrValue>, dtype: DType, shape: Shape): Tensor {
    return this.node(op, inputs, attrs, [{ dtype, shape }])[0];
  }

  private fresh(): string {
    return `?${this.nextId++}`;
  }

  // ---- elementwise ------------------------------------------------------------------------------

  private binary(op: string, a: Tensor, b: Tensor, outDtype?: DType): Tensor {
    if (a.dtype !== b.dtype) throw new GraphError(`${op}: dtype ${a.dtype} vs ${b.dtype} (${a} , ${b})`);
    return this.one(op, [a, b], {}, outDtype ?? a.dtype, broadcastShapes(a.shape, b.shape));
  }

  add(a: Tensor, b: Tensor): Tensor {
    return this.binary('Add', a, b);
  }
  sub(a: Tensor, b: Tensor): Tensor {
    return this.binary('Sub', a, b);
  }
  mul(a: Tensor, b: Tensor): Tensor {
    return this.binary('Mul', a, b);
  }
  div(a: Tensor, b: Tensor): Tensor {
    return this.binary('Div', a, b);
  }
  pow(a: Tensor, b: Tensor): Tensor {
    return this.binary('Pow', a, b);
  }
  max(a: Tensor, b: Tensor): Tensor {
    return this.binary('Max', a, b);
  }
  min(a: Tensor, b: Tensor): Tensor {
    return this.binary('Min', a, b);
  }
  equal(a: Tensor, b: Tensor): Tensor {
    return this.binary('Equal', a, b, 'bool');
  }
  less(a: Tensor, b: Tensor): Tensor {
    return this.binary('Less', a, b, 'bool');
  }
  lessOrEqual(a: Tensor, b: Tensor): Tensor {
    return this.binary('LessOrEqual', a, b, 'bool');
  }
  greater(a: Tensor, b: Tensor): Tensor {
    return this.binary('Greater', a, b, 'bool');
  }
  greaterOrEqual(a: Tensor, b: Tensor): Tensor {
    return this.binary('GreaterOrEqual', a, b, 'bool');
  }
  and(a: Tensor, b: Tensor): Tensor {
    return this.binary('And', a, b, 'bool');
  }

  private unary(op: string, x: Tensor, attrs: Record<string, AttrValue> = {}): Tensor {
    return this.one(op, [x], attrs, x.dtype, x.shape);
  }

  neg(x: Tensor): Tensor {
    return this.unary('Neg', x);
  }
  exp(x: Tensor): Tensor {
    return this.unary('Exp', x);
  }
  log(x: Tensor): Tensor {
    return this.unary('Log', x);
  }
  sqrt(x: Tensor): Tensor {
    return this.unary('Sqrt', x);
  }
  reciprocal(x: Tensor): Tensor {
    return this.unary('Reciprocal', x);
  }
  sigmoid(x: Tensor): Tensor {
    return this.unary('Sigmoid', x);
  }
  tanh(x: Tensor): Tensor {
    return this.unary('Tanh', x);
  }
  abs(x: Tensor): Tensor {
    return this.unary('Abs', x);
  }
  cos(x: Tensor): Tensor {
    return this.unary('Cos', x);
  }
  sin(x: Tensor): Tensor {
    return this.unary('Sin', x);
  }
  relu(x: Tensor): Tensor {
    return this.unary('Relu', x);
  }
  not(x: Tensor): Tensor {
    return this.unary('Not', x);
  }
  identity(x: Tensor): Tensor {
    return this.unary('Identity', x);
  }

  cast(x: Tensor, to: DType): Tensor {
    if (x.dtype === to) return x;
    const codes: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };
    return this.one('Cast', [x], { to: int(codes[to]) }, to, x.shape);
  }

  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    if (cond.dtype !== 'bool') throw new GraphError(`Where: condition must be bool, got ${cond}`);
    if (a.dtype !== b.dtype) throw new GraphError(`Where: ${a} vs ${b}`);
    return this.one('Where', [cond, a, b], {}, a.dtype, broadcastShapes(cond.shape, a.shape, b.shape));
  }

  /** Clip with scalar bounds (either may be omitted). */
  clip(x: Tensor, lo: Tensor | null, hi: Tensor | null): Tensor {
    return this.one('Clip', [x, lo, hi], {}, x.dtype, x.shape);
  }

  // ---- linear algebra and layout ------------------------------------------------------------

  matmul(a: Tensor, b: Tensor): Tensor {
    if (a.rank < 2 || b.rank < 2) throw new GraphError(`MatMul needs rank >= 2 operands: ${a}, ${b}`);
    if (a.dtype !== b.dtype) throw new GraphError(`MatMul: ${a} vs ${b}`);
    const k1 = a.shape[a.rank - 1];
    const k2 = b.shape[b.rank - 2];
    if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
      throw new GraphError(`MatMul: inner dimensions differ: ${a} @ ${b}`);
    }
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.one('MatMul', [a, b], {}, a.dtype, [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]]);
  }

  transpose(x: Tensor, perm: readonly number[]): Tensor {
    if (perm.length !== x.rank) throw new GraphError(`Transpose: perm ${perm} for ${x}`);
    return this.one('Transpose', [x], { perm: ints(perm) }, x.dtype, perm.map((p) => x.shape[p]));
  }

  /** Swaps the last two axes. */
  transposeLast(x: Tensor): Tensor {
    const perm = x.shape.map((_, i) => i);
    [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
    return this.transpose(x, perm);
  }

  /**
   * Reshape to a static target (ONNX semantics: 0 copies the input dimension, -1 is inferred) or to a
   * run-time shape tensor, in which case `hint` gives the output shape for inference.
   */
  reshape(x: Tensor, target: readonly number[] | Tensor, hint?: Shape): Tensor {
    if (target instanceof Tensor) {
      if (!hint) throw new GraphError('reshape to a run-time shape needs a shape hint');
      return this.one('Reshape', [x, target], {}, x.dtype, hint);
    }
    const out: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
    const inferred = out.indexOf(-1);
    if (inferred >= 0) {
      const known = out.filter((_, i) => i !== inferred);
      if (isStatic(x.shape) && known.every((d) => typeof d === 'number')) {
        out[inferred] = numel(x.shape) / numel(known as number[]);
      } else {
        out[inferred] = inferDividedDim(x.shape, known) ?? this.fresh();
      }
    }
    return this.one('Reshape', [x, this.constant(target, 'int64')], {}, x.dtype, out);
  }

  unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
    const rank = x.rank + axes.length;
    const norm = axes.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : x.shape[j++]);
    return this.one('Unsqueeze', [x, this.constant(norm, 'int64')], {}, x.dtype, out);
  }

  squeeze(x: Tensor, axes: readonly number[]): Tensor {
    const norm = axes.map((a) => normAxis(a, x.rank));
    for (const a of norm) {
      if (x.shape[a] !== 1) throw new GraphError(`Squeeze: axis ${a} of ${x} is not 1`);
    }
    return this.one('Squeeze', [x, this.constant(norm, 'int64')], {}, x.dtype, x.shape.filter((_, i) => !norm.includes(i)));
  }

  concat(xs: readonly Tensor[], axis: number): Tensor {
    if (xs.length === 0) throw new GraphError('Concat of nothing');
    const a = normAxis(axis, xs[0].rank);
    const shape = [...xs[0].shape];
    for (const t of xs.slice(1)) {
      if (t.rank !== xs[0].rank || t.dtype !== xs[0].dtype) throw new GraphError(`Concat: ${xs[0]} vs ${t}`);
      shape[a] = sumDims(shape[a], t.shape[a]);
    }
    return this.one('Concat', xs, { axis: int(a) }, xs[0].dtype, shape);
  }

  /**
   * Slice along `axes` with static bounds (numbers) or run-time bounds (1-D int64 tensors, then a
   * `hint` gives the output shape).
   */
  slice(x: Tensor, starts: readonly number[] | Tensor, ends: readonly number[] | Tensor, axes: readonly number[], hint?: Shape): Tensor {
    const normAxes = axes.map((a) => normAxis(a, x.rank));
    const axesT = this.constant(normAxes, 'int64');
    if (starts instanceof Tensor || ends instanceof Tensor) {
      if (!hint) throw new GraphError('slice with run-time bounds needs a shape hint');
      const s = starts instanceof Tensor ? starts : this.constant(starts, 'int64');
      const e = ends instanceof Tensor ? ends : this.constant(ends, 'int64');
      return this.one('Slice', [x, s, e, axesT], {}, x.dtype, hint);
    }
    const shape = [...x.shape];
    normAxes.forEach((axis, i) => {
      shape[axis] = slicedDim(x.shape[axis], starts[i], ends[i]) ?? this.fresh();
    });
    return this.one('Slice', [x, this.constant(starts, 'int64'), this.constant(ends, 'int64'), axesT], {}, x.dtype, shape);
  }

  gather(data: Tensor, indices: Tensor, axis = 0): Tensor {
    const a = normAxis(axis, data.rank);
    const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
    return this.one('Gather', [data, indices], { axis: int(a) }, data.dtype, shape);
  }

  gatherElements(data: Tensor, indices: Tensor, axis: number): Tensor {
    return this.one('GatherElements', [data, indices], { axis: int(normAxis(axis, data.rank)) }, data.dtype, indices.shape);
  }

  scatterND(data: Tensor, indices: Tensor, updates: Tensor, reduction: 'none' | 'add' = 'none'): Tensor {
    return this.one('ScatterND', [data, indices, updates], { reduction: { kind: 'string', value: reduction } }, data.dtype, data.shape);
  }

  scatterElements(data: Tensor, indices: Tensor, updates: Tensor, axis: number, reduction: 'none' | 'add' = 'none'): Tensor {
    return this.one(
      'ScatterElements',
      [data, indices, updates],
      { axis: int(normAxis(axis, data.rank)), reduction: { kind: 'string', value: reduction } },
      data.dtype,
      data.shape,
    );
  }

  // ---- reductions and normalisers -------------------------------------------------------------

  private reduce(op: string, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
    const norm = axes.map((a) => normAxis(a, x.rank));
    const shape = keepdims ? x.shape.map((d, i) => (norm.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !norm.includes(i));
    return this.one(op, [x, this.constant(norm, 'int64')], { keepdims: int(keepdims ? 1 : 0) }, x.dtype, shape);
  }

  reduceSum(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.reduce('ReduceSum', x, axes, keepdims);
  }
  reduceMean(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.reduce('ReduceMean', x, axes, keepdims);
  }
  reduceMax(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    return this.reduce('ReduceMax', x, axes, keepdims);
  }

  /** Index of the largest value along `axis` (dropped); ties go to the first index. */
  argMax(x: Tensor, axis: number): Tensor {
    const a = normAxis(axis, x.rank);
    return this.one('ArgMax', [x], { axis: int(a), keepdims: int(0), select_last_index: int(0) }, 'int64', x.shape.filter((_, i) => i !== a));
  }

  /** The k largest values along `axis`, sorted, and their indices. */
  topK(x: Tensor, k: number, axis: number): [Tensor, Tensor] {
    const a = normAxis(axis, x.rank);
    const shape = x.shape.map((d, i) => (i === a ? k : d));
    const [values, indices] = this.node('TopK', [x, this.constant([k], 'int64')], { axis: int(a), largest: int(1), sorted: int(1) }, [
      { dtype: x.dtype, shape },
      { dtype: 'int64', shape },
    ]);
    return [values, indices];
  }

  softmax(x: Tensor, axis = -1): Tensor {
    return this.unary('Softmax', x, { axis: int(normAxis(axis, x.rank)) });
  }
  logSoftmax(x: Tensor, axis = -1): Tensor {
    return this.unary('LogSoftmax', x, { axis: int(normAxis(axis, x.rank)) });
  }

  cumsum(x: Tensor, axis: number): Tensor {
    return this.one('CumSum', [x, this.constant(normAxis(axis, x.rank), 'int64')], {}, x.dtype, x.shape);
  }

  // ---- shapes ---------------------------------------------------------------------------------

  /** The run-time shape of `x` (1-D int64), optionally dims [start, end). */
  shapeOf(x: Tensor, start?: number, end?: number): Tensor {
    const attrs: Record<string, AttrValue> = {};
    if (start !== undefined) attrs.start = int(start);
    if (end !== undefined) attrs.end = int(end);
    const s = start === undefined ? 0 : normAxis(start, x.rank);
    const e = end === undefined ? x.rank : end < 0 ? end + x.rank : end;
    return this.one('Shape', [x], attrs, 'int64', [e - s]);
  }

  /** One dimension of `x` as a 1-D int64 tensor of length 1. */
  dimOf(x: Tensor, axis: number): Tensor {
    const a = normAxis(axis, x.rank);
    const d = x.shape[a];
    if (typeof d === 'number') return this.constant([d], 'int64');
    return this.shapeOf(x, a, a + 1);
  }

  expand(x: Tensor, shape: Tensor, hint: Shape): Tensor {
    return this.one('Expand', [x, shape], {}, x.dtype, broadcastShapes(x.shape, hint));
  }

  constantOfShape(shape: Tensor, value: number, dtype: DType, hint: Shape): Tensor {
    const data = allocate(dtype, 1);
    if (data instanceof BigInt64Array) data[0] = BigInt(value);
    else (data as Float32Array)[0] = value;
    return this.one('ConstantOfShape', [shape], { value: { kind: 'tensor', value: { dtype, shape: [1], data } } }, dtype, hint);
  }

  /** Zeros shaped like `x`. */
  zerosLike(x: Tensor): Tensor {
    if (isStatic(x.shape)) return this.constantOfShape(this.constant(x.shape, 'int64'), 0, x.dtype, x.shape);
    return this.constantOfShape(this.shapeOf(x), 0, x.dtype, x.shape);
  }

  /** [start, limit) with step `delta`; scalars of one dtype. */
  range(start: Tensor, limit: Tensor, delta: Tensor, length?: Dim): Tensor {
    return this.one('Range', [start, limit, delta], {}, start.dtype, [length ?? this.fresh()]);
  }

  /** Constant zero padding; `pads` holds the before-amounts of every axis, then the after-amounts. */
  pad(x: Tensor, pads: Tensor, hint: Shape): Tensor {
    return this.one('Pad', [x, pads], { mode: { kind: 'string', value: 'constant' } }, x.dtype, hint);
  }

  // ---- conveniences built from the ops above -------------------------------------------------

  /** x · s for a plain number s (a scalar constant of x's dtype). */
  scale(x: Tensor, s: number): Tensor {
    if (!isFloat(x.dtype)) throw new GraphError(`scale of non-float ${x}`);
    return this.mul(x, this.scalar(s, x));
  }
}

function slicedDim(dim: Dim, start: number, end: number): Dim | null {
  if (typeof dim === 'number') {
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    return Math.max(clamp(end) - clamp(start), 0);
  }
  if (start === 0 && end >= SLICE_END) return dim;
  if (start >= 0 && end >= 0 && end < SLICE_END) return end - start;
  return null;
}

/** A dimension as a number times a multiset of symbol factors ("2*seq" → 2 and [seq]). */
function factors(d: Dim): { n: number; symbols: string[] } {
  if (typeof d === 'number') return { n: d, symbols: [] };
  let n = 1;
  const symbols: string[] = [];
  for (const part of d.split('*')) {
    const num = Number(part);
    if (part !== '' && Number.isInteger(num)) n *= num;
    else symbols.push(part);
  }
  return { n, symbols };
}

/** For Reshape's -1: the input's dims divided by the known target dims, when that cancels exactly. */
function inferDividedDim(input: Shape, known: readonly Dim[]): Dim | null {
  let numeric = 1;
  const symbols: string[] = [];
  for (const d of input) {
    const f = factors(d);
    numeric *= f.n;
    symbols.push(...f.symbols);
  }
  for (const d of known) {
    const f = factors(d);
    if (numeric % f.n !== 0) return null;
    numeric /= f.n;
    for (const sym of f.symbols) {
      const i = symbols.indexOf(sym);
      if (i < 0) return null;
      symbols.splice(i, 1);
    }
  }
  if (symbols.length === 0) return numeric;
  return [...(numeric === 1 ? [] : [String(numeric)]), ...symbols].join('*');
}
