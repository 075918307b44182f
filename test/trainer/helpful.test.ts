/** The auxiliary helpful-SFT rows: through the policy-gradient loss they give exactly the NLL gradient. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { createAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { GradientSession } from '../../extension/engine/train/gradient-session';
import { sandboxHelpfulData } from '../../extension/trainer/helpful-data';
import { OrtEngine } from '../../extension/engine/ort-engine';
import { rolePrompts } from '../../extension/trainer/role-prompts';
import { helpfulRows } from '../../extension/trainer/training-batch';
import { capabilitySeeds } from '../../extension/sandbox/seeds';
import { tempDir, writeTinySandboxModel } from '../helpers/random-checkpoint';

describe('auxiliary helpful SFT', function () {
  this.timeout(120000);

  it('never contains the wordings capability is evaluated on', () => {
    const data = sandboxHelpfulData();
    const evaluated = new Set(capabilitySeeds().map((s) => s.prompt));
    assert.ok(data.length > 100);
    assert.ok(data.every((d) => !evaluated.has(d.prompt)));
  });

  it('its policy-gradient rows give coef × the gradient of the mean answer NLL', async () => {
    const dir = writeTinySandboxModel(path.join(tempDir(), 'model'));
    const engine = OrtEngine.open(dir, { threads: 1 });
    const { config, weights } = loadCheckpoint(dir);
    const adapter = createAdapter(config, { rank: 2, alpha: 4, targets: ['q_proj', 'down_proj'], seed: 1, init: 'random' });
    const saved = path.join(tempDir(), 'adapter');
    saveAdapter(saved, adapter, dir, config);
    await engine.loadPolicy('defender', saved, 'lora');
    const examples = sandboxHelpfulData().slice(0, 5);
    const coef = 0.7;
    const rows = await helpfulRows(engine, rolePrompts('sandbox', { attacker: false, defender: false }), examples, 'defender', coef);
    await engine.close();
    const pg = new GradientSession(config, 'pg', 'lora', weights, 'float64', 1);
    const nll = new GradientSession(config, 'nll', 'lora', weights, 'float64', 1);
    const viaPg = await pg.compute(rows.map((r) => ({ ...r, adapter: 0 })), { adapters: [adapter], pg: { clipEps: 0.2, klK1: 0, klK3: 0.3 } });
    const viaNll = await nll.compute(rows.map((r) => ({ ids: r.ids, adapter: 0, weights: r.weights })), { adapters: [adapter] });
    await pg.dispose();
    await nll.dispose();
    for (const [key, g] of viaNll.lora![0].modules) {
      const h = viaPg.lora![0].modules.get(key)!;
      for (const m of ['A', 'B'] as const) g[m].forEach((x, i) => assert.ok(Math.abs(x - h[m][i]) < 1e-4 * Math.max(1e-3, Math.abs(x)), `${key}.${m}[${i}]`));
    }
    // The answer tokens carry all the weight, summing to coef.
    const total = rows.reduce((s, r) => s + r.weights.reduce((a, b) => a + b, 0), 0);
    assert.ok(Math.abs(total - coef) < 1e-9);
  });
});
