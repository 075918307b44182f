/**
 * The Qwen2 decoder (Hugging Face `Qwen2ForCausalLM`), described once with the graph builder.
 *
 * One graph serves every use: rollouts (KV cache, logits of the last position), scoring and training
 * (log-probabilities of given next tokens), with the base weights frozen as initializers or fed as
 * trainable inputs. LoRA adapters are graph inputs stacked into "slots": each row of the batch names
 * its slot (or -1 for the frozen base), so the attacker's and the defender's rows share one pass over
 * the base weights and each adds only its own low-rank term.
 */
import { Graph, Shape, Tensor, SLICE_END } from '../graph/graph';
import { ModelConfig, LoraTarget, moduleParent, moduleShape } from './config';
import { Weights } from './checkpoint';

export type FloatType = 'float32' | 'float64';

/** How adapters appear in a graph: `slots` adapters, each padded to `rank`, on `targets`. */
export interface LoraLayout {
  slots: number;
  rank: number;
  targets: readonly LoraTarget[];
}

export interface Qwen2GraphSpec {
  config: ModelConfig;
  dtype: FloatType;
  /** Frozen weights become initializers; trainable ones become graph inputs (HF names). */
  weights: { kind: 'frozen'; data: Weights } | { kind: 'trainable' };
  lora: LoraLayout | null;
  kvCache: boolean;
  /**
   * `last-logits`: [batch, vocab] at the last position. `next-token` / `next-token-top-p`: the next
   * token chosen in the graph (see nextTokenHead). `token-logprobs`: log p(targets) [batch, seq].
   */
  head: 'last-logits' | 'greedy-token' | 'next-token' | 'next-token-top-p' | 'token-logprobs';
}

export interface Qwen2Graph {
  graph: Graph;
  /** log p(targets[b, t] | ids[b, ≤t]) when the head is token-logprobs. */
  tokenLogprobs: Tensor | null;
  /** Trainable base weights by HF name (empty when frozen). */
  weightInputs: Map<string, Tensor>;
  /** LoRA inputs by `loraInputName`. */
  loraInputs: Map<string, Tensor>;
}

export function loraInputName(layer: number, module: LoraTarget, matrix: 'A' | 'B'): string {
  return `lora.${layer}.${module}.${matrix}`;
}

/** This call's keys/values of a layer, [batch, kv, seq, D]: the host appends them to its cache. */
export function presentName(layer: number, which: 'key' | 'value'): string {
  return `new.${layer}.${which}`;
}
/** A layer's cached keys/values, [batch, kv, cache, D] (cache length 0 on the first call). */
export function pastName(layer: number, which: 'key' | 'value'): string {
  return `cache.${layer}.${which}`;
}

export function buildQwen2(spec: Qwen2GraphSpec): Qwen2Graph {
  const { config: c, dtype, lora } = spec;
  const g = new Graph('qwen2');
  const D = c.headDim;
  const KV = c.numKvHeads;
  const G = c.numHeads / c.numKvHeads;
  const weightInputs = new Map<string, Tensor>();
  const loraInputs = new Map<string, Tensor>();

  // ---- weights ----------------------------------------------------------------------------------
  const frozen = spec.weights.kind === 'frozen' ? spec.weights.data : null;
  const raw = (name: string, shape: number[]): Tensor => {
    if (!frozen) {
      const t = g.input(name, dtype, shape);
      weightInputs.set(name, t);
      return t;
    }
    const w = frozen.get(name);
    if (!w) throw new Error(`weight ${name} is missing`);
    return g.initializer(name, dtype === 'float64' ? Float64Array.from(w.data) : w.data, shape, dtype);
  };
  /** A linear layer's weight as [in, out], ready for x @ W. Frozen weights are stored transposed. */
  const linearWeight = (name: string, out: number, inp: number): Tensor => {
    if (!frozen) return g.transpose(raw(name, [out, inp]), [1, 0]);
    const w = frozen.get(name);
    if (!w) throw new Error(`weight ${name} is missing`);
    const t = transposeMatrix(w.data, out, inp, dtype);
    return g.initializer(`${name}.T`, t, [inp, out], dtype);
  };

  // ---- inputs -----------------------------------------------------------------------------------
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const total = spec.kvCache ? 'cache+seq' : 'seq';
  const attentionMask = g.input('attention_mask', 'int64', ['batch', total]);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);

  let rowScale: Tensor | null = null;
  if (lora) {
    const adapterIndex = g.input('adapter_index', 'int64', ['batch']);
    const loraScale = g.input('lora_scale', dtype, [lora.slots]);
    const width = lora.slots * lora.rank;
    const slotOfColumn = Array.from({ length: width }, (_, col) => Math.floor(col / lora.rank));
    const slotConst = g.constant(slotOfColumn, 'int64');
    const owns = g.cast(g.equal(g.unsqueeze(adapterIndex, [1]), slotConst), dtype); // [batch, width]
    rowScale = g.unsqueeze(g.mul(owns, g.gather(loraScale, slotConst)), [1]); // [batch, 1, width]
  }

  const linear = (x: Tensor, layer: number, module: LoraTarget): Tensor => {
    const { in: inp, out } = moduleShape(c, module);
    const base = `model.layers.${layer}.${moduleParent(module)}.${module}`;
    let y = g.matmul(x, linearWeight(`${base}.weight`, out, inp));
    if (module === 'q_proj' || module === 'k_proj' || module === 'v_proj') y = g.add(y, raw(`${base}.bias`, [out]));
    if (lora && rowScale && lora.targets.includes(module)) {
      const width = lora.slots * lora.rank;
      const A = g.input(loraInputName(layer, module, 'A'), dtype, [width, inp]);
      const B = g.input(loraInputName(layer, module, 'B'), dtype, [out, width]);
      loraInputs.set(A.name, A);
      loraInputs.set(B.name, B);
      const h = g.mul(g.matmul(x, g.transpose(A, [1, 0])), rowScale);
      y = g.add(y, g.matmul(h, g.transpose(B, [1, 0])));
    }
    return y;
  };

  const rmsNorm = (x: Tensor, weightName: string): Tensor => {
    const variance = g.reduceMean(g.mul(x, x), [-1]);
    const inv = g.reciprocal(g.sqrt(g.add(variance, g.scalar(c.rmsNormEps, dtype))));
    return g.mul(raw(weightName, [c.hiddenSize]), g.mul(x, inv));
  };

  // ---- rotary embedding: cos/sin of position · inv_freq, duplicated to the rotate-half layout ---
  const invFreq = Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / D));
  const freqs = g.mul(g.unsqueeze(g.cast(positionIds, dtype), [2]), g.constant(invFreq, dtype)); // [b, s, D/2]
  const angles = g.concat([freqs, freqs], -1); // [b, s, D]
  // Broadcast over the [batch, kv, group, seq, D] layout used below.
  const cos = g.unsqueeze(g.cos(angles), [1, 2]);
  const sin = g.unsqueeze(g.sin(angles), [1, 2]);
  const rotateHalf = (x: Tensor): Tensor => {
    const x1 = g.slice(x, [0], [D / 2], [-1]);
    const x2 = g.slice(x, [D / 2], [D], [-1]);
    return g.concat([g.neg(x2), x1], -1);
  };
  const rope = (x: Tensor): Tensor => g.add(g.mul(x, cos), g.mul(rotateHalf(x), sin));

  // ---- attention mask: causal within the window and the padding mask, as an additive bias -------
  // Keys are the cached positions (if any) followed by this call's tokens; attention_mask covers both.
  const seqLen = g.dimOf(ids, 1);
  const totalLen = g.dimOf(attentionMask, 1);
  const zero = g.constant(0, 'int64');
  const one = g.constant(1, 'int64');
  const keyPos = g.range(zero, g.squeeze(totalLen, [0]), one, total); // [T]
  const queryPos = g.range(g.squeeze(g.sub(totalLen, seqLen), [0]), g.squeeze(totalLen, [0]), one, 'seq'); // [S]
  const causal = g.lessOrEqual(g.unsqueeze(keyPos, [0]), g.unsqueeze(queryPos, [1])); // [S, T]
  const notPadding = g.reshape(g.equal(attentionMask, one), [0, 1, 1, 1, -1]); // [b,1,1,1,T]
  const allowed = g.and(notPadding, causal); // [b,1,1,S,T]
  const mostNegative = dtype === 'float32' ? -3.4028234663852886e38 : -Number.MAX_VALUE;
  // Query rows are grouped per KV head as (group, position): repeat the mask for each of the G groups.
  const bias5 = g.expand(g.where(allowed, g.scalar(0, dtype), g.scalar(mostNegative, dtype)), g.constant([1, 1, G, 1, 1], 'int64'), [1, 1, G, 1, 1]);
  const biasShape = g.concat([g.shapeOf(bias5, 0, 1), g.constant([1, -1], 'int64'), g.shapeOf(bias5, 4, 5)], 0);
  const bias = g.reshape(bias5, biasShape, ['batch', 1, `${G}*seq`, total]); // [b,1,G·S,T]

  // ---- the decoder ------------------------------------------------------------------------------
  const embedTable = raw('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  let x = g.gather(embedTable, ids); // [b, s, h]
  const attnScale = 1 / Math.sqrt(D);
  const cos4 = g.squeeze(cos, [2]); // [b,1,s,D] for keys
  const sin4 = g.squeeze(sin, [2]);
  const ropeKey = (k: Tensor): Tensor => g.add(g.mul(k, cos4), g.mul(rotateHalf(k), sin4));

  for (let layer = 0; layer < c.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    const h = rmsNorm(x, `${p}.input_layernorm.weight`);
    // Queries of the G heads sharing a KV head become G·S rows of one matmul against that head's keys.
    const q5 = g.transpose(g.reshape(linear(h, layer, 'q_proj'), [0, 0, KV, G, D]), [0, 2, 3, 1, 4]); // [b,kv,g,s,D]
    const q = g.reshape(rope(q5), [0, 0, -1, D]); // [b,kv,g·s,D]
    const k = ropeKey(g.transpose(g.reshape(linear(h, layer, 'k_proj'), [0, 0, KV, D]), [0, 2, 1, 3])); // [b,kv,s,D]
    const v = g.transpose(g.reshape(linear(h, layer, 'v_proj'), [0, 0, KV, D]), [0, 2, 1, 3]);
    let attn: Tensor;
    if (spec.kvCache) {
      // The cache is read, never copied: scores against cached and new keys are computed apart and
      // only the (small) score tensors are joined. The graph returns just this call's keys/values,
      // which the host writes into its cache buffers.
      const cacheShape: Shape = ['batch', KV, 'cache', D];
      const cacheK = g.input(pastName(layer, 'key'), dtype, cacheShape);
      const cacheV = g.input(pastName(layer, 'value'), dtype, cacheShape);
      g.output(presentName(layer, 'key'), k);
      g.output(presentName(layer, 'value'), v);
      const scores = g.concat([g.matmul(q, g.transposeLast(cacheK)), g.matmul(q, g.transposeLast(k))], -1); // [b,kv,g·s,C+S]
      const probs = g.softmax(g.add(g.scale(scores, attnScale), bias), -1);
      const cached = g.dimOf(cacheK, 2);
      const pCache = g.slice(probs, g.constant([0], 'int64'), cached, [-1], ['batch', KV, `${G}*seq`, 'cache']);
      const pNew = g.slice(probs, cached, g.constant([SLICE_END], 'int64'), [-1], ['batch', KV, `${G}*seq`, 'seq']);
      attn = g.add(g.matmul(pCache, cacheV), g.matmul(pNew, v));
    } else {
      const scores = g.add(g.scale(g.matmul(q, g.transposeLast(k)), attnScale), bias); // [b,kv,g·s,S]
      attn = g.matmul(g.softmax(scores, -1), v);
    }
    const merged = g.reshape(g.transpose(g.reshape(attn, [0, 0, G, -1, D]), [0, 3, 1, 2, 4]), [0, 0, c.numHeads * D]);
    x = g.add(x, linear(merged, layer, 'o_proj'));

    const h2 = rmsNorm(x, `${p}.post_attention_layernorm.weight`);
    const gate = linear(h2, layer, 'gate_proj');
    const up = linear(h2, layer, 'up_proj');
    x = g.add(x, linear(g.mul(g.mul(gate, g.sigmoid(gate)), up), layer, 'down_proj'));
  }
  x = rmsNorm(x, 'model.norm.weight');

  // ---- the head ---------------------------------------------------------------------------------
  const lmHead = (): Tensor => {
    if (!c.tieWordEmbeddings) return linearWeight('lm_head.weight', c.vocabSize, c.hiddenSize);
    if (!frozen) return g.transpose(embedTable, [1, 0]);
    const w = frozen.get('model.embed_tokens.weight')!;
    return g.initializer('lm_head.tied.T', transposeMatrix(w.data, c.vocabSize, c.hiddenSize, dtype), [c.hiddenSize, c.vocabSize], dtype);
  };

  let tokenLogprobs: Tensor | null = null;
  if (spec.head !== 'token-logprobs') {
    const last = g.reshape(g.slice(x, [-1], [SLICE_END], [1]), [0, c.hiddenSize]); // [b, h]
    const logits = g.matmul(last, lmHead());
    if (spec.head === 'last-logits') g.output('logits', logits);
    else nextTokenHead(g, logits, spec.head);
  } else {
    const targets = g.input('targets', 'int64', ['batch', 'seq']);
    const logits = g.matmul(x, lmHead()); // [b, s, V]
    const picked = g.gatherElements(g.logSoftmax(logits, -1), g.unsqueeze(targets, [2]), 2);
    tokenLogprobs = g.reshape(picked, [0, 0]);
    g.output('token_logprobs', tokenLogprobs);
  }
  return { graph: g, tokenLogprobs, weightInputs, loraInputs };
}

/**
 * Chooses the next token inside the graph, so a decode step costs the host O(batch), not
 * O(batch·vocab). Greedy: ArgMax (ties to the first index). Sampling: inverse-CDF of
 * softmax(logits / temperature) at a uniform draw per row (given as input, from the row's own seeded
 * stream, so a row samples the same in any batch), optionally restricted to the top-p nucleus of the
 * sorted distribution. Each choice comes with its log-probability under the model at temperature 1.
 */
function nextTokenHead(g: Graph, logits: Tensor, head: 'greedy-token' | 'next-token' | 'next-token-top-p'): void {
  const dtype = logits.dtype;
  const logprobs = g.logSoftmax(logits, -1); // [b, V], temperature 1
  const vocab = logits.shape[1] as number;
  const pick = (tokens: Tensor) => g.reshape(g.gatherElements(logprobs, g.unsqueeze(tokens, [1]), 1), [-1]);
  if (head === 'greedy-token') {
    const greedy = g.argMax(logits, 1);
    g.output('token', greedy);
    g.output('token_logprob', pick(greedy));
    return;
  }
  const topP = head === 'next-token-top-p';
  const uniform = g.input('uniform', dtype, ['batch']);
  const invTemperature = g.input('inv_temperature', dtype, []);

  let probs = g.softmax(g.mul(logits, invTemperature), -1);
  let order: Tensor | null = null;
  if (topP) {
    const p = g.input('top_p', dtype, []);
    const [sorted, indices] = g.topK(probs, vocab, 1);
    // Keep a token while the mass before it is below p: the smallest nucleus reaching p.
    const before = g.sub(g.cumsum(sorted, 1), sorted);
    probs = g.mul(sorted, g.cast(g.less(before, p), dtype));
    order = indices;
  }
  const total = g.reduceSum(probs, [1], true);
  const cdf = g.div(g.cumsum(probs, 1), total);
  const below = g.reduceSum(g.cast(g.less(cdf, g.unsqueeze(uniform, [1])), dtype), [1], false);
  let position = g.min(g.cast(below, 'int64'), g.constant(vocab - 1, 'int64'));
  if (order) position = g.reshape(g.gatherElements(order, g.unsqueeze(position, [1]), 1), [-1]);
  g.output('token', position);
  g.output('token_logprob', pick(position));
}

function transposeMatrix(src: Float32Array, rows: number, cols: number, dtype: FloatType): Float32Array | Float64Array {
  const out = dtype === 'float64' ? new Float64Array(rows * cols) : new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let col = 0; col < cols; col++) out[col * rows + r] = src[base + col];
  }
  return out;
}
