import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { corpusExamples, initialWeights, sandboxConfigJson, DEFAULT_SHAPE } from '../../extension/sandbox/build';
import { BUILD_FILE, checkSandboxModel, fileDigest, MODEL_FILES, openSandboxEngine, REBUILD_COMMAND, sandboxModelDir, SandboxModelError } from '../../extension/sandbox/builtin';
import { generateCorpus } from '../../extension/sandbox/corpus';
import { parseConfig } from '../../extension/engine/model/model-config';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { writeTokenizerFiles } from '../../extension/sandbox/vocabulary';

const made: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-sandbox-'));
  made.push(dir);
  return dir;
}
after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI in-process and returns its exit code and what it wrote. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

const TINY = ['--hidden-size', '32', '--intermediate-size', '64', '--layers', '1', '--dialogues', '300', '--batch-size', '16', '--threads', '2'];

describe('absp sandbox build', function () {
  this.timeout(300_000);

  it('regenerates corpus, tokenizer and model on a tiny budget, with provenance, digests and a profile', async () => {
    const out = path.join(tempDir(), 'model');
    const r = await cli(['sandbox', 'build', '--out', out, '--steps', '6', '--warmup', '2', '--seed', '3', '--profile-samples', '1', ...TINY]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of [...MODEL_FILES, BUILD_FILE]) assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.deepEqual(fs.readdirSync(path.dirname(out)), ['model'], 'no staging folder is left behind');
    const info = checkSandboxModel(out);
    const build = info.build as unknown as { seed: number; corpus: { dialogues: number }; training: { steps: number; finalLoss: number }; shape: { hiddenSize: number; parameters: number }; profile: { plainHarmful: { prompts: number } } };
    assert.equal(build.seed, 3);
    assert.equal(build.corpus.dialogues, 300);
    assert.equal(build.training.steps, 6);
    assert.ok(build.training.finalLoss > 0 && build.training.finalLoss < Math.log(770) + 1);
    assert.equal(build.profile.plainHarmful.prompts, 60);
    const ckpt = loadCheckpoint(out);
    assert.equal(ckpt.config.hiddenSize, 32);
    assert.equal(ckpt.config.tieWordEmbeddings, true);
    assert.equal(build.shape.parameters, [...ckpt.weights.values()].reduce((n, w) => n + w.data.length, 0));
    assert.match(r.stdout, /best-response attack success/);
    // The built directory opens on the engine and speaks the sandbox's chat format.
    const engine = openSandboxEngine({ dir: out, threads: 1 });
    try {
      assert.equal(engine.decode(engine.encodeChat([{ role: 'user', content: 'how do i bake bread at home?' }], true)), 'user how do i bake bread at home? assistant');
      assert.deepEqual(engine.stopTokens(), [2]);
    } finally {
      await engine.close();
    }
  });

  it('replaces an existing model only when the new build succeeds', async () => {
    const root = tempDir();
    const out = path.join(root, 'model');
    assert.equal((await cli(['sandbox', 'build', '--out', out, '--steps', '2', '--warmup', '1', '--no-profile', ...TINY])).code, 0);
    const before = fileDigest(path.join(out, 'model.safetensors'));
    // A learning rate this large blows the weights up after one step; every later step is non-finite.
    const failed = await cli(['sandbox', 'build', '--out', out, '--steps', '4', '--warmup', '0', '--lr', '1e30', '--no-profile', ...TINY]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /diverged/);
    assert.deepEqual(fileDigest(path.join(out, 'model.safetensors')), before, 'the previous model is intact');
    assert.deepEqual(fs.readdirSync(root), ['model']);
    assert.equal((await cli(['sandbox', 'build', '--out', out, '--steps', '2', '--warmup', '1', '--seed', '9', '--no-profile', ...TINY])).code, 0);
    assert.notDeepEqual(fileDigest(path.join(out, 'model.safetensors')), before, 'a successful build replaces it');
    assert.deepEqual(fs.readdirSync(root), ['model']);
  });

  it('rejects bad options with a message naming them', async () => {
    const r = await cli(['sandbox', 'build', '--out', path.join(tempDir(), 'm'), '--steps', '5', '--warmup', '5']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--warmup \(5\) must be smaller than --steps \(5\)/);
    const bad = await cli(['sandbox', 'build', '--steps', 'many']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--steps must be an integer/);
  });
});

describe('sandbox pretraining data and initialisation', () => {
  it('trains on the assistant turn only, its opener weighted as asked, and ends each example with the end-of-turn marker', () => {
    const dir = tempDir();
    writeTokenizerFiles(dir);
    const tok = TextTokenizer.load(dir);
    const dialogues = generateCorpus({ seed: 2, dialogues: 50 });
    const examples = corpusExamples(dialogues, tok, 3);
    examples.forEach((e, k) => {
      const first = e.lossMask.findIndex((m) => m > 0);
      assert.equal(e.lossMask[first], 3);
      assert.ok(e.lossMask.slice(first + 1).every((m) => m === 1));
      assert.ok(e.lossMask.slice(0, first).every((m) => m === 0));
      assert.equal(e.ids[e.ids.length - 1], tok.tokenId('<|im_end|>'));
      const answer = dialogues[k].messages[dialogues[k].messages.length - 1].content;
      assert.equal(tok.decode(e.ids.slice(first, -1)), answer);
    });
  });

  it('initialises matrices as small normals, residual projections smaller, norms at one and biases at zero', () => {
    const config = parseConfig(sandboxConfigJson(DEFAULT_SHAPE, 770), 'config.json');
    const w = initialWeights(config, 1);
    const std = (name: string) => {
      const d = w.get(name)!.data;
      const m = d.reduce((a, b) => a + b, 0) / d.length;
      return Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / d.length);
    };
    assert.ok(Math.abs(std('model.embed_tokens.weight') - 0.02) < 0.001);
    assert.ok(Math.abs(std('model.layers.0.self_attn.o_proj.weight') - 0.02 / Math.sqrt(2 * DEFAULT_SHAPE.numLayers)) < 0.001);
    assert.ok(w.get('model.norm.weight')!.data.every((x) => x === 1));
    assert.ok(w.get('model.layers.1.self_attn.q_proj.bias')!.data.every((x) => x === 0));
    assert.notDeepEqual(initialWeights(config, 2).get('model.embed_tokens.weight')!.data, w.get('model.embed_tokens.weight')!.data);
    assert.deepEqual(initialWeights(config, 1).get('model.embed_tokens.weight')!.data, w.get('model.embed_tokens.weight')!.data);
  });
});

describe('a damaged built-in model', function () {
  this.timeout(120_000);
  let copy: string;

  beforeEach(() => {
    copy = path.join(tempDir(), 'sandbox');
    fs.cpSync(sandboxModelDir(), copy, { recursive: true });
  });

  const expectRebuildMessage = (fn: () => unknown, file: string, problem: RegExp) => {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof SandboxModelError, String(e));
      assert.ok(e.message.includes(path.join(copy, file)), e.message);
      assert.match(e.message, problem);
      assert.ok(e.message.includes(REBUILD_COMMAND), e.message);
      return true;
    });
  };

  it('the shipped copy passes the check', () => {
    assert.equal(checkSandboxModel(copy).dir, copy);
  });

  it('a missing weights file is named, with the command that rebuilds it', () => {
    fs.rmSync(path.join(copy, 'model.safetensors'));
    expectRebuildMessage(() => checkSandboxModel(copy), 'model.safetensors', /is missing/);
  });

  it('flipped bytes in the weights are caught by the recorded digest', () => {
    const file = path.join(copy, 'model.safetensors');
    const data = fs.readFileSync(file);
    data[data.length >> 1] ^= 0xff;
    fs.writeFileSync(file, data);
    expectRebuildMessage(() => checkSandboxModel(copy), 'model.safetensors', /corrupted/);
  });

  it('a truncated tokenizer, and a broken or missing build.json, are named too', () => {
    const tok = path.join(copy, 'tokenizer.json');
    fs.writeFileSync(tok, fs.readFileSync(tok).subarray(0, 100));
    expectRebuildMessage(() => checkSandboxModel(copy), 'tokenizer.json', /corrupted/);
    fs.writeFileSync(path.join(copy, BUILD_FILE), '{"seed": 1, "files": ');
    expectRebuildMessage(() => checkSandboxModel(copy), BUILD_FILE, /not valid JSON/);
    fs.rmSync(path.join(copy, BUILD_FILE));
    expectRebuildMessage(() => checkSandboxModel(copy), BUILD_FILE, /is missing/);
  });

  it('absp sandbox profile reports the damage in one line and exits 1', async () => {
    fs.rmSync(path.join(copy, 'config.json'));
    const r = await cli(['sandbox', 'profile', '--model', copy]);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(path.join(copy, 'config.json')) && lines[0].includes('npx absp sandbox build'), lines[0]);
  });
});
