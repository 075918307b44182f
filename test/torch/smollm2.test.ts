/**
 * SmolLM2-135M-Instruct (converted by `absp models get smollm2`) in both engines: it loads in the
 * PyTorch engine and scores chat texts as the built-in engine does, and a LoRA adapter trained on it
 * by either engine (`absp sft`, `absp sft --engine torch`) gives the same log-probs in the other.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { OrtEngine } from '../../extension/engine/ort-engine';
import { TorchEngine } from '../../extension/engine/torch/torch-engine';
import { maxAbsDiff } from '../helpers/hf-reference';
import { tempDir } from '../helpers/random-checkpoint';
import { requireSmolLM2 } from '../helpers/smollm2';

const TEXTS = [
  [
    { role: 'user', content: 'What is the capital of France?' },
    { role: 'assistant', content: 'The capital of France is Paris.' },
  ],
  [
    { role: 'user', content: 'Convert 3.5 kg to pounds.' },
    { role: 'assistant', content: 'About 7.72 lb.' },
  ],
];

const SFT_LINES = [
  { messages: [{ role: 'user', content: 'Say hello.' }, { role: 'assistant', content: 'Hello there!' }] },
  { messages: [{ role: 'user', content: 'What is 2 + 2?' }, { role: 'assistant', content: '2 + 2 = 4.' }] },
  { messages: [{ role: 'user', content: 'Name a colour.' }, { role: 'assistant', content: 'Blue.' }] },
  { messages: [{ role: 'user', content: 'How do I kill a stuck process?' }, { role: 'assistant', content: 'Run `kill PID`.' }] },
];

describe('SmolLM2-135M-Instruct in the PyTorch engine, and adapters across the engines', function () {
  this.timeout(2_400_000);
  let dir = '';
  let python = '';
  let ort: OrtEngine;
  let torch: TorchEngine;
  let rows: number[][];

  before(async function () {
    ({ dir, python } = await requireSmolLM2(this));
    const tokenizer = TextTokenizer.load(dir);
    rows = TEXTS.map((c) => tokenizer.encode(tokenizer.applyChatTemplate(c, false), false));
    ort = OrtEngine.open(dir, { threads: 2 });
    torch = TorchEngine.open(dir, { python, device: 'cpu', dtype: 'float32', threads: 2 });
  });
  after(async () => {
    await ort?.close();
    await torch?.close();
  });

  it('loads in the PyTorch engine and gives the built-in engine\'s log-probs within 1e-4', async () => {
    const req = rows.map((ids) => ({ ids, policy: null }));
    const worst = maxAbsDiff(await torch.logprobs(req), await ort.logprobs(req));
    assert.ok(worst < 1e-4, `max |Δ log p| = ${worst}`);
  });

  it('a LoRA adapter trained by either engine gives the same log-probs in the other', async () => {
    const work = tempDir('absp-smol-sft-');
    const data = path.join(work, 'sft.jsonl');
    fs.writeFileSync(data, SFT_LINES.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const common = ['--model', dir, '--data', data, '--steps', '2', '--batch-size', '4', '--rank', '4', '--alpha', '8', '--targets', 'q_proj,v_proj,down_proj', '--lr', '0.01', '--seed', '3'];
    const byOrt = path.join(work, 'by-ort');
    const byTorch = path.join(work, 'by-torch');
    assert.equal(await main(['sft', ...common, '--out', byOrt]), 0);
    assert.equal(await main(['sft', ...common, '--out', byTorch, '--engine', 'torch', '--python', python, '--device', 'cpu', '--dtype', 'float32']), 0);
    const base = await ort.logprobs(rows.map((ids) => ({ ids, policy: null })));
    for (const [name, adapter] of [['by-ort', byOrt], ['by-torch', byTorch]]) {
      await ort.loadPolicy(name, adapter, 'lora');
      await torch.loadPolicy(name, adapter, 'lora');
      const req = rows.map((ids) => ({ ids, policy: name }));
      const inOrt = await ort.logprobs(req);
      const worst = maxAbsDiff(await torch.logprobs(req), inOrt);
      assert.ok(worst < 1e-4, `${name}: max |Δ log p| between the engines = ${worst}`);
      assert.ok(maxAbsDiff(inOrt, base) > 1e-3, `${name}: the trained adapter changes the model`);
    }
  });
});
