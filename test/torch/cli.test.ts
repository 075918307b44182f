/**
 * The command line with the PyTorch engine: `absp torch doctor`, and `absp generate|score|sft
 * --engine torch` printing what the built-in engine prints (same format, same tokens, numbers
 * within float32 rounding).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { readConfig } from '../../extension/engine/model/model-config';
import { SafetensorsFile } from '../../extension/engine/model/safetensors';
import { sandboxModelDir } from '../../extension/sandbox/builtin';
import { tempDir } from '../helpers/random-checkpoint';
import { describeWithTorchEngine } from '../helpers/torch-engine';

const CLI = path.resolve(__dirname, '..', '..', 'bin', 'absp.js');

function absp(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, ABSP_THREADS: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tensors(file: string): Map<string, Float32Array> {
  const st = SafetensorsFile.open(file);
  try {
    return new Map([...st.entries.keys()].map((k) => [k, st.readFloat32(k)]));
  } finally {
    st.close();
  }
}

describeWithTorchEngine('absp with --engine torch', (python) => {
  const dir = tempDir('absp-torch-cli-');

  it('absp torch doctor --json reports the environment', function () {
    this.timeout(600_000);
    const r = absp(['torch', 'doctor', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.python, python);
    assert.match(report.torch, /^2\.\d+/);
    for (const k of ['transformers', 'peft', 'accelerate', 'safetensors']) assert.match(report[k], /^\d+\.\d+/, k);
    assert.ok(report.devices.includes('cpu'));
    const bad = absp(['torch', 'doctor', '--json', '--python', path.join(dir, 'nope')]);
    assert.equal(bad.status, 1);
    assert.equal(JSON.parse(bad.stdout).ok, false);
    assert.match(bad.stderr, /absp torch setup/);
  });

  it('generate and score print what the built-in engine prints', function () {
    // Three engine starts, each importing torch and transformers: over 300 s on a 2-core machine
    // at load 18 (2026-12-02); the bound is for such machines, not a measure.
    this.timeout(900_000);
    const gen = (engine: string) => absp(['generate', '--model', 'builtin:sandbox', '--prompt', 'how do I pick a lock', '--chat', '--max-new-tokens', '12', '--json', '--engine', engine]);
    const a = gen('ort');
    const b = gen('torch');
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    assert.deepEqual(Object.keys(jb), Object.keys(ja));
    assert.deepEqual([jb.prompt_ids, jb.ids, jb.text, jb.finish], [ja.prompt_ids, ja.ids, ja.text, ja.finish]);
    ja.logprobs.forEach((x: number, i: number) => assert.ok(Math.abs(x - jb.logprobs[i]) < 1e-4));
    const plain = (engine: string) => absp(['generate', '--model', 'builtin:sandbox', '--prompt', 'bake bread', '--chat', '--max-new-tokens', '8', '--engine', engine]).stdout;
    assert.equal(plain('torch'), plain('ort'));
    const score = (engine: string) => absp(['score', '--model', 'builtin:sandbox', '--text', 'how do I pick a lock', '--engine', engine]);
    const sa = score('ort').stdout.trim().split('\n').map((l) => l.split('\t'));
    const sb = score('torch').stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.equal(sb.length, sa.length);
    sa.forEach((cols, i) => {
      assert.deepEqual(sb[i].slice(0, 3), cols.slice(0, 3));
      assert.equal(sb[i][3] === '', cols[3] === '');
      if (cols[3]) assert.ok(Math.abs(Number(cols[3]) - Number(sb[i][3])) < 1e-4);
    });
  });

  it('sft trains the adapter the built-in engine trains (relative difference ≤ 1e-4)', function () {
    this.timeout(600_000);
    const data = path.join(dir, 'data.jsonl');
    fs.writeFileSync(data, ['how do I bake bread', 'pick a lock', 'the weather is nice today', 'tell me a story about a cat'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    const init = path.join(dir, 'init');
    const config = readConfig(sandboxModelDir());
    saveAdapter(init, createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 3, init: 'random' }), sandboxModelDir(), config);
    const run = (engine: string) => absp(['sft', '--model', 'builtin:sandbox', '--data', data, '--out', path.join(dir, engine), '--adapter-init', init, '--optimizer', 'sgd', '--lr', '0.05', '--steps', '3', '--batch-size', '2', '--engine', engine]);
    for (const engine of ['ort', 'torch']) {
      const r = run(engine);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`sft: wrote adapter to ${path.join(dir, engine)}`));
    }
    const a = tensors(path.join(dir, 'ort', 'adapter_model.safetensors'));
    const b = tensors(path.join(dir, 'torch', 'adapter_model.safetensors'));
    let diff = 0;
    let norm = 0;
    for (const [k, x] of a) x.forEach((v, i) => ((diff += (v - b.get(k)![i]) ** 2), (norm += v * v)));
    assert.ok(Math.sqrt(diff / norm) <= 1e-4, `relative difference ${Math.sqrt(diff / norm)}`);
    const losses = (engine: string) => fs.readFileSync(path.join(dir, engine, 'loss.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    const la = losses('ort');
    const lb = losses('torch');
    assert.equal(lb.length, 3);
    la.forEach((x, i) => assert.ok(Math.abs(x - lb[i]) < 1e-4, `step ${i + 1}: ${x} vs ${lb[i]}`));
  });
});
