/**
 * `absp bench --model DIR`: a real model directory measured with its own weights by both engines,
 * side by side (here a tiny Llama written by transformers, so the run takes seconds; the README's
 * numbers are SmolLM2-135M-Instruct's).
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { BenchResult, runBench } from '../../extension/bench/bench';
import { hfReference, transformersPython } from '../helpers/hf-reference';
import { tempDir } from '../helpers/random-checkpoint';
import { skipWithoutEnvironment } from '../helpers/project-python';

describe('absp bench --model', function () {
  this.timeout(900_000);

  it('measures decode at batch 1 and 32, prefill, the bipolicy batch and the LoRA step of a model directory, in both engines', async function () {
    const { python, reason } = transformersPython();
    if (!python) skipWithoutEnvironment(this, reason);
    const dir = path.join(tempDir('absp-bench-model-'), 'tiny-llama');
    hfReference(python!, [{ op: 'make', out: dir, seed: 2, config: { tie_word_embeddings: true } }]);
    const r: BenchResult = await runBench({ shapes: [], models: [dir], threads: 1, repeats: 1, warmup: 0, rank: 4, torch: true });
    const measures = r.rows.filter((row) => row.shape === 'tiny-llama').map((row) => row.measure);
    assert.deepEqual(measures, ['decode, batch 1', 'decode, batch 32', 'prefill, batch 8 × 64', 'bipolicy rollout, batch 32', 'LoRA step (r=4, all linear), 8 × 128', 'LoRA step (r=4, all linear): peak memory']);
    for (const row of r.rows) {
      assert.ok(row.ort !== null && row.ort > 0 && row.torch !== null && row.torch > 0, `${row.measure}: ${row.ort} vs ${row.torch}`);
      if (row.unit !== 'MB') assert.ok(Math.abs(row.ratio! - row.ort! / row.torch!) < 1e-9);
    }
    assert.deepEqual(r.bipolicy.map((b) => b.engine), ['ort', 'torch']);
  });
});
