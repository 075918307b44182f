/**
 * A loaded Qwen2 or Llama model on ONNX Runtime: batched generation with a KV cache and per-row adapters, and
 * per-token log-probabilities of given sequences. Sessions are built lazily, one per graph variant
 * (head, KV cache, adapter layout), and reused.
 */
import { Rng } from '../../util/rng';
import { ModelConfig } from '../model/model-config';
import { LoadedCheckpoint, Weights, loadCheckpoint } from '../model/checkpoint';
import { LoraLayout, buildDecoder, pastName, presentName, FloatType } from '../model/decoder';
import { LoraAdapter } from '../lora/adapter';
import { layoutFor, layoutKey, packAdapters } from '../lora/packing';
import { HostTensor } from '../graph/dtype';
import { GraphSession, defaultThreads } from './session';

/** One row of a batch: token ids and the index of its adapter in the call's list (-1 = frozen base). */
export interface Row {
  ids: readonly number[];
  adapter: number;
}

export interface GenerateRow {
  prompt: readonly number[];
  adapter: number;
  /** Seeds this row's sampling stream, so a row samples the same alone or in any batch. */
  seed?: number;
}

export interface SamplingOptions {
  /** 0 means greedy decoding. */
  temperature: number;
  /** Nucleus sampling mass; 1 keeps the whole distribution. */
  topP: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  stopTokens: readonly number[];
  seed?: number;
}

export interface Generation {
  /** New tokens, ending with the stop token when one was produced. */
  tokens: number[];
  /** log p(token) under the row's policy at temperature 1, per new token. */
  logprobs: number[];
  finish: 'stop' | 'length';
}

export interface LanguageModelOptions {
  dtype?: FloatType;
  threads?: number;
}

export class TokenIdError extends Error {}

/** A prompt that leaves no room in the model's context for a single new token. */
export class ContextLengthError extends Error {}

export class LanguageModel {
  private sessions = new Map<string, Promise<GraphSession>>();
  readonly dtype: FloatType;
  readonly threads: number;

  constructor(
    readonly config: ModelConfig,
    private weightsData: Weights,
    readonly source: string,
    options: LanguageModelOptions = {},
  ) {
    this.dtype = options.dtype ?? 'float32';
    this.threads = options.threads ?? defaultThreads();
  }

  static load(dir: string, options: LanguageModelOptions = {}): LanguageModel {
    const ckpt: LoadedCheckpoint = loadCheckpoint(dir);
    return new LanguageModel(ckpt.config, ckpt.weights, dir, options);
  }

  get weights(): Weights {
    return this.weightsData;
  }

  /** Swaps in new base weights (after full-parameter training); cached sessions are rebuilt. */
  async setWeights(weights: Weights): Promise<void> {
    this.weightsData = weights;
    await this.dispose();
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }

  private session(head: 'last-logits' | 'greedy-token' | 'next-token' | 'next-token-top-p' | 'token-logprobs', kvCache: boolean, layout: LoraLayout | null): Promise<GraphSession> {
    const key = `${head}|${kvCache}|${layoutKey(layout)}`;
    let s = this.sessions.get(key);
    if (!s) {
      const { graph } = buildDecoder({ config: this.config, dtype: this.dtype, weights: { kind: 'frozen', data: this.weightsData }, lora: layout, kvCache, head });
      s = GraphSession.create(graph, { threads: this.threads });
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  checkIds(ids: readonly number[], where: string): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new TokenIdError(`${where}: unknown token id ${id} (the vocabulary has ids 0..${this.config.vocabSize - 1})`);
      }
    }
  }

  private floats(n: number): Float32Array | Float64Array {
    return this.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  }

  private adapterFeeds(adapters: readonly LoraAdapter[], rows: readonly { adapter: number }[]): { layout: LoraLayout | null; feeds: Record<string, HostTensor> } {
    rows.forEach((r, i) => {
      if (!Number.isInteger(r.adapter) || r.adapter < -1 || r.adapter >= adapters.length) {
        throw new Error(`row ${i} names adapter ${r.adapter}, but ${adapters.length} adapter(s) were given`);
      }
    });
    const layout = layoutFor(adapters);
    if (!layout) {
      if (rows.some((r) => r.adapter >= 0)) throw new Error('a row names an adapter but none were given');
      return { layout, feeds: {} };
    }
    const feeds = packAdapters(adapters, layout, this.config, this.dtype);
    feeds.adapter_index = { dtype: 'int64', dims: [rows.length], data: BigInt64Array.from(rows.map((r) => BigInt(r.adapter))) };
    return { layout, feeds };
  }

  /**
   * Per-token log-probabilities: result[r][i] = log p(ids[i] | ids[<i]) under row r's adapter, with
   * result[r][0] = null. Rows may differ in length; long batches are split to bound memory.
   */
  async score(rows: readonly Row[], adapters: readonly LoraAdapter[] = []): Promise<(number | null)[][]> {
    rows.forEach((r, i) => this.checkIds(r.ids, `row ${i}`));
    const out: (number | null)[][] = new Array(rows.length);
    const maxLen = Math.max(1, ...rows.map((r) => r.ids.length));
    // Keep logits plus log-softmax (two [rows, len, vocab] tensors) near 512 MiB.
    const perRow = maxLen * this.config.vocabSize * (this.dtype === 'float64' ? 8 : 4) * 2;
    const chunk = Math.max(1, Math.floor((512 * 2 ** 20) / perRow));
    for (let start = 0; start < rows.length; start += chunk) {
      const part = rows.slice(start, start + chunk);
      const result = await this.scoreChunk(part, adapters);
      result.forEach((r, i) => (out[start + i] = r));
    }
    return out;
  }

  private async scoreChunk(rows: readonly Row[], adapters: readonly LoraAdapter[]): Promise<(number | null)[][]> {
    const B = rows.length;
    const S = Math.max(1, ...rows.map((r) => r.ids.length));
    const batch = leftPadded(rows.map((r) => r.ids), S, this.padId());
    const targets = new BigInt64Array(B * S);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < S; t++) targets[b * S + t] = batch.ids[b * S + t + 1];
    }
    const { layout, feeds } = this.adapterFeeds(adapters, rows);
    const session = await this.session('token-logprobs', false, layout);
    const result = await session.run({
      ...feeds,
      input_ids: { dtype: 'int64', dims: [B, S], data: batch.ids },
      attention_mask: { dtype: 'int64', dims: [B, S], data: batch.mask },
      position_ids: { dtype: 'int64', dims: [B, S], data: batch.positions },
      targets: { dtype: 'int64', dims: [B, S], data: targets },
    });
    const lp = result.token_logprobs.data as Float32Array;
    return rows.map((r, b) => {
      const pad = S - r.ids.length;
      const row: (number | null)[] = [null];
      for (let i = 1; i < r.ids.length; i++) row.push(lp[b * S + pad + i - 1]);
      return row;
    });
  }

  private padId(): number {
    return 0;
  }

  /**
   * log p(candidate | row) for each candidate token after each row: one forward pass per batch with the
   * last-position head, so the full next-token distribution is available exactly. Rows are batched by
   * length (little padding), and the prefix a batch's rows share (a system prompt, a chat template) is
   * run once per adapter and read from the KV cache by every row.
   */
  async nextTokenLogprobs(rows: readonly Row[], candidates: readonly number[], adapters: readonly LoraAdapter[] = []): Promise<number[][]> {
    rows.forEach((r, i) => {
      if (r.ids.length === 0) throw new Error(`row ${i}: empty sequence`);
      this.checkIds(r.ids, `row ${i}`);
    });
    this.checkIds(candidates, 'candidates');
    const V = this.config.vocabSize;
    const out: number[][] = new Array(rows.length);
    const order = rows.map((_, i) => i).sort((a, b) => rows[a].ids.length - rows[b].ids.length || a - b);
    const chunk = 256;
    for (let start = 0; start < order.length; start += chunk) {
      const members = order.slice(start, start + chunk);
      const logits = await this.lastLogits(members.map((i) => rows[i]), adapters);
      members.forEach((row, b) => {
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits[b * V + v]);
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits[b * V + v] - max);
        const lse = max + Math.log(sum);
        out[row] = candidates.map((t) => logits[b * V + t] - lse);
      });
    }
    return out;
  }

  /** Logits after the last token of each row, [rows, vocab]; a shared prefix runs once per adapter. */
  private async lastLogits(part: readonly Row[], adapters: readonly LoraAdapter[]): Promise<Float32Array> {
    const c = this.config;
    const B = part.length;
    // Every row keeps at least its last token out of the prefix: that position's logits are the answer.
    let P = Math.min(...part.map((r) => r.ids.length)) - 1;
    for (const r of part) {
      let k = 0;
      while (k < P && r.ids[k] === part[0].ids[k]) k++;
      P = k;
    }
    if (P < 4) P = 0;
    const slots = [...new Set(part.map((r) => r.adapter))];
    const { layout, feeds } = this.adapterFeeds(adapters, part);
    const session = await this.session('last-logits', true, layout);
    const emptyCache = (batch: number): Record<string, HostTensor> => {
      const past: Record<string, HostTensor> = {};
      for (let l = 0; l < c.numLayers; l++) {
        for (const which of ['key', 'value'] as const) past[pastName(l, which)] = { dtype: this.dtype, dims: [batch, c.numKvHeads, 0, c.headDim], data: this.floats(0) };
      }
      return past;
    };
    let cache: Record<string, HostTensor> = emptyCache(B);
    if (P > 0) {
      // The prefix once per adapter: its keys and values become every row's cache.
      const prefixRows = slots.map((adapter) => ({ ids: part[0].ids.slice(0, P), adapter }));
      const prefixFeeds = this.adapterFeeds(adapters, prefixRows).feeds;
      const positions = BigInt64Array.from({ length: slots.length * P }, (_, i) => BigInt(i % P));
      const prefix = await session.run({
        ...prefixFeeds,
        ...emptyCache(slots.length),
        input_ids: { dtype: 'int64', dims: [slots.length, P], data: BigInt64Array.from(prefixRows.flatMap((r) => r.ids.map(BigInt))) },
        attention_mask: { dtype: 'int64', dims: [slots.length, P], data: new BigInt64Array(slots.length * P).fill(1n) },
        position_ids: { dtype: 'int64', dims: [slots.length, P], data: positions },
      });
      cache = {};
      const block = c.numKvHeads * P * c.headDim;
      for (let l = 0; l < c.numLayers; l++) {
        for (const which of ['key', 'value'] as const) {
          const fresh = prefix[presentName(l, which)].data as Float32Array | Float64Array;
          const data = this.floats(B * block);
          part.forEach((r, b) => data.set(fresh.subarray(slots.indexOf(r.adapter) * block, (slots.indexOf(r.adapter) + 1) * block), b * block));
          cache[pastName(l, which)] = { dtype: this.dtype, dims: [B, c.numKvHeads, P, c.headDim], data };
        }
      }
    }
    const S = Math.max(...part.map((r) => r.ids.length)) - P;
    const batch = leftPadded(part.map((r) => r.ids.slice(P)), S, this.padId());
    const mask = new BigInt64Array(B * (P + S));
    for (let b = 0; b < B; b++) {
      mask.fill(1n, b * (P + S), b * (P + S) + P);
      mask.set(batch.mask.subarray(b * S, (b + 1) * S), b * (P + S) + P);
    }
    const positions = batch.positions.map((p) => p + BigInt(P));
    const result = await session.run({
      ...feeds,
      ...cache,
      input_ids: { dtype: 'int64', dims: [B, S], data: batch.ids },
      attention_mask: { dtype: 'int64', dims: [B, P + S], data: mask },
      position_ids: { dtype: 'int64', dims: [B, S], data: positions },
    }, ['logits']);
    return result.logits.data as Float32Array;
  }

  /** Batched sampling (or greedy decoding) with a KV cache; each row may use its own adapter. */
  async generate(rows: readonly GenerateRow[], adapters: readonly LoraAdapter[], options: GenerateOptions): Promise<Generation[]> {
    if (rows.length === 0) return [];
    rows.forEach((r, i) => {
      if (r.prompt.length === 0) throw new Error(`row ${i}: empty prompt`);
      this.checkIds(r.prompt, `row ${i} prompt`);
    });
    const c = this.config;
    let B = rows.length;
    rows.forEach((r, i) => {
      if (r.prompt.length >= c.maxPositions) {
        throw new ContextLengthError(`row ${i}: the prompt is ${r.prompt.length} tokens, and the model's context is ${c.maxPositions} (max_position_embeddings): no room for an answer`);
      }
    });
    const maxPrompt = Math.max(...rows.map((r) => r.prompt.length));
    // Each row's own budget: what its prompt leaves of the context (positions count a row's real tokens
    // only), so one long prompt does not cut the answers of the rest of its batch.
    const budget = rows.map((r) => Math.max(0, Math.min(options.maxNewTokens, c.maxPositions - r.prompt.length)));
    const maxNew = Math.max(...budget);
    const { layout, feeds: adapterFeeds } = this.adapterFeeds(adapters, rows);
    const greedy = options.temperature <= 0;
    const topP = !greedy && options.topP < 1;
    const session = await this.session(greedy ? 'greedy-token' : topP ? 'next-token-top-p' : 'next-token', true, layout);
    const rngs = rows.map((r, i) => new Rng(r.seed ?? (options.seed ?? 0) + i, 1));
    const scalar = (v: number): HostTensor => ({ dtype: this.dtype, dims: [], data: this.dtype === 'float64' ? Float64Array.from([v]) : Float32Array.from([v]) });
    const samplingFeeds: Record<string, HostTensor> = {};
    if (!greedy) samplingFeeds.inv_temperature = scalar(1 / options.temperature);
    if (topP) samplingFeeds.top_p = scalar(options.topP);
    const stop = new Set(options.stopTokens);

    // One cache buffer per layer and kind, [B, KV, capacity, D], filled in place as tokens arrive;
    // the graph reads all of it and the mask hides positions not yet written.
    const capacity = maxPrompt + maxNew;
    const rowStride = capacity * c.headDim;
    const slab = c.numKvHeads * rowStride;
    const caches: Record<string, HostTensor> = {};
    for (let l = 0; l < c.numLayers; l++) {
      for (const which of ['key', 'value'] as const) {
        caches[pastName(l, which)] = { dtype: this.dtype, dims: [B, c.numKvHeads, capacity, c.headDim], data: this.floats(B * slab) };
      }
    }
    let cacheMask = new BigInt64Array(B * capacity);
    let cached = 0;
    const append = (result: Record<string, HostTensor>, stepLen: number) => {
      for (let l = 0; l < c.numLayers; l++) {
        for (const which of ['key', 'value'] as const) {
          const fresh = result[presentName(l, which)].data as Float32Array;
          const cache = caches[pastName(l, which)].data as Float32Array;
          const block = stepLen * c.headDim;
          for (let r = 0; r < B * c.numKvHeads; r++) cache.set(fresh.subarray(r * block, (r + 1) * block), r * rowStride + cached * c.headDim);
        }
      }
    };

    const first = leftPadded(rows.map((r) => r.prompt), maxPrompt, this.padId());
    let stepMask = first.mask;
    let lastPosition = rows.map((r) => r.prompt.length - 1);
    let inputIds = first.ids;
    let positions = first.positions;
    let stepLen = maxPrompt;
    const out: Generation[] = rows.map(() => ({ tokens: [], logprobs: [], finish: 'length' }));
    const done = new Array<boolean>(rows.length).fill(false);
    // The batch's slots: live[b] is the row slot b decodes. Finished rows leave the batch in groups.
    let live = rows.map((_, i) => i);

    // The prompt's pass reads an empty cache rather than a masked full-capacity one it would only waste work on.
    const emptyCaches: Record<string, HostTensor> = {};
    for (const name of Object.keys(caches)) emptyCaches[name] = { dtype: this.dtype, dims: [B, c.numKvHeads, 0, c.headDim], data: this.floats(0) };

    for (let step = 0; step < maxNew; step++) {
      const window = cached === 0 ? 0 : capacity;
      const mask = new BigInt64Array(B * (window + stepLen));
      for (let b = 0; b < B; b++) {
        if (window) mask.set(cacheMask.subarray(b * capacity, (b + 1) * capacity), b * (window + stepLen));
        mask.set(stepMask.subarray(b * stepLen, (b + 1) * stepLen), b * (window + stepLen) + window);
      }
      const feeds: Record<string, HostTensor> = {
        ...adapterFeeds,
        ...(window ? caches : emptyCaches),
        ...samplingFeeds,
        input_ids: { dtype: 'int64', dims: [B, stepLen], data: inputIds },
        attention_mask: { dtype: 'int64', dims: [B, window + stepLen], data: mask },
        position_ids: { dtype: 'int64', dims: [B, stepLen], data: positions },
      };
      if (!greedy) {
        // Each row draws from its own stream, one draw per step it decodes, whatever else is in the batch.
        const uniform = this.floats(B);
        for (let b = 0; b < B; b++) uniform[b] = rngs[live[b]].uniform();
        feeds.uniform = { dtype: this.dtype, dims: [B], data: uniform };
      }
      const result = await session.run(feeds);
      const tokens = result.token.data as BigInt64Array;
      const logprobs = result.token_logprob.data as Float32Array;
      const next = new BigInt64Array(B);
      for (let b = 0; b < B; b++) {
        const row = live[b];
        if (done[row]) continue;
        const token = Number(tokens[b]);
        out[row].tokens.push(token);
        out[row].logprobs.push(logprobs[b]);
        next[b] = BigInt(token);
        if (stop.has(token)) {
          done[row] = true;
          out[row].finish = 'stop';
        } else if (out[row].tokens.length >= budget[row]) done[row] = true;
      }
      if (live.every((row) => done[row]) || step === maxNew - 1) break;
      append(result, stepLen);
      for (let b = 0; b < B; b++) cacheMask.set(stepMask.subarray(b * stepLen, (b + 1) * stepLen), b * capacity + cached);
      cached += stepLen;
      lastPosition = lastPosition.map((p) => p + 1);
      inputIds = next;
      // Finished rows keep decoding a pad token whose output is ignored, so rows stay in lockstep,
      // until a quarter of the batch has finished: then the batch is rebuilt from the rows still going.
      const going = live.map((row, b) => (done[row] ? -1 : b)).filter((b) => b >= 0);
      if (going.length <= 0.75 * B) {
        for (const [name, t] of Object.entries(caches)) {
          const from = t.data as Float32Array | Float64Array;
          const to = this.floats(going.length * slab);
          going.forEach((b, k) => to.set(from.subarray(b * slab, (b + 1) * slab), k * slab));
          caches[name] = { dtype: this.dtype, dims: [going.length, c.numKvHeads, capacity, c.headDim], data: to };
        }
        const mask2 = new BigInt64Array(going.length * capacity);
        going.forEach((b, k) => mask2.set(cacheMask.subarray(b * capacity, (b + 1) * capacity), k * capacity));
        cacheMask = mask2;
        if (adapterFeeds.adapter_index) {
          const index = adapterFeeds.adapter_index.data as BigInt64Array;
          adapterFeeds.adapter_index = { dtype: 'int64', dims: [going.length], data: BigInt64Array.from(going, (b) => index[b]) };
        }
        lastPosition = going.map((b) => lastPosition[b]);
        inputIds = BigInt64Array.from(going, (b) => next[b]);
        live = going.map((b) => live[b]);
        B = going.length;
      }
      stepMask = new BigInt64Array(B).fill(1n);
      positions = BigInt64Array.from(lastPosition, BigInt);
      stepLen = 1;
    }
    return out;
  }
}

/** Left-pads rows to `width`: ids, 1/0 attention mask, and positions that count real tokens only. */
export function leftPadded(rows: readonly (readonly number[])[], width: number, padId: number): { ids: BigInt64Array; mask: BigInt64Array; positions: BigInt64Array } {
  const B = rows.length;
  const ids = new BigInt64Array(B * width).fill(BigInt(padId));
  const mask = new BigInt64Array(B * width);
  const positions = new BigInt64Array(B * width).fill(1n);
  rows.forEach((row, b) => {
    const pad = width - row.length;
    row.forEach((id, i) => {
      ids[b * width + pad + i] = BigInt(id);
      mask[b * width + pad + i] = 1n;
      positions[b * width + pad + i] = BigInt(i);
    });
  });
  return { ids, mask, positions };
}
