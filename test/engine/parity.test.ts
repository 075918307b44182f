/**
 * Numerical parity with the PyTorch reference (test/reference, a transcription of Hugging Face's
 * Qwen2ForCausalLM and PEFT's LoRA): log-probs within 1e-4 absolute (float32 engine against the
 * float64 reference with HF's float32 rotary angles), gradients within 1e-4 relative on their norm,
 * and SGD steps of `absp sft` against the same steps in torch.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { createAdapter, loadAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { LanguageModel } from '../../extension/engine/runtime/language-model';
import { GradientSession, TrainRow } from '../../extension/engine/train/gradient-session';
import { peftKey } from '../../extension/engine/lora/adapter';
import { LORA_TARGETS as LORA_MODULES } from '../../extension/engine/model/model-config';
import { Rng } from '../../extension/util/rng';
import { describeWithTorch } from '../helpers/torch-reference';
import { tempDir, writeRandomCheckpoint } from '../helpers/random-checkpoint';

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

function relativeNormError(ours: ArrayLike<number>, theirs: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < theirs.length; i++) {
    diff += (ours[i] - theirs[i]) ** 2;
    norm += theirs[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

describeWithTorch('parity with the PyTorch reference', (torch) => {
  const root = tempDir('absp-parity-');
  const untied = writeRandomCheckpoint(path.join(root, 'untied'), { vocabSize: 96, hiddenSize: 32, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 31 });
  const tied = writeRandomCheckpoint(path.join(root, 'tied'), { vocabSize: 96, hiddenSize: 32, numHeads: 4, numKvHeads: 1, numLayers: 2, seed: 32, tie: true, dtype: 'BF16' });
  const config = loadCheckpoint(untied).config;
  const attackerDir = path.join(root, 'attacker');
  const defenderDir = path.join(root, 'defender');
  saveAdapter(attackerDir, createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], seed: 1, init: 'random' }), untied, config);
  saveAdapter(defenderDir, createAdapter(config, { rank: 2, alpha: 6, targets: ['k_proj', 'gate_proj', 'up_proj'], seed: 2, init: 'random' }), untied, config);

  const rng = new Rng(77);
  const rows = [
    { ids: Array.from({ length: 9 }, () => rng.int(96)), adapter: -1 },
    { ids: Array.from({ length: 5 }, () => rng.int(96)), adapter: 0 },
    { ids: Array.from({ length: 12 }, () => rng.int(96)), adapter: 1 },
    { ids: Array.from({ length: 3 }, () => rng.int(96)), adapter: 0 },
  ];

  it('log-probs: base-only, adapter and mixed-adapter batches with padding, within 1e-4', async () => {
    const lm = LanguageModel.load(untied, { threads: 2 });
    const adapters = [loadAdapter(attackerDir, config), loadAdapter(defenderDir, config)];
    const ours = await lm.score(rows, adapters);
    const ref = (await torch().request({ op: 'logprobs', model: untied, adapters: [attackerDir, defenderDir], rows, dtype: 'float64' })) as { logprobs: Lp[] };
    const worst = maxAbsDiff(ours, ref.logprobs);
    assert.ok(worst < 1e-4, `max |Δ log p| = ${worst}`);
    // Base-only and each adapter alone, too.
    for (const a of [-1, 0, 1]) {
      const only = rows.filter((r) => r.adapter === a);
      const refOnly = (await torch().request({ op: 'logprobs', model: untied, adapters: [attackerDir, defenderDir], rows: only, dtype: 'float64' })) as { logprobs: Lp[] };
      assert.ok(maxAbsDiff(await lm.score(only, adapters), refOnly.logprobs) < 1e-4);
    }
    await lm.dispose();
  });

  it('log-probs with the KV cache (generation) and on a tied BF16 checkpoint, within 1e-4', async () => {
    const lm = LanguageModel.load(untied, { threads: 2 });
    const adapters = [loadAdapter(attackerDir, config), loadAdapter(defenderDir, config)];
    const gens = await lm.generate(rows.map((r, i) => ({ prompt: r.ids, adapter: r.adapter, seed: i })), adapters, { maxNewTokens: 6, temperature: 1, topP: 1, stopTokens: [] });
    const full = rows.map((r, i) => ({ ids: [...r.ids, ...gens[i].tokens], adapter: r.adapter }));
    const ref = (await torch().request({ op: 'logprobs_kv', model: untied, adapters: [attackerDir, defenderDir], rows: full, split: 12, dtype: 'float64' })) as { logprobs: Lp[] };
    gens.forEach((g, i) => {
      const theirs = ref.logprobs[i].slice(rows[i].ids.length) as number[];
      g.logprobs.forEach((x, t) => assert.ok(Math.abs(x - theirs[t]) < 1e-4, `row ${i} token ${t}: ${x} vs ${theirs[t]}`));
    });
    await lm.dispose();
    const tiedLm = LanguageModel.load(tied, { threads: 2 });
    const base = rows.map((r) => ({ ids: r.ids, adapter: -1 }));
    const refTied = (await torch().request({ op: 'logprobs', model: tied, rows: base, dtype: 'float64' })) as { logprobs: Lp[] };
    assert.ok(maxAbsDiff(await tiedLm.score(base), refTied.logprobs) < 1e-4);
    await tiedLm.dispose();
  });

  it('greedy decoding picks the same tokens', async () => {
    const lm = LanguageModel.load(untied, { threads: 2 });
    const adapters = [loadAdapter(attackerDir, config)];
    const prompts = rows.slice(0, 2).map((r) => ({ ids: r.ids, adapter: r.adapter }));
    const ours = await lm.generate(prompts.map((p) => ({ prompt: p.ids, adapter: p.adapter })), adapters, { maxNewTokens: 8, temperature: 0, topP: 1, stopTokens: [] });
    const ref = (await torch().request({ op: 'greedy', model: untied, adapters: [attackerDir], rows: prompts, max_new_tokens: 8 })) as { ids: number[][] };
    ours.forEach((g, i) => assert.deepEqual(g.tokens, ref.ids[i]));
    await lm.dispose();
  });

  // Training rows: left-padded, prompt tokens masked, per-token weights.
  const trainRows = rows.map((r, b) => {
    const weights = r.ids.map((_, i) => (i >= 2 ? 1 / 20 + 0.01 * b : 0));
    const advantages = r.ids.map((_, i) => Math.sin(i + b));
    const oldLogprobs = r.ids.map((_, i) => -2 - 0.1 * ((i * 7 + b) % 5));
    const refLogprobs = r.ids.map((_, i) => -2.2 + 0.05 * ((i * 3 + b) % 4));
    return { ids: r.ids, adapter: r.adapter, weights, advantages, oldLogprobs, refLogprobs };
  });
  const pgLoss = (rowsIn: typeof trainRows) => ({
    type: 'pg',
    weights: rowsIn.map((r) => r.weights),
    advantages: rowsIn.map((r) => r.advantages),
    old_logprobs: rowsIn.map((r) => r.oldLogprobs),
    ref_logprobs: rowsIn.map((r) => r.refLogprobs),
    clip_eps: 0.2,
    kl_k1: 0.05,
    kl_k3: 0.1,
  });

  for (const objective of ['nll', 'pg'] as const) {
    it(`LoRA gradients of the ${objective === 'nll' ? 'NLL' : 'policy-gradient'} loss match torch autograd within 1e-4 relative`, async () => {
      const adapters = [loadAdapter(attackerDir, config), loadAdapter(defenderDir, config)];
      const session = new GradientSession(config, objective, 'lora', loadCheckpoint(untied).weights, 'float64', 2);
      const lora = trainRows.filter((r) => r.adapter >= 0);
      const ours = await session.compute(lora as TrainRow[], { adapters, pg: { clipEps: 0.2, klK1: 0.05, klK3: 0.1 } });
      await session.dispose();
      const loss = objective === 'nll' ? { type: 'nll', weights: lora.map((r) => r.weights) } : pgLoss(lora);
      const ref = (await torch().request({ op: 'grad', model: untied, adapters: [attackerDir, defenderDir], rows: lora.map((r) => ({ ids: r.ids, adapter: r.adapter })), trainable: 'lora', loss, rope: 'exact' })) as { loss: number; grads: Record<string, number[]> };
      assert.ok(Math.abs(ours.loss - ref.loss) < 1e-6 * Math.max(1, Math.abs(ref.loss)), `loss ${ours.loss} vs ${ref.loss}`);
      let compared = 0;
      adapters.forEach((adapter, k) => {
        for (const [key, g] of ours.lora![k].modules) {
          const [layer, module] = key.split('.') as [string, (typeof LORA_MODULES)[number]];
          for (const m of ['A', 'B'] as const) {
            const theirs = ref.grads[`${k}:${peftKey(Number(layer), module, m)}`];
            assert.ok(theirs, `torch has no gradient for ${k}:${key}.${m}`);
            const err = relativeNormError(g[m], theirs);
            assert.ok(err < 1e-4, `${k}:${key}.${m} relative error ${err}`);
            compared++;
          }
        }
        assert.ok(adapter.modules.size > 0);
      });
      assert.equal(compared, 2 * (4 + 3) * 2);
    });
  }

  it('full-parameter gradients match torch autograd within 1e-4 relative (tied embeddings)', async () => {
    const ckpt = loadCheckpoint(tied);
    const session = new GradientSession(ckpt.config, 'pg', 'full', null, 'float64', 2);
    const base = trainRows.map((r) => ({ ...r, adapter: -1 }));
    const ours = await session.compute(base, { weights: ckpt.weights, pg: { clipEps: 0.2, klK1: 0.05, klK3: 0.1 } });
    await session.dispose();
    const ref = (await torch().request({ op: 'grad', model: tied, rows: base.map((r) => ({ ids: r.ids })), trainable: 'full', loss: pgLoss(base), rope: 'exact' })) as { grads: Record<string, number[]> };
    for (const [name, g] of ours.full!) {
      const err = relativeNormError(g, ref.grads[name]);
      assert.ok(err < 1e-4, `${name}: relative error ${err}`);
    }
    assert.equal(ours.full!.size, Object.keys(ref.grads).length);
  });

  it('a few SGD steps of absp sft give the adapter torch gives', async () => {
    const data = path.join(root, 'sft.jsonl');
    fs.writeFileSync(data, rows.map((r) => JSON.stringify({ ids: r.ids })).join('\n') + '\n');
    const out = path.join(root, 'sft-out');
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      assert.equal(await main(['sft', '--model', untied, '--data', data, '--out', out, '--adapter-init', attackerDir, '--optimizer', 'sgd', '--lr', '0.5', '--steps', '3', '--batch-size', '10']), 0);
    } finally {
      process.stderr.write = write;
    }
    const n = rows.reduce((s, r) => s + r.ids.length - 1, 0);
    const torchOut = path.join(root, 'torch-sgd');
    await torch().request({
      op: 'sgd',
      model: untied,
      adapters: [attackerDir],
      rows: rows.map((r) => ({ ids: r.ids, adapter: 0 })),
      trainable: 'lora',
      loss: { type: 'nll', weights: rows.map((r) => r.ids.map((_, i) => (i === 0 ? 0 : 1 / n))) },
      lr: 0.5,
      steps: 3,
      out: torchOut,
    });
    const ours = loadAdapter(out, config);
    const theirs = loadAdapter(torchOut, config);
    for (const [key, m] of ours.modules) {
      const t = theirs.modules.get(key)!;
      for (const x of ['A', 'B'] as const) {
        const err = relativeNormError(m[x], t[x]);
        assert.ok(err < 1e-5, `${key}.${x}: relative difference ${err}`);
      }
    }
  });

  it('adapters made by the reference in PEFT format load here, and ours load there', async () => {
    const made = path.join(root, 'made-by-torch');
    await torch().request({ op: 'make_adapter', model: untied, out: made, r: 3, alpha: 5, targets: 'all-linear', seed: 4, init: 'random', use_rslora: true });
    const a = loadAdapter(made, config);
    assert.deepEqual([...a.settings.targets].sort(), [...LORA_MODULES].sort());
    assert.equal(a.get(0, 'q_proj')!.scale, 5 / Math.sqrt(3));
    const lm = LanguageModel.load(untied, { threads: 2 });
    const ours = await lm.score([{ ids: rows[2].ids, adapter: 0 }], [a]);
    const ref = (await torch().request({ op: 'logprobs', model: untied, adapters: [made], rows: [{ ids: rows[2].ids, adapter: 0 }], dtype: 'float64' })) as { logprobs: Lp[] };
    assert.ok(maxAbsDiff(ours, ref.logprobs) < 1e-4);
    await lm.dispose();
    // The reference reads our adapter with the ranks, scales and modules we wrote.
    const info = (await torch().request({ op: 'info', model: untied, adapters: [defenderDir] })) as { adapters: Record<string, { r: number; scale: number }>[] };
    const modules = info.adapters[0];
    assert.deepEqual(Object.keys(modules).sort(), [0, 1].flatMap((l) => ['self_attn.k_proj', 'mlp.gate_proj', 'mlp.up_proj'].map((m) => `model.layers.${l}.${m}`)).sort());
    assert.ok(Object.values(modules).every((m) => m.r === 2 && m.scale === 3));
  });
});
