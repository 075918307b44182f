/**
 * The built-in engine: the frozen base on ONNX Runtime in this process, LoRA policies as adapters in
 * the same batched passes, and full-weight policies (shared-full mode) as their own model copies.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraTarget, parameterCount } from './model/model-config';
import { Weights, loadCheckpoint, saveCheckpoint } from './model/checkpoint';
import { openModel } from './runtime/open-model';
import { TextTokenizer, copyTokenizerFiles } from './model/tokenizer';
import { LoraAdapter, createAdapter, loadAdapter, saveAdapter } from './lora/adapter';
import { adapterGradMap, adapterParams } from './lora/packing';
import { LanguageModel } from './runtime/language-model';
import { GradientSession, TrainRow } from './train/gradient-session';
import { Optimizer, OptimizerConfig, accumulate } from './train/optimizer';
import { adapterFingerprint, modelFingerprint } from './fingerprint';
import {
  PolicyEngine,
  EngineError,
  PolicyEngineInfo,
  GeneratedText,
  GenerationRequest,
  GenerationSettings,
  OptimizerSettings,
  PolicySpec,
  ScoreRequest,
  TrainReport,
  TrainSample,
  TrainSettings,
} from './policy-engine';

type Policy =
  | { kind: 'lora'; adapter: LoraAdapter; optimizer: Optimizer | null }
  | { kind: 'full'; model: LanguageModel; optimizer: Optimizer | null };

function optimizerConfig(s: OptimizerSettings): OptimizerConfig {
  return {
    kind: s.kind,
    lr: s.lr,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: s.weightDecay,
    clipNorm: s.clipNorm,
    schedule: { kind: s.schedule?.kind ?? 'constant', warmupSteps: s.warmupSteps, totalSteps: s.schedule?.totalSteps ?? 1, minLrRatio: s.schedule?.minLrRatio ?? 0 },
  };
}

function copyWeights(w: Weights): Weights {
  return new Map([...w].map(([k, t]) => [k, { shape: [...t.shape], data: t.data.slice() }]));
}

export interface OrtEngineOptions {
  threads?: number;
  /** Padded tokens per forward/backward pass when training. */
  microBatchTokens?: number;
}

export class OrtEngine implements PolicyEngine {
  readonly info: PolicyEngineInfo;
  private readonly policies = new Map<string, Policy>();
  private loraTrainer: GradientSession | null = null;
  private readonly fullTrainers = new Map<string, GradientSession>();

  private constructor(
    private readonly base: LanguageModel,
    private readonly tokenizer: TextTokenizer,
    private readonly modelDir: string,
    private readonly options: OrtEngineOptions,
  ) {
    this.info = {
      name: 'ort',
      model: modelDir,
      vocabSize: base.config.vocabSize,
      maxPositions: base.config.maxPositions,
      baseParameters: parameterCount(base.config),
      device: 'cpu',
      dtype: base.dtype,
      worldSize: 1,
    };
  }

  static open(modelSpec: string, options: OrtEngineOptions = {}): OrtEngine {
    const opened = openModel(modelSpec, { threads: options.threads });
    return new OrtEngine(opened.model, opened.tokenizer, opened.dir, options);
  }

  async ready(): Promise<PolicyEngineInfo> {
    return this.info;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }
  encodeMarkup(text: string): number[] {
    return this.tokenizer.encodeMarkup(text);
  }
  encodeChat(messages: readonly { role: string; content: string }[], addGenerationPrompt: boolean): number[] {
    return this.tokenizer.encodeChat(messages, addGenerationPrompt);
  }
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids, true);
  }
  stopTokens(): number[] {
    return this.tokenizer.stopTokenIds(this.base.config.eosTokenIds);
  }

  private policy(name: string): Policy {
    const p = this.policies.get(name);
    if (!p) throw new EngineError(`no policy named ${name}`);
    return p;
  }

  async createPolicy(name: string, spec: PolicySpec): Promise<void> {
    if (spec.init) return this.loadPolicy(name, spec.init, spec.kind);
    await this.dropPolicy(name);
    if (spec.kind === 'lora') {
      const adapter = createAdapter(this.base.config, {
        rank: spec.rank ?? 8,
        alpha: spec.alpha ?? 16,
        targets: (spec.targets ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj']) as LoraTarget[],
        seed: spec.seed ?? 0,
      });
      this.policies.set(name, { kind: 'lora', adapter, optimizer: null });
    } else {
      const model = new LanguageModel(this.base.config, copyWeights(this.base.weights), this.modelDir, { threads: this.base.threads });
      this.policies.set(name, { kind: 'full', model, optimizer: null });
    }
  }

  async loadPolicy(name: string, dir: string, kind: 'lora' | 'full'): Promise<void> {
    await this.dropPolicy(name);
    if (kind === 'lora') {
      this.policies.set(name, { kind: 'lora', adapter: loadAdapter(dir, this.base.config), optimizer: null });
    } else {
      const ckpt = loadCheckpoint(dir);
      if (ckpt.config.hiddenSize !== this.base.config.hiddenSize || ckpt.config.vocabSize !== this.base.config.vocabSize) {
        throw new EngineError(`${dir}: its shape does not match the base model ${this.modelDir}`);
      }
      this.policies.set(name, { kind: 'full', model: new LanguageModel(ckpt.config, ckpt.weights, dir, { threads: this.base.threads }), optimizer: null });
    }
  }

  async savePolicy(name: string, dir: string): Promise<string> {
    const p = this.policy(name);
    if (p.kind === 'lora') {
      saveAdapter(dir, p.adapter, this.modelDir, this.base.config);
      return adapterFingerprint(p.adapter, this.base.config);
    }
    saveCheckpoint(dir, this.base.config, p.model.weights);
    copyTokenizerFiles(this.modelDir, dir);
    return modelFingerprint(p.model.weights);
  }

  async fingerprint(name: string): Promise<string> {
    const p = this.policy(name);
    return p.kind === 'lora' ? adapterFingerprint(p.adapter, this.base.config) : modelFingerprint(p.model.weights);
  }

  async dropPolicy(name: string): Promise<void> {
    const p = this.policies.get(name);
    if (p?.kind === 'full') await p.model.dispose();
    const trainer = this.fullTrainers.get(name);
    if (trainer) await trainer.dispose();
    this.fullTrainers.delete(name);
    this.policies.delete(name);
  }

  policyParameters(name: string): number {
    const p = this.policy(name);
    return p.kind === 'lora' ? p.adapter.parameterCount : parameterCount(this.base.config);
  }

  /**
   * Splits rows by the model that runs them: the frozen base with every LoRA policy of the call as
   * one batch, and each full-weight policy alone.
   */
  private groups<T extends { policy: string | null }>(rows: readonly T[]): { model: LanguageModel; adapters: LoraAdapter[]; members: { row: number; slot: number }[] }[] {
    const shared = { model: this.base, adapters: [] as LoraAdapter[], members: [] as { row: number; slot: number }[] };
    const slots = new Map<string, number>();
    const full = new Map<string, { model: LanguageModel; adapters: LoraAdapter[]; members: { row: number; slot: number }[] }>();
    rows.forEach((r, i) => {
      if (r.policy === null) {
        shared.members.push({ row: i, slot: -1 });
        return;
      }
      const p = this.policy(r.policy);
      if (p.kind === 'full') {
        let g = full.get(r.policy);
        if (!g) full.set(r.policy, (g = { model: p.model, adapters: [], members: [] }));
        g.members.push({ row: i, slot: -1 });
        return;
      }
      let slot = slots.get(r.policy);
      if (slot === undefined) {
        slot = shared.adapters.length;
        slots.set(r.policy, slot);
        shared.adapters.push(p.adapter);
      }
      shared.members.push({ row: i, slot });
    });
    return [shared, ...full.values()].filter((g) => g.members.length > 0);
  }

  async generate(requests: readonly GenerationRequest[], settings: GenerationSettings): Promise<GeneratedText[]> {
    const out: GeneratedText[] = new Array(requests.length);
    // The weights each policy samples with, hashed as they are handed to the sampling pass.
    const fingerprints = new Map<string, string>();
    for (const r of requests) if (r.policy !== null && !fingerprints.has(r.policy)) fingerprints.set(r.policy, await this.fingerprint(r.policy));
    for (const g of this.groups(requests)) {
      const gens = await g.model.generate(
        g.members.map((m) => ({ prompt: requests[m.row].prompt, adapter: m.slot, seed: requests[m.row].seed })),
        g.adapters,
        { ...settings },
      );
      g.members.forEach((m, k) => {
        const policy = requests[m.row].policy;
        out[m.row] = { ...gens[k], fingerprint: policy === null ? null : fingerprints.get(policy)! };
      });
    }
    return out;
  }

  async logprobs(rows: readonly ScoreRequest[]): Promise<(number | null)[][]> {
    const out: (number | null)[][] = new Array(rows.length);
    for (const g of this.groups(rows)) {
      const scored = await g.model.score(g.members.map((m) => ({ ids: rows[m.row].ids, adapter: m.slot })), g.adapters);
      g.members.forEach((m, k) => (out[m.row] = scored[k]));
    }
    return out;
  }

  async nextTokenLogprobs(rows: readonly ScoreRequest[], candidates: readonly number[]): Promise<number[][]> {
    const out: number[][] = new Array(rows.length);
    for (const g of this.groups(rows)) {
      const lp = await g.model.nextTokenLogprobs(g.members.map((m) => ({ ids: rows[m.row].ids, adapter: m.slot })), candidates, g.adapters);
      g.members.forEach((m, k) => (out[m.row] = lp[k]));
    }
    return out;
  }

  private optimizerFor(name: string, p: Policy, settings: OptimizerSettings): Optimizer {
    if (!p.optimizer) p.optimizer = new Optimizer(optimizerConfig(settings));
    else Object.assign(p.optimizer.config, { lr: settings.lr, weightDecay: settings.weightDecay, clipNorm: settings.clipNorm });
    return p.optimizer;
  }

  async trainStep(samples: readonly TrainSample[], settings: TrainSettings): Promise<TrainReport> {
    if ((settings.loss ?? 'pg') !== 'pg') throw new EngineError('the built-in engine trains the nll loss through absp sft (engine/train/sft.ts), not trainStep');
    const report: TrainReport = { policies: {}, tokens: 0 };
    const pg = { clipEps: settings.clipEps, klK1: settings.klK1, klK3: settings.klK3 };
    const budget = this.options.microBatchTokens ?? 8192;
    const byPolicy = new Map<string, TrainSample[]>();
    for (const s of samples) {
      const list = byPolicy.get(s.policy) ?? [];
      list.push(s);
      byPolicy.set(s.policy, list);
      report.tokens += s.weights.filter((w) => w !== 0).length;
    }
    const loraNames = [...byPolicy.keys()].filter((n) => this.policy(n).kind === 'lora');
    if (loraNames.length > 0) {
      this.loraTrainer ??= new GradientSession(this.base.config, 'pg', 'lora', this.base.weights, 'float32', this.base.threads);
      const adapters = loraNames.map((n) => (this.policy(n) as { adapter: LoraAdapter }).adapter);
      const rows: TrainRow[] = loraNames.flatMap((n, slot) => byPolicy.get(n)!.map((s) => ({ ...s, adapter: slot })));
      const grads = loraNames.map(() => new Map<string, Float64Array>());
      const losses = loraNames.map(() => 0);
      let finite = true;
      for (const micro of chunkRows(rows, budget)) {
        const r = await this.loraTrainer.compute(micro, { adapters, pg });
        finite &&= r.finite;
        if (!r.finite) break;
        r.lora!.forEach((g, k) => accumulate(grads[k], adapterGradMap(g)));
        // The graph's loss is summed over rows; attribute it to policies by recomputing per slot.
        for (const row of micro) losses[row.adapter] += rowLoss(row, r.tokenLogprobs[micro.indexOf(row)], pg);
      }
      loraNames.forEach((name, k) => {
        const p = this.policy(name);
        const opt = this.optimizerFor(name, p, settings.optimizers[name] ?? missingSettings(name));
        const step = finite ? opt.apply(adapterParams((p as { adapter: LoraAdapter }).adapter), grads[k]) : (opt.skip(), { lr: 0, gradNorm: NaN, skipped: true });
        report.policies[name] = { loss: losses[k], gradNorm: step.gradNorm, skipped: step.skipped, lr: step.lr, fingerprint: adapterFingerprint((p as { adapter: LoraAdapter }).adapter, this.base.config) };
      });
    }
    for (const name of [...byPolicy.keys()].filter((n) => this.policy(n).kind === 'full')) {
      const p = this.policy(name) as { kind: 'full'; model: LanguageModel; optimizer: Optimizer | null };
      let trainer = this.fullTrainers.get(name);
      if (!trainer) this.fullTrainers.set(name, (trainer = new GradientSession(this.base.config, 'pg', 'full', null, 'float32', this.base.threads)));
      const weights = p.model.weights;
      const grads = new Map<string, Float64Array>();
      let loss = 0;
      let finite = true;
      for (const micro of chunkRows(byPolicy.get(name)!.map((s) => ({ ...s, adapter: -1 })), budget)) {
        const r = await trainer.compute(micro, { weights, pg });
        finite &&= r.finite;
        if (!r.finite) break;
        accumulate(grads, r.full!);
        loss += r.loss;
      }
      const opt = this.optimizerFor(name, p, settings.optimizers[name] ?? missingSettings(name));
      const params = new Map([...weights].map(([k, w]) => [k, w.data]));
      const step = finite ? opt.apply(params, grads) : (opt.skip(), { lr: 0, gradNorm: NaN, skipped: true });
      if (!step.skipped) await p.model.setWeights(weights);
      report.policies[name] = { loss, gradNorm: step.gradNorm, skipped: step.skipped, lr: step.lr, fingerprint: modelFingerprint(weights) };
    }
    return report;
  }

  async saveOptimizer(name: string, dir: string): Promise<void> {
    const p = this.policy(name);
    if (p.optimizer) p.optimizer.save(dir, name);
  }

  async loadOptimizer(name: string, dir: string): Promise<void> {
    const p = this.policy(name);
    if (fs.existsSync(path.join(dir, `${name}.json`))) p.optimizer = Optimizer.load(dir, name);
  }

  async close(): Promise<void> {
    for (const name of [...this.policies.keys()]) await this.dropPolicy(name);
    if (this.loraTrainer) await this.loraTrainer.dispose();
    await this.base.dispose();
  }
}

function missingSettings(name: string): never {
  throw new EngineError(`no optimiser settings for policy ${name}`);
}

/**
 * Micro-batches of at most `budget` padded tokens. Rows are taken in order of length, so each batch
 * pads its rows to a width close to their own (the loss is a sum over rows: order does not matter).
 */
function chunkRows<T extends { ids: readonly number[] }>(rows: T[], budget: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let width = 0;
  for (const r of [...rows].sort((a, b) => a.ids.length - b.ids.length)) {
    const w = Math.max(width, r.ids.length);
    if (current.length > 0 && w * (current.length + 1) > budget) {
      out.push(current);
      current = [];
    }
    current.push(r);
    width = Math.max(...current.map((c) => c.ids.length));
  }
  if (current.length) out.push(current);
  return out;
}

/** The policy-gradient loss of one row, recomputed from its log-probs (for per-policy reporting). */
function rowLoss(row: TrainRow, lp: readonly (number | null)[], pg: { clipEps: number; klK1: number; klK3: number }): number {
  let loss = 0;
  for (let i = 1; i < row.ids.length; i++) {
    const w = row.weights[i];
    if (!w) continue;
    const l = lp[i] as number;
    const ratio = Math.exp(l - row.oldLogprobs![i]);
    const a = row.advantages![i];
    const clipped = Math.min(Math.max(ratio, 1 - pg.clipEps), 1 + pg.clipEps);
    const logRef = row.refLogprobs![i] - l;
    loss += w * (-Math.min(ratio * a, clipped * a) + pg.klK1 * (l - row.refLogprobs![i]) + pg.klK3 * (Math.exp(logRef) - logRef - 1));
  }
  return loss;
}
