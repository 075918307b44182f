/** Training on ONNX Runtime: optimisers, SFT data, the SFT loop, resume, and learning itself. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { loadCheckpoint, saveCheckpoint } from '../../extension/engine/model/checkpoint';
import { parseConfig } from '../../extension/engine/model/model-config';
import { SafetensorsFile } from '../../extension/engine/model/safetensors';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { createAdapter, loadAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { GradientSession } from '../../extension/engine/train/gradient-session';
import { Optimizer, defaultOptimizerConfig, scheduledLr } from '../../extension/engine/train/optimizer';
import { loadSftData } from '../../extension/engine/train/sft-data';
import { batchIndices, runSft } from '../../extension/engine/train/sft';
import { latestCheckpoint, writeCheckpoint } from '../../extension/engine/train/checkpoint-dir';
import { Rng } from '../../extension/util/rng';
import { randomConfig, tempDir, writeRandomCheckpoint, writeTinyTokenizer } from '../helpers/random-checkpoint';

function writeLines(file: string, lines: unknown[]): string {
  fs.writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

async function cli(...args: string[]): Promise<number> {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await main(args);
  } finally {
    process.stderr.write = write;
  }
}

describe('optimisers', () => {
  it('AdamW follows PyTorch: decoupled decay, bias correction, eps after the root', () => {
    const cfg = { ...defaultOptimizerConfig('adamw', 0.1), weightDecay: 0.5, clipNorm: null };
    const opt = new Optimizer(cfg);
    const p = new Map([['w', Float32Array.from([1, -2])]]);
    const g1 = new Map([['w', [0.5, 1]]]);
    opt.apply(p, g1);
    // Step 1: m̂ = g, v̂ = g², so the Adam term is g/(|g| + eps) ≈ sign(g).
    const expected1 = [1 * (1 - 0.05) - 0.1 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.05) - 0.1 * (1 / (1 + 1e-8))];
    p.get('w')!.forEach((x, i) => assert.ok(Math.abs(x - expected1[i]) < 1e-6));
    const g2 = new Map([['w', [-1, 0.25]]]);
    const before = Array.from(p.get('w')!);
    opt.apply(p, g2);
    const m = [0.9 * 0.1 * 0.5 + 0.1 * -1, 0.9 * 0.1 * 1 + 0.1 * 0.25];
    const v = [0.999 * 0.001 * 0.25 + 0.001 * 1, 0.999 * 0.001 * 1 + 0.001 * 0.0625];
    const bc1 = 1 - 0.9 ** 2;
    const bc2 = Math.sqrt(1 - 0.999 ** 2);
    before.forEach((x, i) => {
      const want = x * (1 - 0.05) - ((0.1 / bc1) * m[i]) / (Math.sqrt(v[i]) / bc2 + 1e-8);
      assert.ok(Math.abs(p.get('w')![i] - want) < 1e-5, `${p.get('w')![i]} vs ${want}`);
    });
  });

  it('clips the global gradient norm and skips non-finite gradients', () => {
    const opt = new Optimizer({ ...defaultOptimizerConfig('sgd', 1), clipNorm: 1 });
    const p = new Map([['a', Float32Array.from([0])], ['b', Float32Array.from([0])]]);
    const r = opt.apply(p, new Map([['a', [3]], ['b', [4]]]));
    assert.equal(r.gradNorm, 5);
    assert.ok(Math.abs(p.get('a')![0] + 0.6) < 1e-6 && Math.abs(p.get('b')![0] + 0.8) < 1e-6);
    const skipped = opt.apply(p, new Map([['a', [NaN]], ['b', [1]]]));
    assert.ok(skipped.skipped);
    assert.ok(Math.abs(p.get('a')![0] + 0.6) < 1e-6);
    assert.equal(opt.step, 1);
    assert.equal(opt.position, 2);
  });

  it('warmup then cosine or linear decay', () => {
    const cfg = { ...defaultOptimizerConfig('adamw', 1), schedule: { kind: 'cosine' as const, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 } };
    assert.deepEqual([0, 1, 2, 3].map((s) => scheduledLr(cfg, s)), [0.25, 0.5, 0.75, 1]);
    assert.ok(Math.abs(scheduledLr(cfg, 9) - (0.1 + 0.9 * 0.5)) < 1e-12);
    assert.ok(Math.abs(scheduledLr(cfg, 14) - 0.1) < 1e-12);
    assert.ok(Math.abs(scheduledLr({ ...cfg, schedule: { ...cfg.schedule, kind: 'linear' } }, 9) - (0.1 + 0.9 * 0.5)) < 1e-12);
  });

  it('saves and restores its state exactly', () => {
    const dir = tempDir();
    const opt = new Optimizer(defaultOptimizerConfig('adamw', 0.01));
    const rng = new Rng(1);
    const p = new Map([['w', Float32Array.from({ length: 10 }, () => rng.normal())]]);
    const grad = () => new Map([['w', Array.from({ length: 10 }, () => rng.normal())]]);
    for (let i = 0; i < 3; i++) opt.apply(p, grad());
    opt.save(dir, 'opt');
    const copy = Optimizer.load(dir, 'opt');
    const p2 = new Map([['w', p.get('w')!.slice()]]);
    const g = grad();
    opt.apply(p, g);
    copy.apply(p2, g);
    assert.deepEqual(p2.get('w'), p.get('w'));
  });
});

describe('checkpoints', () => {
  it('a checkpoint that fails half-way never replaces the last good one', () => {
    const root = tempDir();
    writeCheckpoint(root, 'step-0000001', (d) => fs.writeFileSync(path.join(d, 'x'), 'good'));
    assert.throws(() =>
      writeCheckpoint(root, 'step-0000002', (d) => {
        fs.writeFileSync(path.join(d, 'x'), 'half');
        throw new Error('disk full');
      }),
    );
    const latest = latestCheckpoint(root)!;
    assert.equal(path.basename(latest), 'step-0000001');
    assert.equal(fs.readFileSync(path.join(latest, 'x'), 'utf8'), 'good');
  });

  it('writes a full model that loads again', () => {
    const ckpt = loadCheckpoint(writeRandomCheckpoint(tempDir()));
    const dir = tempDir();
    saveCheckpoint(dir, ckpt.config, ckpt.weights);
    const again = loadCheckpoint(dir);
    for (const [k, w] of ckpt.weights) assert.deepEqual(again.weights.get(k)!.data, w.data);
  });
});

describe('SFT data', () => {
  const dir = tempDir();
  writeTinyTokenizer(dir, 32);
  const tok = TextTokenizer.load(dir);
  const opts = { tokenizer: tok, maxLength: 12, vocabSize: 32 };

  it('reads ids, text and chat lines; chat trains on assistant turns only', () => {
    const file = writeLines(path.join(dir, 'ok.jsonl'), [
      { ids: [1, 7, 8] },
      { text: 'w9 w10 w11' },
      { messages: [{ role: 'user', content: 'w7' }, { role: 'assistant', content: 'w8 w9' }] },
    ]);
    const [ids, text, chat] = loadSftData(file, opts);
    assert.deepEqual(ids.lossMask, [0, 1, 1]);
    assert.deepEqual(text.ids, [9, 10, 11]);
    // <|im_start|> user w7 <|im_end|> <|im_start|> assistant w8 w9 <|im_end|>
    assert.deepEqual(chat.ids, [1, 4, 7, 2, 1, 5, 8, 9, 2]);
    assert.deepEqual(chat.lossMask, [0, 0, 0, 0, 0, 0, 1, 1, 1]);
  });

  it('names the file and line of each bad line', () => {
    const bad = (lines: unknown[], re: RegExp) => {
      const file = writeLines(path.join(dir, 'bad.jsonl'), lines);
      assert.throws(() => loadSftData(file, opts), re);
    };
    bad([{ ids: [1, 2] }, ''], /bad\.jsonl:2: empty line/);
    bad(['{"ids": [1, 2'], /bad\.jsonl:1: invalid JSON/);
    bad([{ ids: [1, 2] }, { ids: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13] }], /bad\.jsonl:2: is 13 tokens long, more than the model's limit of 12/);
    bad([{ messages: [{ role: 'hacker', content: 'w7' }] }], /bad\.jsonl:1: message 0 has unknown role "hacker"/);
    bad([{ ids: [1, 99] }], /bad\.jsonl:1: unknown token id 99/);
    bad([{ prompt: 'x' }], /bad\.jsonl:1: expected one of the keys "text", "ids" or "messages"/);
    bad([{ messages: [{ role: 'user', content: 'w7' }] }], /bad\.jsonl:1: has no tokens to train on/);
  });

  it('batches cover the data once per epoch, and a large batch is the whole file', () => {
    const seen = [0, 1, 2, 3, 4].flatMap((s) => batchIndices(10, 2, 3, s));
    assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(batchIndices(4, 100, 1, 0).sort(), [0, 1, 2, 3]);
  });
});

describe('learning', function () {
  this.timeout(300000);

  it('a LoRA adapter overfits a handful of sequences to near-zero loss', async () => {
    // Weights of std 0.6: after the final RMSNorm the frozen head's scale bounds how confident any
    // adapter can make the model, and at the default 0.2 that bound is a loss of about 0.14.
    const ckpt = loadCheckpoint(writeRandomCheckpoint(tempDir(), { vocabSize: 48, seed: 21, std: 0.6 }));
    const rng = new Rng(4);
    const examples = Array.from({ length: 4 }, (_, n) => {
      const ids = Array.from({ length: 10 }, () => 3 + rng.int(45));
      return { ids, lossMask: ids.map((_, i) => (i ? 1 : 0)), line: n + 1 };
    });
    const adapter = createAdapter(ckpt.config, { rank: 16, alpha: 32, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 1 });
    const reports = await runSft({
      config: ckpt.config,
      weights: ckpt.weights,
      examples,
      target: { kind: 'lora', adapter },
      optimizer: new Optimizer({ ...defaultOptimizerConfig('adamw', 1e-2), weightDecay: 0 }),
      steps: 100,
      batchSize: 4,
      seed: 0,
      threads: 2,
    });
    assert.ok(reports[0].loss > 3, `initial loss ${reports[0].loss}`);
    assert.ok(reports[reports.length - 1].loss < 0.01, `final loss ${reports[reports.length - 1].loss}`);
  });

  it('a tiny model pretrained from scratch learns a synthetic language (loss well below the unigram entropy)', async () => {
    // Sentences of a small grammar: "<s> N V N . " with agreement rules; tokens 1..20.
    const rng = new Rng(8);
    const nouns = [3, 4, 5, 6, 7, 8];
    const verbsFor = (n: number) => [9 + (n % 3), 12 + (n % 4)];
    const corpus = Array.from({ length: 64 }, (_, k) => {
      const ids = [1];
      for (let s = 0; s < 4; s++) {
        const subject = rng.pick(nouns);
        ids.push(subject, rng.pick(verbsFor(subject)), 16 + ((subject + s) % 4), 2);
      }
      return { ids, lossMask: ids.map((_, i) => (i ? 1 : 0)), line: k + 1 };
    });
    const counts = new Map<number, number>();
    let total = 0;
    for (const e of corpus) for (const id of e.ids.slice(1)) (counts.set(id, (counts.get(id) ?? 0) + 1), total++);
    const unigramEntropy = -[...counts.values()].reduce((h, c) => h + (c / total) * Math.log(c / total), 0);

    const raw = { ...randomConfig({ vocabSize: 24, hiddenSize: 48, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2 }) };
    const config = parseConfig(raw, 'config.json');
    const dir = writeRandomCheckpoint(tempDir(), { vocabSize: 24, hiddenSize: 48, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, std: 0.05, seed: 2 });
    const { weights } = loadCheckpoint(dir);
    const reports = await runSft({
      config,
      weights,
      examples: corpus,
      target: { kind: 'full' },
      optimizer: new Optimizer({ ...defaultOptimizerConfig('adamw', 3e-3), weightDecay: 0 }),
      steps: 200,
      batchSize: 16,
      seed: 1,
      threads: 2,
    });
    const last = reports.slice(-10).reduce((a, r) => a + r.loss, 0) / 10;
    assert.ok(last < 0.6 * unigramEntropy, `loss ${last} vs unigram entropy ${unigramEntropy}`);
  });

  it('a NaN loss skips the step, reports it, and leaves the adapter untouched', async () => {
    const ckpt = loadCheckpoint(writeRandomCheckpoint(tempDir()));
    const adapter = createAdapter(ckpt.config, { rank: 2, alpha: 4, targets: ['q_proj'], seed: 1, init: 'random' });
    adapter.get(0, 'q_proj')!.B[0] = NaN;
    const before = adapter.clone();
    const reports = await runSft({
      config: ckpt.config,
      weights: ckpt.weights,
      examples: [{ ids: [1, 2, 3], lossMask: [0, 1, 1], line: 1 }],
      target: { kind: 'lora', adapter },
      optimizer: new Optimizer(defaultOptimizerConfig('adamw', 0.1)),
      steps: 2,
      batchSize: 1,
      seed: 0,
      threads: 1,
    });
    assert.deepEqual(reports.map((r) => r.skipped), [true, true]);
    assert.ok(Number.isNaN(reports[0].loss));
    assert.deepEqual(adapter.get(1, 'q_proj')!.A, before.get(1, 'q_proj')!.A);
  });
});

describe('absp sft', function () {
  this.timeout(300000);
  const setup = () => {
    const root = tempDir();
    const model = writeRandomCheckpoint(path.join(root, 'model'), { vocabSize: 40 });
    writeTinyTokenizer(model, 40);
    const rng = new Rng(3);
    const data = writeLines(
      path.join(root, 'data.jsonl'),
      Array.from({ length: 6 }, () => ({ ids: Array.from({ length: 8 }, () => 3 + rng.int(37)) })),
    );
    return { root, model, data };
  };

  it('resuming from a checkpoint gives exactly the adapter of an uninterrupted run', async () => {
    const { root, model, data } = setup();
    const common = ['--model', model, '--data', data, '--rank', '4', '--lr', '0.01', '--batch-size', '2', '--seed', '5', '--save-every', '3'];
    assert.equal(await cli('sft', ...common, '--out', path.join(root, 'straight'), '--steps', '6'), 0);
    assert.equal(await cli('sft', ...common, '--out', path.join(root, 'split'), '--steps', '3'), 0);
    assert.equal(await cli('sft', ...common, '--out', path.join(root, 'split'), '--steps', '6', '--resume'), 0);
    const read = (d: string) => fs.readFileSync(path.join(root, d, 'adapter_model.safetensors'));
    assert.ok(read('straight').equals(read('split')), 'adapters differ');
    const losses = fs.readFileSync(path.join(root, 'split', 'loss.jsonl'), 'utf8').trim().split('\n');
    assert.equal(losses.length, 6);
  });

  it('one SGD step without clipping or schedule is exactly W − lr·∇W', async () => {
    const { root, model, data } = setup();
    const out = path.join(root, 'sgd');
    const init = path.join(root, 'init');
    const config = loadCheckpoint(model).config;
    const adapter = createAdapter(config, { rank: 2, alpha: 2, targets: ['v_proj'], seed: 9, init: 'random' });
    saveAdapter(init, adapter, model, config);
    assert.equal(await cli('sft', '--model', model, '--data', data, '--out', out, '--adapter-init', init, '--optimizer', 'sgd', '--lr', '0.5', '--steps', '1', '--batch-size', '100'), 0);
    const trained = loadAdapter(out, config);
    // Recompute the gradient of the pooled NLL over all six lines with the gradient session.
    const ex = loadSftData(data, { tokenizer: null, maxLength: 256, vocabSize: 40 });
    const n = ex.reduce((a, e) => a + e.ids.length - 1, 0);
    const session = new GradientSession(config, 'nll', 'lora', loadCheckpoint(model).weights, 'float64', 1);
    const r = await session.compute(ex.map((e) => ({ ids: e.ids, adapter: 0, weights: e.lossMask.map((m) => m / n) })), { adapters: [adapter] });
    await session.dispose();
    for (const [key, m] of adapter.modules) {
      const g = r.lora![0].modules.get(key)!;
      m.B.forEach((b, i) => assert.ok(Math.abs(trained.modules.get(key)!.B[i] - (b - 0.5 * g.B[i])) < 1e-5, `${key} B[${i}]`));
      m.A.forEach((a, i) => assert.ok(Math.abs(trained.modules.get(key)!.A[i] - (a - 0.5 * g.A[i])) < 1e-5, `${key} A[${i}]`));
    }
  });

  it('--full writes a Hugging Face model directory with the tokenizer', async () => {
    const { root, model, data } = setup();
    const out = path.join(root, 'full');
    assert.equal(await cli('sft', '--model', model, '--data', data, '--out', out, '--full', '--steps', '3', '--lr', '0.001'), 0);
    const trained = loadCheckpoint(out);
    assert.ok(fs.existsSync(path.join(out, 'tokenizer.json')));
    const base = loadCheckpoint(model);
    const w = 'model.layers.0.self_attn.q_proj.weight';
    assert.notDeepEqual(trained.weights.get(w)!.data, base.weights.get(w)!.data);
    const st = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.equal(st.entry(w).dtype, 'F32');
    st.close();
  });

  it('bad data fails with the file and line and writes nothing', async () => {
    const { root, model } = setup();
    const bad = writeLines(path.join(root, 'bad.jsonl'), [{ ids: [1, 2, 3] }, '{oops']);
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errors.push(String(s)), true)) as typeof process.stderr.write;
    try {
      assert.equal(await main(['sft', '--model', model, '--data', bad, '--out', path.join(root, 'never')]), 1);
    } finally {
      process.stderr.write = write;
    }
    assert.match(errors.join(''), /bad\.jsonl:2: invalid JSON/);
    assert.ok(!fs.existsSync(path.join(root, 'never')));
  });
});
