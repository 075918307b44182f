/**
 * PEFT adapters from a hub or a colleague: their adapter_config.json and adapter_model.safetensors.
 * Finding 4 (regular expressions in target_modules and rank_pattern), links and FIFOs, and what held
 * (shapes, missing halves, pickles, damaged safetensors).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAdapter, loadAdapter, readPeftAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { parseConfig, readConfig, type ModelConfig } from '../../extension/engine/model/model-config';
import { sandboxModelDir } from '../../extension/sandbox/builtin';
import { randomConfig } from '../helpers/random-checkpoint';
import { makeFifo, type BadInputCase } from './harness';
import { closeEngines, pickleThatTouches, sandboxEngine, TORCH_DEADLINE_MS, withTorchEngine } from './torch-engine';

const MODEL = parseConfig(randomConfig({ numLayers: 2 }), 'config.json');

/** A valid adapter for the tiny model, then `edit` applied to its adapter_config.json. */
function adapter(dir: string, edit: (c: Record<string, unknown>) => void = () => {}): string {
  return adapterFor(MODEL, 'tiny', dir, edit);
}

/** A valid rank-2 adapter on q_proj and v_proj for `model`, then `edit` applied to its adapter_config.json. */
function adapterFor(model: ModelConfig, name: string, dir: string, edit: (c: Record<string, unknown>) => void): string {
  const out = path.join(dir, 'adapter');
  saveAdapter(out, createAdapter(model, { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 1 }), name, model);
  const file = path.join(out, 'adapter_config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
  return out;
}

/** PEFT's catastrophic-backtracking pattern: exponential on a backtracking engine. */
const EVIL = '(.*.*.*.*.*.*.*.*.*.*)*X';
/** Exponential in the `regex` package as well (the PyTorch engine's matcher): the lookbehind fails last. */
const SLOW_IN_REGEX = '(?:[a-z_.0-9]|[a-z_.0-9]{2}|[a-z_.0-9]{3})+(?<!j)';

export const cases: BadInputCase[] = [
  {
    name: `target_modules "${EVIL}": matched in linear time (RE2), one error that it matches no module`,
    setup: (dir) => adapter(dir, (c) => (c.target_modules = EVIL)),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target_modules .* matches none of q_proj/ },
    deadlineMs: 1000,
  },
  {
    name: 'rank_pattern with a catastrophic key: read in linear time',
    setup: (dir) => adapter(dir, (c) => (c.rank_pattern = { [EVIL]: 4, '(a|aa)+$': 2 })),
    act: (_dir, a) => loadAdapter(a as string, MODEL).settings.rank,
    expect: { handled: (rank) => assert.equal(rank, 2) },
    deadlineMs: 1000,
  },
  {
    name: 'alpha_pattern with a backreference: refused, naming the field (RE2 has none)',
    setup: (dir) => adapter(dir, (c) => (c.alpha_pattern = { '(q)\\1_proj': 8 })),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: alpha_pattern key .* is not a regular expression this reader accepts \(RE2 syntax/ },
  },
  {
    name: 'rank_pattern with a rank of 1e9: refused',
    setup: (dir) => adapter(dir, (c) => (c.rank_pattern = { q_proj: 1e9 })),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: rank_pattern\["q_proj"\] must be a positive integer up to 65536, got 1000000000/ },
  },
  {
    name: 'r: 1e9: refused before any tensor is read',
    setup: (dir) => adapter(dir, (c) => (c.r = 1e9)),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: r must be a positive integer up to 65536, got 1000000000/ },
  },
  {
    name: 'a pattern of 100 000 characters: refused',
    setup: (dir) => adapter(dir, (c) => (c.target_modules = 'q_proj|'.repeat(15000) + 'v_proj')),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target_modules is a pattern of \d+ characters, more than 1024/ },
  },
  {
    name: 'adapter_model.safetensors is a FIFO: an error at once',
    setup: (dir) => {
      const a = adapter(dir);
      makeFifo(path.join(a, 'adapter_model.safetensors'));
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: cannot open: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: 'adapter_config.json is a link to a file elsewhere: not followed',
    setup: (dir) => {
      const a = adapter(dir);
      const elsewhere = path.join(dir, 'elsewhere.json');
      fs.renameSync(path.join(a, 'adapter_config.json'), elsewhere);
      fs.symlinkSync(elsewhere, path.join(a, 'adapter_config.json'));
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: cannot be read: it is a symbolic link/ },
  },
  {
    name: 'a pickle-only adapter (adapter_model.bin) is refused, not loaded (held: no pickle)',
    setup: (dir) => {
      const a = adapter(dir);
      fs.rmSync(path.join(a, 'adapter_model.safetensors'));
      fs.writeFileSync(path.join(a, 'adapter_model.bin'), 'cos\nsystem\n(S"touch /tmp/pwned"\ntR.');
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: is missing \(only adapter_model\.bin, a pickle, which is not read/ },
  },
  {
    name: 'target_modules naming a module the model lacks (held)',
    setup: (dir) => adapter(dir, (c) => (c.target_modules = ['q_proj', 'lm_head'])),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target module "lm_head" does not exist in a Qwen2 or Llama model/ },
  },
  {
    name: 'layers_to_transform naming layer 10^6 (held)',
    setup: (dir) => adapter(dir, (c) => (c.layers_to_transform = [0, 1_000_000])),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: layers_to_transform names layer 1000000, but the model has 2 layers/ },
  },
  {
    name: 'a safetensors header declaring 10^15 bytes (held)',
    setup: (dir) => {
      const a = adapter(dir);
      const f = path.join(a, 'adapter_model.safetensors');
      const buf = fs.readFileSync(f);
      buf.writeBigUInt64LE(10n ** 15n, 0);
      fs.writeFileSync(f, buf);
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: declares a 1000000000000000-byte header, more than the 104857600-byte limit/ },
  },
  {
    name: 'a tensor whose offsets run past the end of the file (held)',
    setup: (dir) => {
      const a = adapter(dir);
      const f = path.join(a, 'adapter_model.safetensors');
      fs.truncateSync(f, fs.statSync(f).size - 64);
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: .*(beyond|past|outside|exceed|end)/i },
  },
  {
    name: 'an adapter whose tensors do not fit the model (held)',
    setup: (dir) => {
      const other = parseConfig(randomConfig({ numLayers: 2, hiddenSize: 16, numHeads: 2, numKvHeads: 1 }), 'config.json');
      const out = path.join(dir, 'adapter');
      saveAdapter(out, createAdapter(other, { rank: 2, alpha: 4, targets: ['q_proj'], seed: 1 }), 'other', other);
      return out;
    },
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_model\.safetensors: .* has shape \[2, 16\], but rank 2 on this model needs \[2, 32\]/ },
  },
  ...withTorchEngine(torchCases()),
];

/**
 * Loading an adapter on the PyTorch engine (the trainer's loadPolicy: a `load_policy` request to the
 * engine's process, which reads the folder itself with PEFT's types) for the sandbox model.
 */
function torchCases(): BadInputCase[] {
  const SANDBOX = readConfig(sandboxModelDir());
  /** A valid adapter for the sandbox model, then `edit` applied to its adapter_config.json. */
  const sandboxAdapter = (dir: string, edit: (c: Record<string, unknown>) => void = () => {}): string => adapterFor(SANDBOX, 'sandbox', dir, edit);
  /** Parameters of a rank-2 adapter on q_proj and v_proj: A [2, in] and B [out, 2] per module and layer. */
  const rank2QV = SANDBOX.numLayers * (2 * (SANDBOX.hiddenSize + SANDBOX.numHeads * SANDBOX.headDim) + 2 * (SANDBOX.hiddenSize + SANDBOX.numKvHeads * SANDBOX.headDim));
  let n = 0;
  const load = async (a: unknown) => (await sandboxEngine()).loadPolicy(`hostile${n++}`, a as string, 'lora');
  const torch = (c: BadInputCase): BadInputCase => ({
    deadlineMs: TORCH_DEADLINE_MS,
    ...c,
    name: `PyTorch engine: ${c.name}`,
    setup: async (dir) => {
      await sandboxEngine();
      return c.setup ? c.setup(dir) : undefined;
    },
    unchanged: c.unchanged ?? ((_dir, a) => (typeof a === 'string' ? [path.join(a, 'adapter_config.json'), path.join(a, 'adapter_model.safetensors')] : [])),
  });
  return [
    torch({
      name: `target_modules "${EVIL}" (catastrophic in Python's re): the regex package fails it at once, one error`,
      setup: (dir) => sandboxAdapter(dir, (c) => (c.target_modules = EVIL)),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: target_modules .* matches no linear layer of this model/ },
    }),
    torch({
      name: `target_modules "${SLOW_IN_REGEX}" (exponential in the regex package too): one error, in bounded time`,
      setup: (dir) => sandboxAdapter(dir, (c) => (c.target_modules = SLOW_IN_REGEX)),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: its regular expressions \(target_modules, rank_pattern, alpha_pattern\) take more than 2 s to match this model's \d+ module names/ },
    }),
    torch({
      name: 'rank_pattern with a catastrophic key: one error, in bounded time',
      setup: (dir) => sandboxAdapter(dir, (c) => (c.rank_pattern = { [SLOW_IN_REGEX]: 4 })),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: its regular expressions .* take more than 2 s/ },
    }),
    torch({
      name: 'a regular-expression target_modules that is fine is resolved to exact module names and loads',
      setup: (dir) => sandboxAdapter(dir, (c) => (c.target_modules = '.*\\.(q_proj|v_proj)')),
      act: async (_dir, a) => {
        const e = await sandboxEngine();
        await e.loadPolicy('regex-targets', a as string, 'lora');
        return e.policyParameters('regex-targets');
      },
      expect: { handled: (p) => assert.equal(p, rank2QV) },
    }),
    torch({
      name: 'r: 1e9: refused before PEFT allocates anything',
      setup: (dir) => sandboxAdapter(dir, (c) => (c.r = 1e9)),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: r must be a positive integer up to 65536, got 1000000000/ },
    }),
    torch({
      name: 'r: 4096 in adapter_config.json over rank-2 tensors: refused by the header, before PEFT allocates',
      setup: (dir) => sandboxAdapter(dir, (c) => (c.r = 4096)),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_model\.safetensors: \S+lora_A\.weight has shape \[2, \d+\], but rank 4096 on this model needs \[4096, \d+\]/ },
    }),
    torch({
      name: 'a pickle-only adapter (adapter_model.bin whose unpickling would run a command): refused, never unpickled (held)',
      setup: (dir) => {
        const a = sandboxAdapter(dir);
        fs.rmSync(path.join(a, 'adapter_model.safetensors'));
        fs.writeFileSync(path.join(a, 'adapter_model.bin'), pickleThatTouches(path.join(dir, 'ran')));
        return a;
      },
      act: async (dir, a) => {
        try {
          return await load(a);
        } finally {
          assert.ok(!fs.existsSync(path.join(dir, 'ran')), 'the pickle was not loaded');
        }
      },
      expect: { error: /adapter\/adapter_model\.bin: holds the adapter as a pickle, which can run code when loaded, and is not loaded/ },
      unchanged: (_dir, a) => [path.join(a as string, 'adapter_config.json'), path.join(a as string, 'adapter_model.bin')],
    }),
    torch({
      name: 'adapter_config.json is a FIFO: an error at once',
      setup: (dir) => {
        const a = sandboxAdapter(dir);
        makeFifo(path.join(a, 'adapter_config.json'));
        return a;
      },
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: is a FIFO \(named pipe\), not a regular file/ },
      unchanged: () => [],
    }),
    torch({
      name: 'adapter_model.safetensors is a link to a file elsewhere: not followed',
      setup: (dir) => {
        const a = sandboxAdapter(dir);
        fs.renameSync(path.join(a, 'adapter_model.safetensors'), path.join(dir, 'elsewhere.safetensors'));
        fs.symlinkSync(path.join(dir, 'elsewhere.safetensors'), path.join(a, 'adapter_model.safetensors'));
        return a;
      },
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_model\.safetensors: is a symbolic link, which is not followed/ },
      unchanged: () => [],
    }),
    torch({
      name: 'DoRA (use_dora: true), which the engine does not run: refused rather than loaded as plain LoRA',
      setup: (dir) => sandboxAdapter(dir, (c) => (c.use_dora = true)),
      act: (_dir, a) => load(a),
      expect: { error: /adapter\/adapter_config\.json: DoRA adapters \(use_dora: true\) are not supported/ },
    }),
    torch({
      name: 'after every refusal no hostile adapter is a policy and a good adapter loads; then the engine closes',
      setup: (dir) => sandboxAdapter(dir),
      act: async (_dir, a) => {
        const e = await sandboxEngine();
        try {
          const refused = await Promise.all(Array.from({ length: n }, (_, i) => e.fingerprint(`hostile${i}`).then(() => `hostile${i}`, () => null)));
          await e.loadPolicy('good', a as string, 'lora');
          return { loaded: refused.filter(Boolean), parameters: e.policyParameters('good') };
        } finally {
          await closeEngines();
        }
      },
      expect: { handled: (r) => assert.deepEqual(r, { loaded: [], parameters: rank2QV }) },
    }),
  ];
}
