/**
 * The supervised training loop shared by `absp sft` and the sandbox's pretraining: deterministic
 * batches, micro-batches under a token budget, the pooled mean NLL (Σ over all predicted tokens of the
 * batch / their count), gradient accumulation, one optimiser step per batch, and skipped steps on
 * non-finite losses or gradients.
 */
import { Rng } from '../../util/rng';
import { ModelConfig } from '../model/model-config';
import { Weights } from '../model/checkpoint';
import { FloatType } from '../model/decoder';
import { LoraAdapter } from '../lora/adapter';
import { adapterGradMap, adapterParams } from '../lora/packing';
import { GradientSession, TrainRow } from './gradient-session';
import { Optimizer, Params, accumulate } from './optimizer';
import { SftExample } from './sft-data';

export type SftTarget = { kind: 'lora'; adapter: LoraAdapter } | { kind: 'full' };

export interface SftRunOptions {
  config: ModelConfig;
  /** The frozen base (LoRA) or the weights being trained, updated in place (full). */
  weights: Weights;
  examples: readonly SftExample[];
  target: SftTarget;
  optimizer: Optimizer;
  /** Train until this many batches are consumed (a resumed run continues from its position). */
  steps: number;
  batchSize: number;
  /** Padded tokens per micro-batch; a batch larger than this is split and its gradients summed. */
  microBatchTokens?: number;
  seed: number;
  dtype?: FloatType;
  threads?: number;
  onStep?: (report: SftStepReport) => void | Promise<void>;
  /** Asked before each step; returning true stops the loop early. */
  shouldStop?: () => boolean;
}

export interface SftStepReport {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  skipped: boolean;
  seconds: number;
}

/** The examples of batch `step`: consecutive slices of per-epoch shuffles of the data set. */
export function batchIndices(count: number, batchSize: number, seed: number, step: number): number[] {
  const size = Math.min(batchSize, count);
  const out: number[] = [];
  let position = step * size;
  while (out.length < size) {
    const epoch = Math.floor(position / count);
    const order = new Rng(seed, epoch + 1000).shuffle(Array.from({ length: count }, (_, i) => i));
    const start = position % count;
    const take = Math.min(size - out.length, count - start);
    out.push(...order.slice(start, start + take));
    position += take;
  }
  return out;
}

function microBatches(rows: TrainRow[], budget: number): TrainRow[][] {
  const sorted = [...rows].sort((a, b) => a.ids.length - b.ids.length);
  const out: TrainRow[][] = [];
  let current: TrainRow[] = [];
  for (const r of sorted) {
    const width = Math.max(r.ids.length, ...current.map((c) => c.ids.length));
    if (current.length > 0 && width * (current.length + 1) > budget) {
      out.push(current);
      current = [];
    }
    current.push(r);
  }
  if (current.length) out.push(current);
  return out;
}

export async function runSft(o: SftRunOptions): Promise<SftStepReport[]> {
  const session = new GradientSession(
    o.config,
    'nll',
    o.target.kind === 'lora' ? 'lora' : 'full',
    o.target.kind === 'lora' ? o.weights : null,
    o.dtype ?? 'float32',
    o.threads,
  );
  const params: Params = o.target.kind === 'lora' ? adapterParams(o.target.adapter) : new Map([...o.weights].map(([k, w]) => [k, w.data]));
  const reports: SftStepReport[] = [];
  try {
    while (o.optimizer.position < o.steps) {
      if (o.shouldStop?.()) break;
      const started = Date.now();
      const step = o.optimizer.position;
      const batch = batchIndices(o.examples.length, o.batchSize, o.seed, step).map((i) => o.examples[i]);
      const predicted = batch.reduce((n, e) => n + e.lossMask.reduce((a, b) => a + b, 0), 0);
      const rows: TrainRow[] = batch.map((e) => ({ ids: e.ids, adapter: 0, weights: e.lossMask.map((m) => m / predicted) }));
      const grads = new Map<string, Float64Array>();
      let loss = 0;
      let finite = true;
      for (const micro of microBatches(rows, o.microBatchTokens ?? 16384)) {
        const r = await session.compute(micro, o.target.kind === 'lora' ? { adapters: [o.target.adapter] } : { weights: o.weights });
        loss += r.loss;
        finite &&= r.finite;
        if (!r.finite) break;
        accumulate(grads, o.target.kind === 'lora' ? adapterGradMap(r.lora![0]) : r.full!);
      }
      let report: { lr: number; gradNorm: number; skipped: boolean };
      if (finite) {
        report = o.optimizer.apply(params, grads);
      } else {
        o.optimizer.skip();
        report = { lr: 0, gradNorm: NaN, skipped: true };
      }
      finite &&= !report.skipped;
      const r: SftStepReport = { step: step + 1, loss, lr: report.lr, gradNorm: report.gradNorm, tokens: predicted, skipped: !finite, seconds: (Date.now() - started) / 1000 };
      reports.push(r);
      await o.onStep?.(r);
    }
  } finally {
    await session.dispose();
  }
  return reports;
}
