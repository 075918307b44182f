/**
 * The PyTorch engine (transformers + PEFT) against the built-in ONNX Runtime engine, through the one
 * Engine interface, on random checkpoints built by transformers' own config classes: log-probs within
 * 1e-4 (float32) for the base, one adapter and a mixed attacker/defender batch; one policy-gradient
 * step gives the same adapter (relative difference ≤ 1e-4); adapters cross between the engines and
 * PEFT itself both ways, also from a 2-process FSDP engine; the same seeds sample the same tokens.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { readConfig } from '../../extension/engine/model/model-config';
import { createAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { SafetensorsFile } from '../../extension/engine/model/safetensors';
import { TorchEngine } from '../../extension/engine/torch/torch-engine';
import type { PolicyEngine as Engine, ScoreRequest, TrainSample, TrainSettings } from '../../extension/engine/policy-engine';
import { OrtEngine } from '../../extension/engine/ort-engine';
import { Rng } from '../../extension/util/rng';
import { tempDir } from '../helpers/random-checkpoint';
import { describeWithTorchEngine, makeHfCheckpoints, makePeftAdapter, peftLogprobs } from '../helpers/torch-engine';

type Lp = (number | null)[];

function maxAbsDiff(a: Lp[], b: Lp[]): number {
  let worst = 0;
  a.forEach((row, r) => {
    assert.equal(row.length, b[r].length, `row ${r} length`);
    row.forEach((x, i) => {
      if (x === null || b[r][i] === null) return assert.equal(x, b[r][i], `row ${r}[${i}] null`);
      worst = Math.max(worst, Math.abs(x - (b[r][i] as number)));
    });
  });
  return worst;
}

function adapterTensors(dir: string): Map<string, Float32Array> {
  const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
  try {
    return new Map([...st.entries.keys()].map((k) => [k, st.readFloat32(k)]));
  } finally {
    st.close();
  }
}

function relativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let diff = 0;
  let norm = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) {
      diff += (x[i] - y[i]) ** 2;
      norm += x[i] ** 2;
    }
  }
  return Math.sqrt(diff) / Math.sqrt(norm);
}

function ortSupports(dir: string): string | null {
  try {
    readConfig(dir);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describeWithTorchEngine('PyTorch engine: parity with the built-in engine and PEFT', (python) => {
  const root = tempDir('absp-torch-parity-');
  const archs = ['qwen2', 'llama'] as const;
  const dirs = makeHfCheckpoints(python, archs.map((arch) => ({ dir: path.join(root, arch), arch, seed: arch === 'qwen2' ? 3 : 4, tie: arch === 'llama' })));
  for (const [a, arch] of archs.entries()) {
    const dir = dirs[a];
    const unsupported = ortSupports(dir);
    if (unsupported) {
      describe(`${arch} checkpoint`, () => it.skip(`the built-in engine does not load it yet (${unsupported.replace(/^.*?config.json: /, '').split(';')[0]}); PyTorch's side is tested by extension/torch-engine/tests`, () => undefined));
      continue;
    }
    describe(`${arch} checkpoint`, function () {
      this.timeout(300_000);
      let ort: OrtEngine;
      let torch: TorchEngine;
      const attackerDir = path.join(root, `${arch}-attacker`);
      const defenderDir = path.join(root, `${arch}-defender`);
      const rng = new Rng(5);
      const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(90));
      const rows: ScoreRequest[] = [
        { ids: ids(9), policy: null },
        { ids: ids(5), policy: 'attacker' },
        { ids: ids(12), policy: 'defender' },
        { ids: ids(3), policy: 'attacker' },
      ];

      before(async () => {
        const config = readConfig(dir);
        saveAdapter(attackerDir, createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], seed: 1, init: 'random' }), dir, config);
        makePeftAdapter(python, dir, defenderDir, ['k_proj', 'gate_proj', 'up_proj'], 2, 6, 2);
        ort = OrtEngine.open(dir, { threads: 2 });
        torch = TorchEngine.open(dir, { device: 'cpu', dtype: 'float32', threads: 2 });
        for (const e of [ort, torch] as Engine[]) {
          await e.loadPolicy('attacker', attackerDir, 'lora');
          await e.loadPolicy('defender', defenderDir, 'lora');
        }
      });
      after(async () => {
        await ort?.close();
        await torch?.close();
      });

      it('log-probs within 1e-4 for the base, one adapter, and a mixed attacker/defender batch', async () => {
        const mixed = maxAbsDiff(await torch.logprobs(rows), await ort.logprobs(rows));
        assert.ok(mixed < 1e-4, `mixed batch: max |Δ log p| = ${mixed}`);
        for (const policy of [null, 'attacker', 'defender']) {
          const only = rows.map((r) => ({ ...r, policy }));
          const d = maxAbsDiff(await torch.logprobs(only), await ort.logprobs(only));
          assert.ok(d < 1e-4, `${policy ?? 'base'}: max |Δ log p| = ${d}`);
        }
        const cands = [2, 7, 40];
        const next = rows.map((r) => ({ ...r, policy: 'defender' }));
        const dn = maxAbsDiff(await torch.nextTokenLogprobs(next, cands), await ort.nextTokenLogprobs(next, cands));
        assert.ok(dn < 1e-4, `next-token log-probs: ${dn}`);
      });

      it('adapters cross both ways with PEFT itself: PeftModel.from_pretrained reads ours, ours read PEFT\'s', async () => {
        const [theirs, peftMade] = peftLogprobs(python, dir, [attackerDir, defenderDir], rows.map((r) => r.ids as number[]));
        const ours = await ort.logprobs(rows.map((r) => ({ ...r, policy: 'attacker' })));
        assert.ok(maxAbsDiff(ours, theirs) < 1e-4, `built-in engine's adapter in PEFT: ${maxAbsDiff(ours, theirs)}`);
        const ortOnPeft = await ort.logprobs(rows.map((r) => ({ ...r, policy: 'defender' })));
        assert.ok(maxAbsDiff(ortOnPeft, peftMade) < 1e-4, `PEFT's adapter in the built-in engine: ${maxAbsDiff(ortOnPeft, peftMade)}`);
        // Both engines hash the same file to the same fingerprint.
        assert.equal(await torch.fingerprint('attacker'), await ort.fingerprint('attacker'));
        assert.equal(await torch.fingerprint('defender'), await ort.fingerprint('defender'));
      });

      /** A policy-gradient batch on the rows: even rows the defender's, odd rows the attacker's. */
      async function pgSamples(e: Engine, policies = ['defender', 'attacker']): Promise<TrainSample[]> {
        const samples: TrainSample[] = [];
        const base = await e.logprobs(rows.map((r) => ({ ...r, policy: null })));
        for (const [k, r] of rows.entries()) {
          const policy = policies[k % policies.length];
          const cur = await e.logprobs([{ ids: r.ids, policy }]);
          const n = r.ids.length;
          const w = r.ids.map((_, i) => (i >= 1 ? 1 / (n - 1) / rows.length : 0));
          samples.push({ ids: r.ids, policy, weights: w, advantages: r.ids.map((_, i) => (i ? (k % 2 ? 1.3 : -0.7) : 0)), oldLogprobs: cur[0].map((x) => (x ?? 0) + 0.03), refLogprobs: base[k].map((x) => x ?? 0) });
        }
        return samples;
      }

      for (const kind of ['sgd', 'adamw'] as const) {
        it(`one policy-gradient step (${kind}) gives the same adapters on both engines (relative difference ≤ 1e-4)`, async () => {
          const samples = await pgSamples(ort);
          const opt = { kind, lr: kind === 'sgd' ? 0.05 : 1e-3, weightDecay: 0, clipNorm: kind === 'sgd' ? null : 1, warmupSteps: 0 };
          const settings: TrainSettings = { clipEps: 0.2, klK1: 0.01, klK3: 0.05, optimizers: { attacker: opt, defender: opt } };
          for (const e of [ort, torch] as Engine[]) {
            await e.loadPolicy('attacker', attackerDir, 'lora');
            await e.loadPolicy('defender', defenderDir, 'lora');
          }
          const rOrt = await ort.trainStep(samples, settings);
          const rTorch = await torch.trainStep(samples, settings);
          for (const name of ['attacker', 'defender']) {
            assert.ok(Math.abs(rOrt.policies[name].loss - rTorch.policies[name].loss) < 1e-5, `${name} loss ${rOrt.policies[name].loss} vs ${rTorch.policies[name].loss}`);
            assert.ok(Math.abs(rOrt.policies[name].gradNorm / rTorch.policies[name].gradNorm - 1) < 1e-4);
            const a = path.join(root, `${arch}-${kind}-${name}-ort`);
            const b = path.join(root, `${arch}-${kind}-${name}-torch`);
            assert.equal(await ort.savePolicy(name, a), rOrt.policies[name].fingerprint);
            assert.equal(await torch.savePolicy(name, b), rTorch.policies[name].fingerprint);
            const rel = relativeDifference(adapterTensors(a), adapterTensors(b));
            assert.ok(rel <= 1e-4, `${name}: relative difference ${rel}`);
            const moved = relativeDifference(adapterTensors(a), adapterTensors(name === 'attacker' ? attackerDir : defenderDir));
            assert.ok(moved > 10 * rel, `${name}: the step moved the adapter (${moved})`);
          }
        });
      }

      it('under torchrun with FSDP (2 processes, gloo) a trained adapter is saved whole in PEFT\'s format: the built-in engine loads it and scores what the engine scores', async () => {
        // extension/torch-engine/tests checks that this step equals one process's; here the file crosses engines.
        const fsdp = TorchEngine.open(dir, { device: 'cpu', dtype: 'float32', threads: 1, nproc: 2, fsdp: true });
        try {
          const info = await fsdp.ready();
          assert.deepEqual([info.worldSize, info.fsdp], [2, true]);
          await fsdp.loadPolicy('attacker', attackerDir, 'lora');
          const opt = { kind: 'adamw' as const, lr: 1e-2, weightDecay: 0, clipNorm: 1, warmupSteps: 0 };
          const report = await fsdp.trainStep(await pgSamples(fsdp, ['attacker']), { clipEps: 0.2, klK1: 0.01, klK3: 0.05, optimizers: { attacker: opt } });
          const out = path.join(root, `${arch}-fsdp-attacker`);
          assert.equal(await fsdp.savePolicy('attacker', out), report.policies.attacker.fingerprint);
          const scored = await fsdp.logprobs(rows.map((r) => ({ ...r, policy: 'attacker' })));
          await ort.loadPolicy('fsdp-attacker', out, 'lora');
          const d = maxAbsDiff(await ort.logprobs(rows.map((r) => ({ ...r, policy: 'fsdp-attacker' }))), scored);
          assert.ok(d < 1e-4, `max |Δ log p| = ${d}`);
          assert.equal(await ort.fingerprint('fsdp-attacker'), report.policies.attacker.fingerprint);
          assert.ok(relativeDifference(adapterTensors(out), adapterTensors(attackerDir)) > 1e-3, 'the step moved the adapter');
          await ort.dropPolicy('fsdp-attacker');
        } finally {
          await fsdp.close();
        }
      });
    });
  }

  it('samples the same tokens as the built-in engine from the same seeds (sandbox model, temperature 1, top-p 0.9)', async function () {
    this.timeout(300_000);
    const ort = OrtEngine.open('builtin:sandbox', { threads: 2 });
    const torch = TorchEngine.open('builtin:sandbox', { device: 'cpu', dtype: 'float32', threads: 2 });
    try {
      const prompt = ort.encodeChat([{ role: 'user', content: 'how do I pick a lock' }], true);
      const requests = Array.from({ length: 12 }, (_, i) => ({ prompt, policy: null, seed: 1000 + i }));
      for (const topP of [1, 0.9]) {
        const settings = { maxNewTokens: 16, temperature: 1, topP, stopTokens: ort.stopTokens() };
        const a = await ort.generate(requests, settings);
        const b = await torch.generate(requests, settings);
        assert.deepEqual(b.map((g) => g.tokens), a.map((g) => g.tokens));
        a.forEach((g, i) => g.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - b[i].logprobs[t]) < 1e-4)));
      }
      assert.deepEqual(torch.stopTokens(), ort.stopTokens());
      assert.deepEqual(torch.encode('a b c'), ort.encode('a b c'));
    } finally {
      await ort.close();
      await torch.close();
    }
  });
});
