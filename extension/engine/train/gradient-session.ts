/**
 * Runs a training graph on a batch: loss, per-token log-probabilities and gradients, for LoRA adapters
 * (per slot, split back per adapter) or for every base weight. Rows are left-padded; per-token inputs
 * are indexed like the row's tokens (entry i belongs to predicting ids[i]; entry 0 is unused).
 */
import { ModelConfig } from '../model/model-config';
import { Weights } from '../model/checkpoint';
import { FloatType } from '../model/decoder';
import { LoraAdapter } from '../lora/adapter';
import { AdapterGradient, layoutFor, layoutKey, packAdapters, unpackGradients } from '../lora/packing';
import { HostTensor } from '../graph/dtype';
import { GraphSession, defaultThreads } from '../runtime/session';
import { leftPadded } from '../runtime/language-model';
import { Objective, buildTrainingGraph, gradOutputName } from './training-graph';

export interface TrainRow {
  ids: readonly number[];
  /** Adapter slot of the row (-1: the frozen base, which gets no gradient). */
  adapter: number;
  weights: readonly number[];
  advantages?: readonly number[];
  oldLogprobs?: readonly number[];
  refLogprobs?: readonly number[];
}

export interface PolicyGradientSettings {
  clipEps: number;
  klK1: number;
  klK3: number;
}

export interface GradientResult {
  loss: number;
  tokenLogprobs: (number | null)[][];
  lora: AdapterGradient[] | null;
  full: Map<string, Float32Array | Float64Array> | null;
  finite: boolean;
}

export class GradientSession {
  private sessions = new Map<string, Promise<GraphSession>>();

  constructor(
    readonly config: ModelConfig,
    readonly objective: Objective,
    readonly trainable: 'lora' | 'full',
    private frozenWeights: Weights | null,
    readonly dtype: FloatType = 'float32',
    readonly threads = defaultThreads(),
  ) {}

  private session(adapters: readonly LoraAdapter[]): Promise<GraphSession> {
    const layout = layoutFor(adapters);
    const key = layoutKey(layout);
    let s = this.sessions.get(key);
    if (!s) {
      const { graph } = buildTrainingGraph({
        config: this.config,
        dtype: this.dtype,
        objective: this.objective,
        trainable: this.trainable,
        frozenWeights: this.frozenWeights ?? undefined,
        lora: layout,
      });
      s = GraphSession.create(graph, { threads: this.threads });
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }

  async compute(
    rows: readonly TrainRow[],
    options: { adapters?: readonly LoraAdapter[]; weights?: Weights; pg?: PolicyGradientSettings },
  ): Promise<GradientResult> {
    const adapters = options.adapters ?? [];
    if (this.trainable === 'lora' && adapters.length === 0) throw new Error('LoRA training needs at least one adapter');
    if (this.trainable === 'full' && !options.weights) throw new Error('full-parameter training needs the current weights');
    const B = rows.length;
    const S = Math.max(2, ...rows.map((r) => r.ids.length));
    rows.forEach((r, i) => {
      if (r.ids.length > this.config.maxPositions) throw new Error(`row ${i} has ${r.ids.length} tokens, more than the model's ${this.config.maxPositions} positions`);
      for (const id of r.ids) if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) throw new Error(`row ${i}: unknown token id ${id}`);
      if (r.weights.length !== r.ids.length) throw new Error(`row ${i}: ${r.weights.length} token weights for ${r.ids.length} tokens`);
    });
    const batch = leftPadded(rows.map((r) => r.ids), S, 0);
    const targets = new BigInt64Array(B * S);
    for (let b = 0; b < B; b++) for (let t = 0; t + 1 < S; t++) targets[b * S + t] = batch.ids[b * S + t + 1];
    const floats = (n: number) => (this.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));
    // Entry i of a row (predicting ids[i]) sits at graph position pad + i - 1.
    const perToken = (pick: (r: TrainRow) => readonly number[] | undefined, name: string): HostTensor => {
      const data = floats(B * S);
      rows.forEach((r, b) => {
        const values = pick(r);
        if (!values) throw new Error(`the policy-gradient loss needs ${name} for every row`);
        const pad = S - r.ids.length;
        for (let i = 1; i < r.ids.length; i++) data[b * S + pad + i - 1] = values[i];
      });
      return { dtype: this.dtype, dims: [B, S], data };
    };
    const scalar = (v: number): HostTensor => ({ dtype: this.dtype, dims: [], data: this.dtype === 'float64' ? Float64Array.from([v]) : Float32Array.from([v]) });

    const feeds: Record<string, HostTensor> = {
      input_ids: { dtype: 'int64', dims: [B, S], data: batch.ids },
      attention_mask: { dtype: 'int64', dims: [B, S], data: batch.mask },
      position_ids: { dtype: 'int64', dims: [B, S], data: batch.positions },
      targets: { dtype: 'int64', dims: [B, S], data: targets },
      token_weights: perToken((r) => r.weights, 'token weights'),
    };
    if (this.objective === 'pg') {
      const pg = options.pg;
      if (!pg) throw new Error('the policy-gradient loss needs clip and KL settings');
      feeds.advantages = perToken((r) => r.advantages, 'advantages');
      feeds.old_logprobs = perToken((r) => r.oldLogprobs, 'old log-probabilities');
      feeds.ref_logprobs = perToken((r) => r.refLogprobs, 'reference log-probabilities');
      feeds.clip_eps = scalar(pg.clipEps);
      feeds.kl_k1 = scalar(pg.klK1);
      feeds.kl_k3 = scalar(pg.klK3);
    }
    const layout = layoutFor(adapters);
    if (layout) {
      Object.assign(feeds, packAdapters(adapters, layout, this.config, this.dtype));
      feeds.adapter_index = { dtype: 'int64', dims: [B], data: BigInt64Array.from(rows.map((r) => BigInt(r.adapter))) };
    }
    if (this.trainable === 'full') {
      for (const [name, w] of options.weights!) {
        feeds[name] = { dtype: this.dtype, dims: w.shape, data: this.dtype === 'float64' ? Float64Array.from(w.data) : w.data };
      }
    }
    const session = await this.session(adapters);
    const out = await session.run(feeds);
    const loss = Number((out.loss.data as Float32Array)[0]);
    let finite = Number.isFinite(loss);
    const lp = out.token_logprobs.data as Float32Array;
    const tokenLogprobs = rows.map((r, b) => {
      const pad = S - r.ids.length;
      const row: (number | null)[] = [null];
      for (let i = 1; i < r.ids.length; i++) row.push(lp[b * S + pad + i - 1]);
      return row;
    });
    const checkFinite = (data: ArrayLike<number>) => {
      for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return false;
      return true;
    };
    let lora: AdapterGradient[] | null = null;
    let full: Map<string, Float32Array | Float64Array> | null = null;
    if (this.trainable === 'lora') {
      lora = unpackGradients(out, adapters, layout!, this.config, gradOutputName);
      for (const g of lora) for (const m of g.modules.values()) finite &&= checkFinite(m.A) && checkFinite(m.B);
    } else {
      full = new Map();
      for (const name of options.weights!.keys()) {
        const grad = out[gradOutputName(name)].data as Float32Array | Float64Array;
        finite &&= checkFinite(grad);
        full.set(name, grad);
      }
    }
    return { loss, tokenLogprobs, lora, full, finite };
  }
}
