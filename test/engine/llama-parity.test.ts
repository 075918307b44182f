/**
 * The built-in engine's Llama against transformers' own LlamaForCausalLM (and PEFT for adapters):
 * random small checkpoints written by transformers, with and without rope scaling (llama3, linear),
 * tied and untied, with attention and MLP biases, with a head_dim of its own; log-probs within 1e-4
 * (float32 against float32), greedy continuations token for token, PEFT adapters by the same key
 * names as on Qwen2.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { loadAdapter } from '../../extension/engine/lora/adapter';
import { readConfig } from '../../extension/engine/model/model-config';
import { LanguageModel } from '../../extension/engine/runtime/language-model';
import { Rng } from '../../extension/util/rng';
import { HfJob, HfRun, hfReference, maxAbsDiff, transformersPython } from '../helpers/hf-reference';
import { tempDir } from '../helpers/random-checkpoint';
import { skipWithoutEnvironment } from '../helpers/project-python';

const LLAMA3 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 32 };

const CASES: { name: string; config: Record<string, unknown> }[] = [
  { name: 'untied, no rope scaling', config: {} },
  { name: 'tied, llama3 rope scaling (Llama 3.1)', config: { tie_word_embeddings: true, rope_scaling: LLAMA3, rope_theta: 500000.0 } },
  { name: 'untied, llama3 rope scaling, attention and MLP biases', config: { rope_scaling: LLAMA3, attention_bias: true, mlp_bias: true } },
  { name: 'tied, linear rope scaling, head_dim 16 (not hidden / heads)', config: { tie_word_embeddings: true, rope_scaling: { rope_type: 'linear', factor: 4.0 }, head_dim: 16 } },
];

describe('Llama: the built-in engine against transformers', function () {
  this.timeout(900_000);
  const { python, reason } = transformersPython();
  const root = tempDir('absp-llama-');
  const rng = new Rng(5);
  const rows = [40, 17, 64, 3].map((n) => Array.from({ length: n }, () => rng.int(96)));
  const prompts = [rows[0].slice(0, 6), rows[2].slice(0, 11), [5]];
  const caseDir = (i: number) => path.join(root, `case-${i}`);
  const peftBase = path.join(root, 'peft-base');
  const adapterDir = path.join(root, 'peft-adapter');
  const yarn = path.join(root, 'yarn');
  let refs: HfRun[] = [];

  before(function () {
    if (!python) skipWithoutEnvironment(this, reason);
    const jobs: HfJob[] = [
      ...CASES.flatMap((c, i): HfJob[] => [
        { op: 'make', out: caseDir(i), seed: 10 + i, config: c.config },
        { op: 'run', model: caseDir(i), rows, greedy: prompts, max_new_tokens: 12, eos: [2], pad: 0 },
      ]),
      { op: 'make', out: peftBase, seed: 21, config: { rope_scaling: LLAMA3, attention_bias: true } },
      { op: 'adapter', model: peftBase, out: adapterDir, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: 4, alpha: 8, seed: 3 },
      { op: 'run', model: peftBase, rows, adapter: adapterDir },
      { op: 'run', model: peftBase, rows },
      { op: 'make', out: yarn, seed: 1, config: { rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32 } } },
    ];
    const results = hfReference(python!, jobs);
    refs = jobs.map((j, k) => (j.op === 'run' ? (results[k] as HfRun) : null)).filter((x): x is HfRun => x !== null);
  });

  CASES.forEach((c, i) => {
    it(`${c.name}: log-probs within 1e-4 and the same greedy tokens`, async () => {
      const config = readConfig(caseDir(i));
      assert.equal(config.architecture, 'llama');
      const lm = LanguageModel.load(caseDir(i), { threads: 2 });
      try {
        const ours = await lm.score(rows.map((ids) => ({ ids, adapter: -1 })));
        const worst = maxAbsDiff(ours, refs[i].logprobs);
        assert.ok(worst < 1e-4, `max |Δ log p| = ${worst}`);
        const gens = await lm.generate(prompts.map((prompt) => ({ prompt, adapter: -1 })), [], { maxNewTokens: 12, temperature: 0, topP: 1, stopTokens: [2] });
        assert.deepEqual(gens.map((g) => g.tokens), refs[i].greedy);
      } finally {
        await lm.dispose();
      }
    });
  });

  it("a PEFT adapter on a Llama (all seven targets, the key names PEFT writes) gives PeftModel's log-probs", async () => {
    const [withAdapter, base] = refs.slice(CASES.length);
    const lm = LanguageModel.load(peftBase, { threads: 2 });
    try {
      const adapter = loadAdapter(adapterDir, lm.config);
      const ours = await lm.score(rows.map((ids) => ({ ids, adapter: 0 })), [adapter]);
      const worst = maxAbsDiff(ours, withAdapter.logprobs);
      assert.ok(worst < 1e-4, `max |Δ log p| = ${worst}`);
      assert.ok(maxAbsDiff(withAdapter.logprobs, base.logprobs) > 1e-2, 'the adapter changes the model');
    } finally {
      await lm.dispose();
    }
  });

  it('refuses a rope scaling it does not implement, naming the file', () => {
    assert.throws(() => readConfig(yarn), (e: Error) => e.message.startsWith(`${path.join(yarn, 'config.json')}: rope_`) && /"yarn" is not supported \(supported: default, linear, llama3\)/.test(e.message));
  });
});
