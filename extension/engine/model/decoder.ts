/**
 * The decoder (Hugging Face's `Qwen2ForCausalLM` and `LlamaForCausalLM`), described once with the graph builder and read top
 * to bottom like nanoGPT's model.py: where weights come from, then one small function per block —
 * linear layer (with LoRA slots), RMSNorm, rotary position, attention mask, attention, MLP, decoder
 * layer, head — and `buildDecoder`, which stacks them. Everything architecture-specific (biases,
 * rotary frequencies, a tied head) is read from the model description (model-config.ts).
 *
 * One graph serves every use: rollouts (KV cache, logits of the last position), scoring and training
 * (log-probabilities of given next tokens), with the base weights frozen as initializers or fed as
 * trainable inputs. LoRA adapters are graph inputs stacked into "slots": each row of the batch names
 * its slot (or -1 for the frozen base), so the attacker's and the defender's rows share one pass over
 * the base weights and each adds only its own low-rank term.
 */
import { Graph, Shape, Tensor, SLICE_END } from '../graph/graph';
import { ModelConfig, LoraTarget, hasBias, moduleParent, moduleShape, ropeInverseFrequencies } from './model-config';
import { Weights } from './checkpoint';

export type FloatType = 'float32' | 'float64';

/** How adapters appear in a graph: `slots` adapters, each padded to `rank`, on `targets`. */
export interface LoraLayout {
  slots: number;
  rank: number;
  targets: readonly LoraTarget[];
}

export interface DecoderSpec {
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

export interface DecoderGraph {
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

/** What every block needs: the graph, the model description, and the weights and LoRA inputs it reads. */
interface Blocks {
  g: Graph;
  c: ModelConfig;
  dtype: FloatType;
  /** A weight tensor by HF name: an initializer when frozen, a graph input when trainable. */
  weight(name: string, shape: number[]): Tensor;
  /** A linear layer's weight as [in, out], ready for x @ W (frozen weights are stored transposed). */
  linearWeight(name: string, out: number, inp: number): Tensor;
  lora: { layout: LoraLayout; rowScale: Tensor } | null;
  loraInputs: Map<string, Tensor>;
}

/** Frozen weights become initializers; trainable ones become graph inputs, collected in `inputs`. */
function weightSource(g: Graph, spec: DecoderSpec, inputs: Map<string, Tensor>): Pick<Blocks, 'weight' | 'linearWeight'> {
  const { dtype } = spec;
  const frozen = spec.weights.kind === 'frozen' ? spec.weights.data : null;
  const stored = (name: string) => {
    const w = frozen!.get(name);
    if (!w) throw new Error(`weight ${name} is missing`);
    return w;
  };
  const weight = (name: string, shape: number[]): Tensor => {
    if (!frozen) {
      const t = g.input(name, dtype, shape);
      inputs.set(name, t);
      return t;
    }
    const w = stored(name);
    return g.initializer(name, dtype === 'float64' ? Float64Array.from(w.data) : w.data, shape, dtype);
  };
  const linearWeight = (name: string, out: number, inp: number): Tensor => {
    if (!frozen) return g.transpose(weight(name, [out, inp]), [1, 0]);
    return g.initializer(`${name}.T`, transposeMatrix(stored(name).data, out, inp, dtype), [inp, out], dtype);
  };
  return { weight, linearWeight };
}

/** Per row, the scale of each LoRA column: the slot's scale where the row owns the column, else 0. [batch, 1, width] */
function loraRowScale(g: Graph, lora: LoraLayout, dtype: FloatType): Tensor {
  const adapterIndex = g.input('adapter_index', 'int64', ['batch']);
  const loraScale = g.input('lora_scale', dtype, [lora.slots]);
  const width = lora.slots * lora.rank;
  const slotOfColumn = g.constant(Array.from({ length: width }, (_, col) => Math.floor(col / lora.rank)), 'int64');
  const owns = g.cast(g.equal(g.unsqueeze(adapterIndex, [1]), slotOfColumn), dtype); // [batch, width]
  return g.unsqueeze(g.mul(owns, g.gather(loraScale, slotOfColumn)), [1]);
}

/** y = x W (+ b) (+ each row's own low-rank term scale·(x Aᵀ) Bᵀ). */
function linear(b: Blocks, x: Tensor, layer: number, module: LoraTarget): Tensor {
  const { g, c, dtype } = b;
  const { in: inp, out } = moduleShape(c, module);
  const name = `model.layers.${layer}.${moduleParent(module)}.${module}`;
  let y = g.matmul(x, b.linearWeight(`${name}.weight`, out, inp));
  if (hasBias(c, module)) y = g.add(y, b.weight(`${name}.bias`, [out]));
  if (b.lora && b.lora.layout.targets.includes(module)) {
    const width = b.lora.layout.slots * b.lora.layout.rank;
    const A = g.input(loraInputName(layer, module, 'A'), dtype, [width, inp]);
    const B = g.input(loraInputName(layer, module, 'B'), dtype, [out, width]);
    b.loraInputs.set(A.name, A);
    b.loraInputs.set(B.name, B);
    const h = g.mul(g.matmul(x, g.transpose(A, [1, 0])), b.lora.rowScale);
    y = g.add(y, g.matmul(h, g.transpose(B, [1, 0])));
  }
  return y;
}

function rmsNorm(b: Blocks, x: Tensor, weightName: string): Tensor {
  const { g, c, dtype } = b;
  const variance = g.reduceMean(g.mul(x, x), [-1]);
  const inv = g.reciprocal(g.sqrt(g.add(variance, g.scalar(c.rmsNormEps, dtype))));
  return g.mul(b.weight(weightName, [c.hiddenSize]), g.mul(x, inv));
}

/** Rotary position embedding: cos/sin of position · inv_freq in the rotate-half layout. */
interface Rotary {
  /** For queries laid out [batch, kv, group, seq, D]. */
  queries(q: Tensor): Tensor;
  /** For keys laid out [batch, kv, seq, D]. */
  keys(k: Tensor): Tensor;
}

function rotary(b: Blocks, positionIds: Tensor): Rotary {
  const { g, c, dtype } = b;
  const D = c.headDim;
  const freqs = g.mul(g.unsqueeze(g.cast(positionIds, dtype), [2]), g.constant(ropeInverseFrequencies(c), dtype)); // [b, s, D/2]
  const angles = g.concat([freqs, freqs], -1); // [b, s, D]
  const cos = g.unsqueeze(g.cos(angles), [1, 2]); // [b, 1, 1, s, D]
  const sin = g.unsqueeze(g.sin(angles), [1, 2]);
  const rotateHalf = (x: Tensor): Tensor => g.concat([g.neg(g.slice(x, [D / 2], [D], [-1])), g.slice(x, [0], [D / 2], [-1])], -1);
  const cos4 = g.squeeze(cos, [2]); // [b, 1, s, D]
  const sin4 = g.squeeze(sin, [2]);
  return {
    queries: (q) => g.add(g.mul(q, cos), g.mul(rotateHalf(q), sin)),
    keys: (k) => g.add(g.mul(k, cos4), g.mul(rotateHalf(k), sin4)),
  };
}

/**
 * The attention mask as an additive bias [batch, 1, G·seq, keys]: causal within the window, padding
 * hidden. Keys are the cached positions (if any) followed by this call's tokens; attention_mask covers both.
 */
function attentionBias(b: Blocks, ids: Tensor, attentionMask: Tensor, keys: string): Tensor {
  const { g, c, dtype } = b;
  const G = c.numHeads / c.numKvHeads;
  const seqLen = g.dimOf(ids, 1);
  const totalLen = g.dimOf(attentionMask, 1);
  const zero = g.constant(0, 'int64');
  const one = g.constant(1, 'int64');
  const keyPos = g.range(zero, g.squeeze(totalLen, [0]), one, keys); // [T]
  const queryPos = g.range(g.squeeze(g.sub(totalLen, seqLen), [0]), g.squeeze(totalLen, [0]), one, 'seq'); // [S]
  const causal = g.lessOrEqual(g.unsqueeze(keyPos, [0]), g.unsqueeze(queryPos, [1])); // [S, T]
  const notPadding = g.reshape(g.equal(attentionMask, one), [0, 1, 1, 1, -1]); // [b,1,1,1,T]
  const allowed = g.and(notPadding, causal); // [b,1,1,S,T]
  const mostNegative = dtype === 'float32' ? -3.4028234663852886e38 : -Number.MAX_VALUE;
  // Query rows are grouped per KV head as (group, position): repeat the mask for each of the G groups.
  const bias5 = g.expand(g.where(allowed, g.scalar(0, dtype), g.scalar(mostNegative, dtype)), g.constant([1, 1, G, 1, 1], 'int64'), [1, 1, G, 1, 1]);
  const biasShape = g.concat([g.shapeOf(bias5, 0, 1), g.constant([1, -1], 'int64'), g.shapeOf(bias5, 4, 5)], 0);
  return g.reshape(bias5, biasShape, ['batch', 1, `${G}*seq`, keys]);
}

/**
 * Grouped-query self-attention. The G query heads sharing a KV head become G·S rows of one matmul
 * against that head's keys. With a KV cache the cache is read, never copied: scores against cached
 * and new keys are computed apart and only the (small) score tensors are joined; the graph returns
 * just this call's keys/values, which the host writes into its cache buffers.
 */
function attention(b: Blocks, x: Tensor, layer: number, rope: Rotary, bias: Tensor, kvCache: boolean): Tensor {
  const { g, c, dtype } = b;
  const D = c.headDim;
  const KV = c.numKvHeads;
  const G = c.numHeads / c.numKvHeads;
  const q5 = g.transpose(g.reshape(linear(b, x, layer, 'q_proj'), [0, 0, KV, G, D]), [0, 2, 3, 1, 4]); // [b,kv,g,s,D]
  const q = g.reshape(rope.queries(q5), [0, 0, -1, D]); // [b,kv,g·s,D]
  const k = rope.keys(g.transpose(g.reshape(linear(b, x, layer, 'k_proj'), [0, 0, KV, D]), [0, 2, 1, 3])); // [b,kv,s,D]
  const v = g.transpose(g.reshape(linear(b, x, layer, 'v_proj'), [0, 0, KV, D]), [0, 2, 1, 3]);
  const scale = 1 / Math.sqrt(D);
  let attn: Tensor;
  if (kvCache) {
    const cacheShape: Shape = ['batch', KV, 'cache', D];
    const cacheK = g.input(pastName(layer, 'key'), dtype, cacheShape);
    const cacheV = g.input(pastName(layer, 'value'), dtype, cacheShape);
    g.output(presentName(layer, 'key'), k);
    g.output(presentName(layer, 'value'), v);
    const scores = g.concat([g.matmul(q, g.transposeLast(cacheK)), g.matmul(q, g.transposeLast(k))], -1); // [b,kv,g·s,C+S]
    const probs = g.softmax(g.add(g.scale(scores, scale), bias), -1);
    const cached = g.dimOf(cacheK, 2);
    const pCache = g.slice(probs, g.constant([0], 'int64'), cached, [-1], ['batch', KV, `${G}*seq`, 'cache']);
    const pNew = g.slice(probs, cached, g.constant([SLICE_END], 'int64'), [-1], ['batch', KV, `${G}*seq`, 'seq']);
    attn = g.add(g.matmul(pCache, cacheV), g.matmul(pNew, v));
  } else {
    const scores = g.add(g.scale(g.matmul(q, g.transposeLast(k)), scale), bias); // [b,kv,g·s,S]
    attn = g.matmul(g.softmax(scores, -1), v);
  }
  const merged = g.reshape(g.transpose(g.reshape(attn, [0, 0, G, -1, D]), [0, 3, 1, 2, 4]), [0, 0, c.numHeads * D]);
  return linear(b, merged, layer, 'o_proj');
}

/** SwiGLU: down(silu(gate(x)) · up(x)). */
function mlp(b: Blocks, x: Tensor, layer: number): Tensor {
  const { g } = b;
  const gate = linear(b, x, layer, 'gate_proj');
  const up = linear(b, x, layer, 'up_proj');
  return linear(b, g.mul(g.mul(gate, g.sigmoid(gate)), up), layer, 'down_proj');
}

/** Pre-norm residual block: x + attention(norm(x)), then + mlp(norm(x)). */
function decoderLayer(b: Blocks, x: Tensor, layer: number, rope: Rotary, bias: Tensor, kvCache: boolean): Tensor {
  const { g } = b;
  const p = `model.layers.${layer}`;
  x = g.add(x, attention(b, rmsNorm(b, x, `${p}.input_layernorm.weight`), layer, rope, bias, kvCache));
  return g.add(x, mlp(b, rmsNorm(b, x, `${p}.post_attention_layernorm.weight`), layer));
}

/** The output projection [hidden, vocab]: lm_head, or the embedding table transposed when tied. */
function lmHead(b: Blocks, embedTable: Tensor, frozen: Weights | null): Tensor {
  const { g, c, dtype } = b;
  if (!c.tieWordEmbeddings) return b.linearWeight('lm_head.weight', c.vocabSize, c.hiddenSize);
  if (!frozen) return g.transpose(embedTable, [1, 0]);
  const w = frozen.get('model.embed_tokens.weight')!;
  return g.initializer('lm_head.tied.T', transposeMatrix(w.data, c.vocabSize, c.hiddenSize, dtype), [c.hiddenSize, c.vocabSize], dtype);
}

/** The head the spec asks for; returns the token log-probs tensor when that is the head. */
function head(b: Blocks, x: Tensor, headWeight: Tensor, kind: DecoderSpec['head']): Tensor | null {
  const { g, c } = b;
  if (kind === 'token-logprobs') {
    const targets = g.input('targets', 'int64', ['batch', 'seq']);
    const logits = g.matmul(x, headWeight); // [b, s, V]
    const picked = g.gatherElements(g.logSoftmax(logits, -1), g.unsqueeze(targets, [2]), 2);
    const tokenLogprobs = g.reshape(picked, [0, 0]);
    g.output('token_logprobs', tokenLogprobs);
    return tokenLogprobs;
  }
  const last = g.reshape(g.slice(x, [-1], [SLICE_END], [1]), [0, c.hiddenSize]); // [b, h]
  const logits = g.matmul(last, headWeight);
  if (kind === 'last-logits') g.output('logits', logits);
  else nextTokenHead(g, logits, kind);
  return null;
}

export function buildDecoder(spec: DecoderSpec): DecoderGraph {
  const { config: c, dtype } = spec;
  const g = new Graph(c.architecture);
  const weightInputs = new Map<string, Tensor>();
  const b: Blocks = { g, c, dtype, ...weightSource(g, spec, weightInputs), lora: null, loraInputs: new Map() };

  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const keys = spec.kvCache ? 'cache+seq' : 'seq';
  const attentionMask = g.input('attention_mask', 'int64', ['batch', keys]);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  if (spec.lora) b.lora = { layout: spec.lora, rowScale: loraRowScale(g, spec.lora, dtype) };

  const rope = rotary(b, positionIds);
  const bias = attentionBias(b, ids, attentionMask, keys);
  const embedTable = b.weight('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  let x = g.gather(embedTable, ids); // [b, s, h]
  for (let layer = 0; layer < c.numLayers; layer++) x = decoderLayer(b, x, layer, rope, bias, spec.kvCache);
  x = rmsNorm(b, x, 'model.norm.weight');
  const frozen = spec.weights.kind === 'frozen' ? spec.weights.data : null;
  const tokenLogprobs = head(b, x, lmHead(b, embedTable, frozen), spec.head);
  return { graph: g, tokenLogprobs, weightInputs, loraInputs: b.loraInputs };
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
