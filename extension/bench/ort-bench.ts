/**
 * The ONNX Runtime side of `absp bench`, measured the way test/reference/bench_torch.py measures
 * PyTorch: random float32 weights of a given Qwen2 shape, prefill = one forward pass over the prompt
 * (logits of the last position), decode = the greedy KV-cache steps after it, training steps =
 * forward + backward + AdamW over LoRA matrices (base frozen) or every weight, all timed as medians
 * after warm-up. One phase runs per process so peak memory is the phase's own.
 */
import { expectedWeights, loadCheckpoint, Weights } from '../engine/model/checkpoint';
import { parseConfig, parameterCount } from '../engine/model/model-config';
import { LoraTarget } from '../engine/model/model-config';
import { createAdapter, LoraAdapter } from '../engine/lora/adapter';
import { adapterGradMap, adapterParams } from '../engine/lora/packing';
import { LanguageModel } from '../engine/runtime/language-model';
import { GradientSession, TrainRow } from '../engine/train/gradient-session';
import { Optimizer, defaultOptimizerConfig, accumulate } from '../engine/train/optimizer';
import { Rng } from '../util/rng';

export interface OrtPhaseSpec {
  config: Record<string, unknown>;
  /** A real model directory to measure instead of random weights of `config`'s shape. */
  model?: string;
  phase: 'inference' | 'bipolicy' | 'lora' | 'full';
  batchSizes: number[];
  promptLen: number;
  newTokens: number;
  trainBatch: number;
  trainSeqLen: number;
  rank: number;
  targets: LoraTarget[];
  threads: number;
  warmup: number;
  repeats: number;
  seed: number;
}

function randomWeights(config: ReturnType<typeof parseConfig>, seed: number): Weights {
  const rng = new Rng(seed);
  const w: Weights = new Map();
  for (const [name, shape] of expectedWeights(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) data.fill(1);
    else for (let i = 0; i < n; i++) data[i] = 0.02 * rng.normal();
    w.set(name, { shape, data });
  }
  return w;
}

async function median(fn: () => Promise<number>, warmup: number, repeats: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) ts.push(await fn());
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

function randomIds(rng: Rng, vocab: number, rows: number, len: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: len }, () => rng.int(vocab)));
}

function randomAdapter(config: ReturnType<typeof parseConfig>, spec: OrtPhaseSpec, seed: number): LoraAdapter {
  // B nonzero so the low-rank term is real work, as it is after the first update.
  return createAdapter(config, { rank: spec.rank, alpha: 2 * spec.rank, targets: spec.targets, seed, init: 'random' });
}

export async function runOrtPhase(spec: OrtPhaseSpec): Promise<Record<string, unknown>> {
  const loaded = spec.model ? loadCheckpoint(spec.model) : null;
  const config = loaded ? loaded.config : parseConfig({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], ...spec.config }, 'bench config');
  const weights = loaded ? loaded.weights : randomWeights(config, spec.seed);
  const rng = new Rng(spec.seed + 1);
  const out: Record<string, unknown> = { phase: spec.phase, params_m: parameterCount(config) / 1e6, threads: spec.threads };
  const greedy = { temperature: 0, topP: 1, stopTokens: [] as number[] };

  if (spec.phase === 'inference' || spec.phase === 'bipolicy') {
    const lm = new LanguageModel(config, weights, 'bench', { threads: spec.threads });
    if (spec.phase === 'inference') {
      const decode: unknown[] = [];
      const prefill: unknown[] = [];
      for (const b of spec.batchSizes) {
        const rows = randomIds(rng, config.vocabSize, b, spec.promptLen).map((prompt) => ({ prompt, adapter: -1 }));
        // Building the session is not part of a steady-state step: do it before timing.
        await lm.generate(rows, [], { ...greedy, maxNewTokens: 2 });
        const tPrefill = await median(() => timed(() => lm.generate(rows, [], { ...greedy, maxNewTokens: 1 })), spec.warmup, spec.repeats);
        const tAll = await median(() => timed(() => lm.generate(rows, [], { ...greedy, maxNewTokens: spec.newTokens + 1 })), spec.warmup, spec.repeats);
        const tDecode = Math.max(1e-9, tAll - tPrefill);
        prefill.push({ batch: b, tokens_per_s: (b * spec.promptLen) / tPrefill, ms: tPrefill * 1e3 });
        decode.push({ batch: b, tokens_per_s: (b * spec.newTokens) / tDecode, ms_per_step: (tDecode / spec.newTokens) * 1e3, context: spec.promptLen + spec.newTokens });
      }
      out.prefill = prefill;
      out.decode = decode;
    } else {
      // A rollout of both roles: one batch whose rows name their adapter, against two passes.
      const b = spec.batchSizes[spec.batchSizes.length - 1];
      const adapters = [randomAdapter(config, spec, 11), randomAdapter(config, spec, 12)];
      const prompts = randomIds(rng, config.vocabSize, b, spec.promptLen);
      const mixed = prompts.map((prompt, i) => ({ prompt, adapter: i < b / 2 ? 0 : 1 }));
      const opts = { ...greedy, maxNewTokens: spec.newTokens };
      await lm.generate(mixed, adapters, opts);
      await lm.generate(mixed.slice(0, 2).map((r) => ({ ...r, adapter: 0 })), [adapters[0]], opts);
      const tMixed = await median(() => timed(() => lm.generate(mixed, adapters, opts)), spec.warmup, spec.repeats);
      const tSequential = await median(
        () =>
          timed(async () => {
            await lm.generate(mixed.slice(0, b / 2).map((r) => ({ ...r, adapter: 0 })), [adapters[0]], opts);
            await lm.generate(mixed.slice(b / 2).map((r) => ({ ...r, adapter: 0 })), [adapters[1]], opts);
          }),
        spec.warmup,
        spec.repeats,
      );
      const tokens = b * (spec.promptLen + spec.newTokens);
      out.bipolicy = { batch: b, tokens_per_s: tokens / tMixed, ms: tMixed * 1e3 };
      out.sequential = { batch: b, tokens_per_s: tokens / tSequential, ms: tSequential * 1e3 };
    }
    await lm.dispose();
  } else {
    const ids = randomIds(rng, config.vocabSize, spec.trainBatch, spec.trainSeqLen);
    const n = spec.trainBatch * (spec.trainSeqLen - 1);
    const rows: TrainRow[] = ids.map((r) => ({ ids: r, adapter: 0, weights: r.map((_, i) => (i === 0 ? 0 : 1 / n)) }));
    if (spec.phase === 'lora') {
      const adapter = createAdapter(config, { rank: spec.rank, alpha: 2 * spec.rank, targets: spec.targets, seed: 3 });
      const session = new GradientSession(config, 'nll', 'lora', weights, 'float32', spec.threads);
      const opt = new Optimizer(defaultOptimizerConfig('adamw', 1e-4));
      const params = adapterParams(adapter);
      await session.compute(rows.slice(0, 1), { adapters: [adapter] });
      const t = await median(
        () =>
          timed(async () => {
            const r = await session.compute(rows, { adapters: [adapter] });
            const g = new Map<string, Float64Array>();
            accumulate(g, adapterGradMap(r.lora![0]));
            opt.apply(params, g);
          }),
        spec.warmup,
        spec.repeats,
      );
      out.lora_step = { batch: spec.trainBatch, seq_len: spec.trainSeqLen, tokens_per_s: (spec.trainBatch * spec.trainSeqLen) / t, ms_per_step: t * 1e3, trainable_params: adapter.parameterCount };
      await session.dispose();
    } else {
      const session = new GradientSession(config, 'nll', 'full', null, 'float32', spec.threads);
      const opt = new Optimizer(defaultOptimizerConfig('adamw', 1e-4));
      const params = new Map([...weights].map(([k, w]) => [k, w.data]));
      await session.compute(rows.slice(0, 1), { weights });
      const t = await median(
        () =>
          timed(async () => {
            const r = await session.compute(rows, { weights });
            opt.apply(params, r.full!);
          }),
        spec.warmup,
        spec.repeats,
      );
      out.full_step = { batch: spec.trainBatch, seq_len: spec.trainSeqLen, tokens_per_s: (spec.trainBatch * spec.trainSeqLen) / t, ms_per_step: t * 1e3, trainable_params: parameterCount(config) };
      await session.dispose();
    }
  }
  out.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  return out;
}
