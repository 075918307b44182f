/**
 * Reverse-mode automatic differentiation over the graph builder. Each op has one gradient rule,
 * written with the same builder, so the backward pass is more ONNX nodes in the same graph and ONNX
 * Runtime runs forward and backward in one session. Only tensors that lie on a path from a requested
 * input to the loss get gradients; frozen weights get none. ORT frees each activation after its last
 * use, so the activations kept alive are exactly those the backward rules read.
 */
import { isFloat } from './dtype';
import { Graph, GraphError, OpNode, Tensor, isStatic, numel } from './graph';

type OutputGrads = (Tensor | null)[];
/** Given the gradients of the node's outputs, the gradients of the inputs marked in `need`. */
type Rule = (g: Graph, node: OpNode, dOut: OutputGrads, need: boolean[]) => OutputGrads;

/** Ops whose outputs carry no gradient (indices, shapes, comparisons). */
const NON_DIFFERENTIABLE = new Set(['Shape', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Not', 'Range', 'ConstantOfShape', 'CumSum', 'ArgMax', 'TopK']);

function input(node: OpNode, i: number): Tensor {
  const t = node.inputs[i];
  if (!t) throw new GraphError(`${node.op}: input ${i} is missing`);
  return t;
}

/** The values of a constant (initializer) tensor, used for axes and permutations. */
function constValues(g: Graph, t: Tensor | null): number[] {
  if (!t) return [];
  const c = g.initializers.get(t);
  if (!c) throw new GraphError(`gradient rule needs ${t.name} to be a constant`);
  return Array.from(c.data as ArrayLike<number | bigint>, Number);
}

/** Sums a gradient over the axes along which `x` was broadcast, and restores x's shape. */
export function unbroadcast(g: Graph, grad: Tensor, x: Tensor): Tensor {
  const offset = grad.rank - x.rank;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    const xi = i - offset;
    if (xi < 0 || (x.shape[xi] === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  let out = axes.length ? g.reduceSum(grad, axes, true) : grad;
  if (offset !== 0) out = reshapeLike(g, out, x);
  return out;
}

function reshapeLike(g: Graph, t: Tensor, like: Tensor): Tensor {
  return isStatic(like.shape) ? g.reshape(t, like.shape) : g.reshape(t, g.shapeOf(like), like.shape);
}

function expandLike(g: Graph, t: Tensor, like: Tensor): Tensor {
  return g.expand(t, isStatic(like.shape) ? g.constant(like.shape, 'int64') : g.shapeOf(like), like.shape);
}

/** The number of elements along `axes` of x, as a scalar of x's dtype. */
function countAlong(g: Graph, x: Tensor, axes: readonly number[]): Tensor {
  const dims = axes.map((a) => x.shape[a < 0 ? a + x.rank : a]);
  if (dims.every((d) => typeof d === 'number')) return g.scalar(numel(dims as number[]), x);
  let n = g.cast(g.dimOf(x, axes[0]), x.dtype);
  for (const a of axes.slice(1)) n = g.mul(n, g.cast(g.dimOf(x, a), x.dtype));
  return g.reshape(n, []);
}

const RULES: Record<string, Rule> = {
  Identity: (_g, _n, [d]) => [d],
  Add: (g, n, [d], need) => [need[0] ? unbroadcast(g, d!, input(n, 0)) : null, need[1] ? unbroadcast(g, d!, input(n, 1)) : null],
  Sub: (g, n, [d], need) => [need[0] ? unbroadcast(g, d!, input(n, 0)) : null, need[1] ? unbroadcast(g, g.neg(d!), input(n, 1)) : null],
  Mul: (g, n, [d], need) => {
    const [a, b] = [input(n, 0), input(n, 1)];
    return [need[0] ? unbroadcast(g, g.mul(d!, b), a) : null, need[1] ? unbroadcast(g, g.mul(d!, a), b) : null];
  },
  Div: (g, n, [d], need) => {
    const [a, b] = [input(n, 0), input(n, 1)];
    const y = n.outputs[0];
    return [need[0] ? unbroadcast(g, g.div(d!, b), a) : null, need[1] ? unbroadcast(g, g.neg(g.div(g.mul(d!, y), b)), b) : null];
  },
  Pow: (g, n, [d], need) => {
    if (need[1]) throw new GraphError('Pow: gradient with respect to the exponent is not supported');
    const [a, p] = [input(n, 0), input(n, 1)];
    return [unbroadcast(g, g.mul(d!, g.mul(p, g.pow(a, g.sub(p, g.scalar(1, p))))), a), null];
  },
  Neg: (g, _n, [d]) => [g.neg(d!)],
  Exp: (g, n, [d]) => [g.mul(d!, n.outputs[0])],
  Log: (g, n, [d]) => [g.div(d!, input(n, 0))],
  Sqrt: (g, n, [d]) => [g.div(g.scale(d!, 0.5), n.outputs[0])],
  Reciprocal: (g, n, [d]) => {
    const y = n.outputs[0];
    return [g.neg(g.mul(d!, g.mul(y, y)))];
  },
  Sigmoid: (g, n, [d]) => {
    const y = n.outputs[0];
    return [g.mul(d!, g.mul(y, g.sub(g.scalar(1, y), y)))];
  },
  Tanh: (g, n, [d]) => {
    const y = n.outputs[0];
    return [g.mul(d!, g.sub(g.scalar(1, y), g.mul(y, y)))];
  },
  Relu: (g, n, [d]) => {
    const x = input(n, 0);
    return [g.where(g.greater(x, g.scalar(0, x)), d!, g.scalar(0, x))];
  },
  Cos: (g, n, [d]) => [g.neg(g.mul(d!, g.sin(input(n, 0))))],
  Sin: (g, n, [d]) => [g.mul(d!, g.cos(input(n, 0)))],
  Cast: (g, n, [d]) => {
    const x = input(n, 0);
    return [isFloat(x.dtype) ? g.cast(d!, x.dtype) : null];
  },
  // Ties split the gradient evenly, as torch.maximum / torch.minimum do.
  Max: (g, n, [d], need) => minMaxRule(g, n, d!, need, 'max'),
  Min: (g, n, [d], need) => minMaxRule(g, n, d!, need, 'min'),
  Clip: (g, n, [d], need) => {
    if (need[1] || need[2]) throw new GraphError('Clip: gradients with respect to the bounds are not supported');
    const x = input(n, 0);
    let inside: Tensor | null = null;
    const lo = n.inputs[1];
    const hi = n.inputs[2];
    if (lo) inside = g.greaterOrEqual(x, lo);
    if (hi) inside = inside ? g.and(inside, g.lessOrEqual(x, hi)) : g.lessOrEqual(x, hi);
    return [inside ? g.where(inside, d!, g.scalar(0, d!)) : d, null, null];
  },
  Where: (g, n, [d], need) => {
    const [c, a, b] = [input(n, 0), input(n, 1), input(n, 2)];
    const zero = g.scalar(0, d!);
    return [null, need[1] ? unbroadcast(g, g.where(c, d!, zero), a) : null, need[2] ? unbroadcast(g, g.where(c, zero, d!), b) : null];
  },
  MatMul: (g, n, [d], need) => {
    const [a, b] = [input(n, 0), input(n, 1)];
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (need[0]) da = unbroadcast(g, g.matmul(d!, g.transposeLast(b)), a);
    if (need[1]) {
      if (b.rank === 2 && a.rank > 2) {
        // One 2-D product over all leading dims instead of a batched product and a sum.
        const k = a.shape[a.rank - 1] as number;
        const m = d!.shape[d!.rank - 1] as number;
        db = g.matmul(g.transpose(g.reshape(a, [-1, k]), [1, 0]), g.reshape(d!, [-1, m]));
      } else {
        db = unbroadcast(g, g.matmul(g.transposeLast(a), d!), b);
      }
    }
    return [da, db];
  },
  Transpose: (g, n, [d]) => {
    const perm = (n.attrs.perm as { value: readonly number[] }).value;
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return [g.transpose(d!, inverse)];
  },
  Reshape: (g, n, [d]) => [reshapeLike(g, d!, input(n, 0)), null],
  Unsqueeze: (g, n, [d]) => [g.squeeze(d!, constValues(g, n.inputs[1])), null],
  Squeeze: (g, n, [d]) => [g.unsqueeze(d!, constValues(g, n.inputs[1])), null],
  Expand: (g, n, [d]) => [unbroadcast(g, d!, input(n, 0)), null],
  Concat: (g, n, [d], need) => {
    const axis = (n.attrs.axis as { value: number }).value;
    const parts = n.inputs.map((t) => t!);
    if (parts.every((t) => typeof t.shape[axis] === 'number')) {
      let offset = 0;
      return parts.map((t, i) => {
        const size = t.shape[axis] as number;
        const s = need[i] ? g.slice(d!, [offset], [offset + size], [axis]) : null;
        offset += size;
        return s;
      });
    }
    let offset: Tensor = g.constant([0], 'int64');
    return parts.map((t, i) => {
      const end = g.add(offset, g.dimOf(t, axis));
      const s = need[i] ? g.slice(d!, offset, end, [axis], t.shape) : null;
      offset = end;
      return s;
    });
  },
  Slice: (g, n, [d]) => {
    const x = input(n, 0);
    const starts = constValues(g, n.inputs[1]);
    const ends = constValues(g, n.inputs[2]);
    const axes = n.inputs[3] ? constValues(g, n.inputs[3]) : starts.map((_, i) => i);
    if (n.inputs[4] && constValues(g, n.inputs[4]).some((s) => s !== 1)) throw new GraphError('Slice: gradient needs step 1');
    // Pad the gradient back with zeros before and after each sliced range. Pads are given for every
    // axis: ONNX Runtime's transpose optimiser mishandles Pad's optional `axes` input.
    const zero = g.constant([0], 'int64');
    const before: Tensor[] = x.shape.map(() => zero);
    const after: Tensor[] = x.shape.map(() => zero);
    axes.forEach((axis, i) => {
      const dim = x.shape[axis];
      if (typeof dim === 'number') {
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        before[axis] = g.constant([clamp(starts[i])], 'int64');
        after[axis] = g.constant([dim - clamp(ends[i])], 'int64');
      } else {
        const size = g.dimOf(x, axis);
        const norm = (v: number) => (v < 0 ? g.add(size, g.constant([v], 'int64')) : g.min(size, g.constant([v], 'int64')));
        before[axis] = norm(starts[i]);
        after[axis] = g.sub(size, norm(ends[i]));
      }
    });
    return [g.pad(d!, g.concat([...before, ...after], 0), x.shape), null, null, null, null];
  },
  Gather: (g, n, [d], need) => {
    const [data, idx] = [input(n, 0), input(n, 1)];
    if ((n.attrs.axis as { value: number }).value !== 0) throw new GraphError('Gather: gradient is implemented for axis 0');
    return [need[0] ? g.scatterND(g.zerosLike(data), g.unsqueeze(idx, [-1]), d!, 'add') : null, null];
  },
  GatherElements: (g, n, [d], need) => {
    const [data, idx] = [input(n, 0), input(n, 1)];
    const axis = (n.attrs.axis as { value: number }).value;
    return [need[0] ? g.scatterElements(g.zerosLike(data), idx, d!, axis, 'add') : null, null];
  },
  ReduceSum: (g, n, [d]) => [reduceBack(g, n, d!), null],
  ReduceMean: (g, n, [d]) => {
    const x = input(n, 0);
    const axes = constValues(g, n.inputs[1]);
    return [g.div(reduceBack(g, n, d!), countAlong(g, x, axes)), null];
  },
  Softmax: (g, n, [d]) => {
    const y = n.outputs[0];
    const axis = (n.attrs.axis as { value: number }).value;
    return [g.mul(y, g.sub(d!, g.reduceSum(g.mul(d!, y), [axis], true)))];
  },
  LogSoftmax: (g, n, [d]) => {
    const y = n.outputs[0];
    const axis = (n.attrs.axis as { value: number }).value;
    return [g.sub(d!, g.mul(g.exp(y), g.reduceSum(d!, [axis], true)))];
  },
};

function reduceBack(g: Graph, n: OpNode, d: Tensor): Tensor {
  const x = input(n, 0);
  const axes = constValues(g, n.inputs[1]);
  const keep = (n.attrs.keepdims as { value: number } | undefined)?.value ?? 1;
  return expandLike(g, keep ? d : g.unsqueeze(d, axes), x);
}

function minMaxRule(g: Graph, n: OpNode, d: Tensor, need: boolean[], which: 'max' | 'min'): OutputGrads {
  const [a, b] = [input(n, 0), input(n, 1)];
  const wins = which === 'max' ? g.greater(a, b) : g.less(a, b);
  const ties = g.equal(a, b);
  const zero = g.scalar(0, d);
  const half = g.scale(d, 0.5);
  const forA = g.where(wins, d, g.where(ties, half, zero));
  const forB = g.where(wins, zero, g.where(ties, half, d));
  return [need[0] ? unbroadcast(g, forA, a) : null, need[1] ? unbroadcast(g, forB, b) : null];
}

export function hasGradientRule(op: string): boolean {
  return op in RULES || NON_DIFFERENTIABLE.has(op);
}

/**
 * Appends to `g` the gradient of the scalar `loss` with respect to each tensor of `wrt` and returns
 * them (a zero tensor for one the loss does not depend on).
 */
export function gradients(g: Graph, loss: Tensor, wrt: readonly Tensor[]): Map<Tensor, Tensor> {
  if (loss.rank !== 0) throw new GraphError(`the loss must be a scalar, got ${loss}`);
  const forward = [...g.nodes];

  // Tensors that depend on a requested input through differentiable ops.
  const varies = new Set<Tensor>(wrt);
  for (const node of forward) {
    if (NON_DIFFERENTIABLE.has(node.op)) continue;
    if (node.inputs.some((t) => t !== null && varies.has(t))) for (const o of node.outputs) if (isFloat(o.dtype)) varies.add(o);
  }
  // Nodes the loss depends on.
  const onPath = new Set<OpNode>();
  const stack = [loss];
  const seen = new Set<Tensor>();
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !varies.has(t) || !t.producer) continue;
    seen.add(t);
    onPath.add(t.producer);
    for (const i of t.producer.inputs) if (i) stack.push(i);
  }

  const pending = new Map<Tensor, Tensor[]>();
  const add = (t: Tensor, grad: Tensor) => {
    const list = pending.get(t);
    if (list) list.push(grad);
    else pending.set(t, [grad]);
  };
  const total = (t: Tensor): Tensor | null => {
    const list = pending.get(t);
    if (!list) return null;
    const sum = list.reduce((acc, x) => g.add(acc, x));
    pending.set(t, [sum]);
    return sum;
  };

  add(loss, g.scalar(1, loss));
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    if (!onPath.has(node)) continue;
    const dOut = node.outputs.map(total);
    if (dOut.every((d) => d === null)) continue;
    const rule = RULES[node.op];
    if (!rule) throw new GraphError(`no gradient rule for ${node.op}`);
    const need = node.inputs.map((t) => t !== null && varies.has(t));
    const dIn = rule(g, node, dOut, need);
    node.inputs.forEach((t, k) => {
      const d = dIn[k];
      if (t && need[k] && d) add(t, d);
    });
  }
  const result = new Map<Tensor, Tensor>();
  for (const w of wrt) result.set(w, total(w) ?? g.zerosLike(w));
  return result;
}
