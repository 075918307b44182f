/** The policy engine's training step: splitting a batch into micro-batches changes nothing but rounding. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { createAdapter, loadAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { OrtEngine } from '../../extension/engine/ort-engine';
import type { TrainSample } from '../../extension/engine/policy-engine';
import { Rng } from '../../extension/util/rng';
import { tempDir, writeTinySandboxModel } from '../helpers/random-checkpoint';

describe('policy engine training step', function () {
  this.timeout(120000);

  it('micro-batches taken in order of length give the update of one whole batch, for every policy', async () => {
    const dir = writeTinySandboxModel(path.join(tempDir(), 'model'));
    const { config } = loadCheckpoint(dir);
    const start = tempDir();
    for (const [name, seed] of [['attacker', 3], ['defender', 4]] as const) {
      saveAdapter(path.join(start, name), createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'up_proj'], seed, init: 'random' }), dir, config);
    }
    // Rows of very different lengths, interleaved between the policies.
    const rng = new Rng(11);
    const samples: TrainSample[] = Array.from({ length: 14 }, (_, i) => {
      const n = 3 + rng.int(30);
      const ids = Array.from({ length: n }, () => 1 + rng.int(58));
      const weights = ids.map((_, t) => (t >= 2 ? 0.05 : 0));
      const lp = ids.map(() => -2 - rng.uniform());
      return { ids, policy: i % 3 === 0 ? 'attacker' : 'defender', weights, advantages: ids.map(() => rng.normal()), oldLogprobs: lp, refLogprobs: lp.map((x) => x - 0.1) };
    });
    const settings = {
      clipEps: 0.2,
      klK1: 0,
      klK3: 0.05,
      optimizers: Object.fromEntries(['attacker', 'defender'].map((n) => [n, { kind: 'sgd' as const, lr: 0.5, weightDecay: 0, clipNorm: null, warmupSteps: 0 }])),
    };
    const after = async (microBatchTokens: number) => {
      const engine = OrtEngine.open(dir, { threads: 1, microBatchTokens });
      try {
        for (const n of ['attacker', 'defender']) await engine.loadPolicy(n, path.join(start, n), 'lora');
        const report = await engine.trainStep(samples, settings);
        const out = tempDir();
        for (const n of ['attacker', 'defender']) await engine.savePolicy(n, path.join(out, n));
        return { report, adapters: ['attacker', 'defender'].map((n) => loadAdapter(path.join(out, n), config)) };
      } finally {
        await engine.close();
      }
    };
    const whole = await after(1 << 20);
    const split = await after(64);
    for (const n of ["attacker", "defender"]) assert.ok(Math.abs(whole.report.policies[n].loss - split.report.policies[n].loss) < 1e-6 * Math.abs(whole.report.policies[n].loss), `${n}: ${whole.report.policies[n].loss} vs ${split.report.policies[n].loss}`);
    // Compare the updates (after − before): equal up to float32 rounding of differently shaped batches.
    let moved = 0;
    whole.adapters.forEach((a, k) => {
      const before = loadAdapter(path.join(start, k === 0 ? 'attacker' : 'defender'), config);
      for (const [key, m] of a.modules) {
        const o = split.adapters[k].modules.get(key)!;
        const b = before.modules.get(key)!;
        for (const x of ['A', 'B'] as const) {
          const scale = Math.max(...m[x].map((v, i) => Math.abs(v - b[x][i])));
          moved = Math.max(moved, scale);
          m[x].forEach((v, i) => assert.ok(Math.abs(v - o[x][i]) <= 1e-3 * scale + 1e-7, `${key}.${x}[${i}]: update ${v - b[x][i]} vs ${o[x][i] - b[x][i]}`));
        }
      }
    });
    assert.ok(moved > 1e-4, 'the step moved the adapters');
  });
});
