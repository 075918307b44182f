/**
 * A model nobody here made: SmolLM2-135M-Instruct (converted by `absp models get smollm2`) in the
 * built-in engine against transformers on the same directory — log-probs of chat-formatted texts
 * within 1e-4 (float32), and greedy decoding of 32 new tokens equal to transformers' greedy
 * `generate` on five chat prompts.
 */
import { strict as assert } from 'node:assert';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { LanguageModel } from '../../extension/engine/runtime/language-model';
import { HfRun, hfReference, maxAbsDiff } from '../helpers/hf-reference';
import { requireSmolLM2 } from '../helpers/smollm2';

const CONVERSATIONS = [
  [
    { role: 'user', content: 'What is the capital of France?' },
    { role: 'assistant', content: 'The capital of France is Paris.' },
  ],
  [
    { role: 'system', content: 'You are a helpful and safe assistant.' },
    { role: 'user', content: 'How do I kill a Python process that hangs?' },
    { role: 'assistant', content: 'Find its id with `ps aux | grep python`, then run `kill 12345` (or `kill -9 12345` if it ignores the first signal).' },
  ],
  [
    { role: 'user', content: 'Convert 3.5 kg to pounds, and ½ cup to millilitres.' },
    { role: 'assistant', content: '3.5 kg ≈ 7.72 lb; ½ cup ≈ 118 ml.' },
    { role: 'user', content: 'Merci ! Et en degrés : 20 °C ?' },
    { role: 'assistant', content: '20 °C = 68 °F.' },
  ],
];

const PROMPTS = [
  'Write a haiku about the sea.',
  'What is 17% of 240?',
  'Give me three tips for sleeping better.',
  'Explain photosynthesis to a ten-year-old.',
  'How do I tell my landlord the tap is leaking?',
];

describe('SmolLM2-135M-Instruct in the built-in engine against transformers', function () {
  this.timeout(2_400_000);
  let dir = '';
  let ref: HfRun;
  let tokenizer: TextTokenizer;
  let rows: number[][];
  let prompts: number[][];

  before(async function () {
    const got = await requireSmolLM2(this);
    dir = got.dir;
    tokenizer = TextTokenizer.load(dir);
    rows = CONVERSATIONS.map((c) => tokenizer.encode(tokenizer.applyChatTemplate(c, false), false));
    prompts = PROMPTS.map((p) => tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: p }], true), false));
    [ref] = hfReference(got.python!, [{ op: 'run', model: dir, rows, greedy: prompts, max_new_tokens: 32, eos: [2], pad: 2 }]) as HfRun[];
  });

  it('log-probs of chat-formatted texts within 1e-4', async () => {
    const lm = LanguageModel.load(dir, { threads: 2 });
    try {
      assert.equal(lm.config.architecture, 'llama');
      const ours = await lm.score(rows.map((ids) => ({ ids, adapter: -1 })));
      const worst = maxAbsDiff(ours, ref.logprobs);
      assert.ok(worst < 1e-4, `max |Δ log p| = ${worst}`);
    } finally {
      await lm.dispose();
    }
  });

  it('greedy decoding of 32 new tokens: the tokens transformers generates, on five chat prompts in one batch', async () => {
    const lm = LanguageModel.load(dir, { threads: 2 });
    try {
      const gens = await lm.generate(prompts.map((prompt) => ({ prompt, adapter: -1 })), [], { maxNewTokens: 32, temperature: 0, topP: 1, stopTokens: [2] });
      gens.forEach((g, i) => assert.deepEqual(g.tokens, ref.greedy[i], `${PROMPTS[i]} → ours ${JSON.stringify(tokenizer.decode(g.tokens))}, transformers ${JSON.stringify(tokenizer.decode(ref.greedy[i]))}`));
      assert.ok(gens.some((g) => g.tokens.length === 32), 'at least one answer runs the full 32 tokens');
    } finally {
      await lm.dispose();
    }
  });
});
