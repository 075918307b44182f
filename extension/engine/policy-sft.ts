/**
 * `absp sft --engine torch`: the supervised loop of sft.ts (the same batches, the pooled mean NLL,
 * one optimiser step per batch, skipped non-finite steps) driven through an engine's trainStep with
 * the `nll` loss, so the PyTorch engine trains what the built-in one would.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PolicyEngine as Engine, OptimizerSettings, TrainSample } from './policy-engine';
import { batchIndices, SftStepReport } from './train/sft';
import { SftExample } from './train/sft-data';

export const SFT_POLICY = 'sft';

export interface EngineSftOptions {
  engine: Engine;
  examples: readonly SftExample[];
  optimizer: OptimizerSettings;
  steps: number;
  batchSize: number;
  seed: number;
  /** Batches already consumed (a resumed run continues from here). */
  position: number;
  onStep?: (r: SftStepReport) => void | Promise<void>;
}

/** Batches consumed by a saved optimiser state (applied plus skipped steps). */
export function savedPosition(dir: string): number {
  const file = path.join(dir, `${SFT_POLICY}.json`);
  try {
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { step: number; skipped?: number };
    return meta.step + (meta.skipped ?? 0);
  } catch (e) {
    throw new Error(`${file}: cannot read the optimizer state (${(e as Error).message})`);
  }
}

export async function runEngineSft(o: EngineSftOptions): Promise<number> {
  let position = o.position;
  while (position < o.steps) {
    const started = Date.now();
    const batch = batchIndices(o.examples.length, o.batchSize, o.seed, position).map((i) => o.examples[i]);
    const predicted = batch.reduce((n, e) => n + e.lossMask.reduce((a, b) => a + b, 0), 0);
    const samples: TrainSample[] = batch.map((e) => ({ ids: e.ids, policy: SFT_POLICY, weights: e.lossMask.map((m) => m / predicted), advantages: [], oldLogprobs: [], refLogprobs: [] }));
    const report = await o.engine.trainStep(samples, { loss: 'nll', clipEps: 0, klK1: 0, klK3: 0, optimizers: { [SFT_POLICY]: o.optimizer } });
    const p = report.policies[SFT_POLICY];
    position += 1;
    await o.onStep?.({ step: position, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, tokens: predicted, skipped: p.skipped, seconds: (Date.now() - started) / 1000 });
  }
  return position;
}
