/**
 * Model directories (a hub download, a colleague's checkpoint, a run's saved full model): config.json,
 * weights, tokenizer and chat template. Finding 4 (dimensions before allocation, template rendering
 * time) and what held (pickles, shards outside the folder, unknown architectures and remote code).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { writeRandomCheckpoint, writeTinyTokenizer } from '../helpers/random-checkpoint';
import { TorchEngine } from '../../extension/engine/torch/torch-engine';
import { makeFifo, type BadInputCase } from './harness';
import { closeEngines, engineProcess, pickleThatTouches, sandboxModelCopy, TORCH_DEADLINE_MS, torchEnginePresent, withTorchEngine } from './torch-engine';

function model(dir: string, patch: Record<string, unknown> = {}): string {
  const m = path.join(dir, 'model');
  writeRandomCheckpoint(m, { numLayers: 1 });
  const file = path.join(m, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
  return m;
}

/** A tokenizer folder whose chat template is `template`. */
function withTemplate(dir: string, template: string): string {
  const m = path.join(dir, 'tok');
  fs.mkdirSync(m);
  writeTinyTokenizer(m, 16);
  const file = path.join(m, 'tokenizer_config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), chat_template: template }));
  return m;
}

const chat = (dir: unknown) => TextTokenizer.load(dir as string).encodeChat([{ role: 'user', content: 'w7 w8' }], true);
const templateError = (what: string) => new RegExp(`tok/tokenizer_config\\.json: chat_template: ${what}`);

/** Every TypeScript file of the extension and the panels, for the static checks below. */
function sources(): { file: string; text: string }[] {
  const root = path.resolve(__dirname, '..', '..');
  const out: { file: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push({ file: path.relative(root, p), text: fs.readFileSync(p, 'utf8') });
    }
  };
  walk(path.join(root, 'extension'));
  walk(path.join(root, 'webview'));
  return out;
}

export const cases: BadInputCase[] = [
  {
    name: 'no code from input: nothing in the extension or the panels calls eval, Function, vm or a shell (held)',
    act: () =>
      sources().flatMap(({ file, text }) =>
        [/(?<![.\w])eval\(/, /new Function\(/, /['"]node:vm['"]|['"]vm['"]/, /shell:\s*true/, /\bexecSync\(|(?<![.\w])exec\(/]
          .filter((re) => re.test(text.replace(/^\s*(\/\/|\*).*$/gm, '')))
          .map((re) => `${file}: ${re}`),
      ),
    expect: { handled: (found) => assert.deepEqual(found, []) },
  },
  {
    name: 'num_hidden_layers: 1e9 is refused before anything is planned or allocated',
    setup: (dir) => model(dir, { num_hidden_layers: 1e9 }),
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/config\.json: num_hidden_layers is 1000000000, more than 1024/ },
    deadlineMs: 1000,
    heapMb: 16,
  },
  {
    name: 'a config describing 1000 layers of a 7B shape over a small weights file: refused by the file\'s headers, before allocating',
    setup: (dir) => model(dir, { num_hidden_layers: 1000, hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_key_value_heads: 32 }),
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/model\.safetensors: tensor model\.embed_tokens\.weight has shape \[64, 32\], expected \[64, 4096\] from config\.json/ },
    deadlineMs: 1000,
    heapMb: 16,
  },
  {
    name: 'vocab_size 4 194 304 × hidden_size 65 536 (a 1 TB embedding): refused by the file\'s headers',
    setup: (dir) => model(dir, { vocab_size: 4_194_304, hidden_size: 65_536, num_attention_heads: 512, num_key_value_heads: 512 }),
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/model\.safetensors: tensor model\.embed_tokens\.weight has shape \[64, 32\], expected \[4194304, 65536\]/ },
    heapMb: 16,
  },
  {
    name: 'a chat template looping over range(10**9): one error naming the template, in milliseconds',
    setup: (dir) => withTemplate(dir, '{% for i in range(10**9) %}x{% endfor %}'),
    act: (_dir, m) => chat(m),
    expect: { error: templateError('range\\(\\) of 1000000000 numbers is more than 100000') },
    deadlineMs: 2000,
  },
  {
    name: 'a chat template with nested loops (10^10 iterations): stopped by the step bound',
    setup: (dir) => withTemplate(dir, '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'),
    act: (_dir, m) => chat(m),
    expect: { error: templateError('rendering took (more than 2000000 steps|longer than 2000 ms)') },
    // The renderer stops itself at 2 s; the case's bound is against "for ever", with room for a
    // machine at load 20 (where 2 M steps took 6.9 s of wall time).
    deadlineMs: 20_000,
  },
  {
    name: 'a chat template doubling a string: stopped at the string bound, not gigabytes',
    setup: (dir) => withTemplate(dir, "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"),
    act: (_dir, m) => chat(m),
    expect: { error: templateError('rendering built a string longer than 4194304 characters') },
    heapMb: 128,
  },
  {
    name: 'a chat template calling a macro recursively: an error, not a crash',
    setup: (dir) => withTemplate(dir, '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}'),
    act: (_dir, m) => chat(m),
    // Whichever bound stops it first (the time bound, on a loaded machine) is the clear error.
    expect: { error: /tok\/tokenizer_config\.json: chat_template(: rendering recursed too deeply| failed to render|: rendering took longer than 2000 ms)/ },
  },
  {
    name: 'a chat template of 1 MB: refused when the tokenizer loads',
    setup: (dir) => withTemplate(dir, 'x'.repeat(1024 * 1024)),
    act: (_dir, m) => TextTokenizer.load(m as string),
    expect: { error: /tok\/tokenizer_config\.json: chat_template cannot be used: the template is 1048576 characters, more than 262144/ },
  },
  {
    name: 'a chat template raising an exception: named as a template failure',
    setup: (dir) => withTemplate(dir, "{{ raise_exception('roles must alternate') }}"),
    act: (_dir, m) => chat(m),
    expect: { error: /tok\/tokenizer_config\.json: chat_template failed to render: roles must alternate/ },
  },
  {
    name: 'tokenizer.json is a FIFO: an error at once',
    setup: (dir) => {
      const m = withTemplate(dir, '');
      makeFifo(path.join(m, 'tokenizer.json'));
      return m;
    },
    act: (_dir, m) => TextTokenizer.load(m as string),
    expect: { error: /tok\/tokenizer\.json: cannot be read: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: 'config.json is a link to a file elsewhere: not followed',
    setup: (dir) => {
      const m = model(dir);
      fs.renameSync(path.join(m, 'config.json'), path.join(dir, 'elsewhere.json'));
      fs.symlinkSync(path.join(dir, 'elsewhere.json'), path.join(m, 'config.json'));
      return m;
    },
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/config\.json: cannot be read: it is a symbolic link/ },
  },
  {
    name: 'model.safetensors is a FIFO: an error at once',
    setup: (dir) => {
      const m = model(dir);
      makeFifo(path.join(m, 'model.safetensors'));
      return m;
    },
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\.safetensors: cannot open: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: 'a pickle-only checkpoint is named and refused (held: no pickle)',
    setup: (dir) => {
      const m = model(dir);
      fs.rmSync(path.join(m, 'model.safetensors'));
      fs.writeFileSync(path.join(m, 'pytorch_model.bin'), 'cos\nsystem\n(S"id"\ntR.');
      return m;
    },
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /has neither model\.safetensors nor model\.safetensors\.index\.json \(found pytorch_model\.bin: pickle checkpoints are not loaded/ },
  },
  {
    name: 'a shard index naming a file outside the folder (held)',
    setup: (dir) => {
      const m = model(dir);
      fs.writeFileSync(path.join(m, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': '../../etc/passwd' } }));
      return m;
    },
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\.safetensors\.index\.json: weight_map entry model\.norm\.weight names an invalid file/ },
  },
  {
    name: 'a model asking for remote code (auto_map, a custom architecture) is refused, nothing executed (held)',
    setup: (dir) => model(dir, { architectures: ['EvilForCausalLM'], model_type: 'evil', auto_map: { AutoModelForCausalLM: 'modeling_evil.EvilForCausalLM' } }),
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/config\.json: unsupported architecture EvilForCausalLM/ },
  },
  {
    name: 'rope_scaling of an unknown type (held)',
    setup: (dir) => model(dir, { rope_scaling: { type: 'yarn', factor: 4 } }),
    act: (_dir, m) => loadCheckpoint(m as string),
    expect: { error: /model\/config\.json: rope_scaling of type "yarn" is not supported/ },
  },
  ...withTorchEngine(torchCases()),
];

/** Opening a model directory on the PyTorch engine: the `open` request its process receives. */
function torchCases(): BadInputCase[] {
  const open = async (m: unknown) => (await engineProcess()).request('open', { model: m as string, device: 'cpu', dtype: 'float32' });
  const torch = (c: BadInputCase): BadInputCase => ({
    deadlineMs: TORCH_DEADLINE_MS,
    ...c,
    name: `PyTorch engine: ${c.name}`,
    setup: async (dir) => {
      await engineProcess();
      return c.setup ? c.setup(dir) : undefined;
    },
    unchanged: c.unchanged ?? ((_dir, m) => (typeof m === 'string' ? [path.join(m, 'config.json'), path.join(m, 'model.safetensors')] : [])),
  });
  return [
    torch({
      name: 'a checkpoint asking for remote code (auto_map and a modeling file that would write a marker): refused, nothing imported (held)',
      setup: (dir) => {
        const m = sandboxModelCopy(dir, { auto_map: { AutoModelForCausalLM: 'modeling_evil.EvilForCausalLM' } });
        fs.writeFileSync(path.join(m, 'modeling_evil.py'), `open(${JSON.stringify(path.join(dir, 'ran'))}, "w").write("x")\n`);
        return m;
      },
      act: async (dir, m) => {
        try {
          return await open(m);
        } finally {
          assert.ok(!fs.existsSync(path.join(dir, 'ran')), 'the modeling file was not run');
        }
      },
      expect: { error: /model\/config\.json: needs custom code \(AutoModelForCausalLM\); the engine loads with trust_remote_code=False/ },
    }),
    torch({
      name: 'a pickle-only checkpoint (pytorch_model.bin whose unpickling would run a command): refused, never unpickled (held)',
      setup: (dir) => {
        const m = sandboxModelCopy(dir);
        fs.rmSync(path.join(m, 'model.safetensors'));
        fs.writeFileSync(path.join(m, 'pytorch_model.bin'), pickleThatTouches(path.join(dir, 'ran')));
        return m;
      },
      act: async (dir, m) => {
        try {
          return await open(m);
        } finally {
          assert.ok(!fs.existsSync(path.join(dir, 'ran')), 'the pickle was not loaded');
        }
      },
      expect: { error: /model\/pytorch_model\.bin: holds the weights as a pickle, which can run code when loaded/ },
      unchanged: (_dir, m) => [path.join(m as string, 'config.json'), path.join(m as string, 'pytorch_model.bin')],
    }),
    torch({
      name: 'num_hidden_layers: 1e9 is refused before transformers builds anything',
      setup: (dir) => sandboxModelCopy(dir, { num_hidden_layers: 1e9 }),
      act: (_dir, m) => open(m),
      expect: { error: /model\/config\.json: num_hidden_layers is 1000000000, more than 1024, the largest this engine accepts/ },
    }),
    torch({
      name: 'a config describing 7B shapes over the small weights file: refused by the file\'s header, before allocating',
      setup: (dir) => sandboxModelCopy(dir, { num_hidden_layers: 32, hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128 }),
      act: (_dir, m) => open(m),
      expect: { error: /model\/model\.safetensors: tensor model\.embed_tokens\.weight has shape \[\d+, \d+\], expected \[\d+, 4096\] from config\.json/ },
    }),
    torch({
      name: 'a safetensors header claiming more data than the file holds: refused before reading',
      setup: (dir) => {
        const m = sandboxModelCopy(dir);
        const file = path.join(m, 'model.safetensors');
        const data = fs.readFileSync(file);
        fs.writeFileSync(file, data.subarray(0, data.length - 4096));
        return m;
      },
      act: (_dir, m) => open(m),
      expect: { error: /model\/model\.safetensors: tensor \S+ of shape \[[\d, ]+\] \(\w+\) claims bytes \d+\.\.\d+, but the file holds \d+ bytes of data/ },
    }),
    torch({
      name: 'config.json is a FIFO: an error at once, in the engine\'s process',
      setup: (dir) => {
        const m = sandboxModelCopy(dir);
        makeFifo(path.join(m, 'config.json'));
        return m;
      },
      act: (_dir, m) => open(m),
      expect: { error: /model\/config\.json: is a FIFO \(named pipe\), not a regular file/ },
      unchanged: () => [],
    }),
    torch({
      name: 'config.json is a FIFO: TorchEngine.open refuses it before starting a process',
      setup: (dir) => {
        const m = sandboxModelCopy(dir);
        makeFifo(path.join(m, 'config.json'));
        return m;
      },
      act: (_dir, m) => TorchEngine.open(m as string, { device: 'cpu', dtype: 'float32' }),
      expect: { error: /model\/config\.json: cannot be read: it is a FIFO/ },
      deadlineMs: 2000,
      unchanged: () => [],
    }),
    torch({
      name: 'model.safetensors is a link to weights elsewhere: not followed',
      setup: (dir) => {
        const m = sandboxModelCopy(dir);
        fs.renameSync(path.join(m, 'model.safetensors'), path.join(dir, 'elsewhere.safetensors'));
        fs.symlinkSync(path.join(dir, 'elsewhere.safetensors'), path.join(m, 'model.safetensors'));
        return m;
      },
      act: (_dir, m) => open(m),
      expect: { error: /model\/model\.safetensors: is a symbolic link, which is not followed/ },
    }),
    torch({
      name: 'a working folder (a run directory, a workspace) shipping torch.py and absp_torch/: the engine\'s Python imports neither',
      setup: (dir) => {
        const marker = path.join(dir, 'ran');
        const payload = `open(${JSON.stringify(marker)}, "a").write(__name__ + "\\n")\n`;
        const work = path.join(dir, 'work');
        fs.mkdirSync(path.join(work, 'absp_torch'), { recursive: true });
        for (const f of ['torch.py', 'transformers.py', 'peft.py', 'absp_torch/__init__.py', 'absp_torch/__main__.py']) fs.writeFileSync(path.join(work, f), payload);
        return work;
      },
      act: (dir, work) => {
        // The command line, as the editor starts it: in the run's or the config's folder.
        const cli = path.resolve(__dirname, '..', '..', 'bin', 'absp.js');
        const out = execFileSync(process.execPath, [cli, 'generate', '--engine', 'torch', '--model', 'builtin:sandbox', '--prompt', 'w1 w2', '--max-new-tokens', '2', '--json'], {
          cwd: work as string,
          encoding: 'utf8',
          env: { ...process.env, ABSP_TORCH_PYTHON: torchEnginePresent()!, ABSP_THREADS: '1' },
          timeout: 600_000,
        });
        const generated = Array.isArray((JSON.parse(out.trim().split('\n').pop()!) as { ids?: unknown }).ids);
        return { generated, ran: fs.existsSync(path.join(dir, 'ran')) ? fs.readFileSync(path.join(dir, 'ran'), 'utf8') : null };
      },
      expect: { handled: (r) => assert.deepEqual(r, { generated: true, ran: null }) },
      deadlineMs: 300_000,
      unchanged: () => [],
    }),
    torch({
      name: 'after every refusal the engine still opens a good model (nothing half-open), then closes',
      setup: (dir) => sandboxModelCopy(dir),
      act: async (_dir, m) => {
        try {
          return ((await open(m)).info as { vocabSize: number }).vocabSize;
        } finally {
          await closeEngines();
        }
      },
      expect: { handled: (v) => assert.ok(typeof v === 'number' && v > 0) },
    }),
  ];
}
