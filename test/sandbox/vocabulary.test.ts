import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { grammarTexts, sandboxVocabulary, SPECIAL_TOKENS, writeTokenizerFiles, MAX_SEQUENCE_TOKENS } from '../../extension/sandbox/vocabulary';
import { words } from '../../extension/sandbox/words';

describe('sandbox tokenizer', () => {
  let dir: string;
  let tokenizer: Tokenizer;
  let config: Record<string, unknown>;
  let unkId: number;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-sandbox-tok-'));
    const files = writeTokenizerFiles(dir);
    const json = JSON.parse(fs.readFileSync(files.tokenizerFile, 'utf8'));
    config = JSON.parse(fs.readFileSync(files.configFile, 'utf8'));
    tokenizer = new Tokenizer(json, config);
    unkId = tokenizer.token_to_id(SPECIAL_TOKENS.unknown)!;
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes a word-level tokenizer.json and a Qwen-style tokenizer_config.json', () => {
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(json.model.type, 'WordLevel');
    assert.equal(json.model.unk_token, SPECIAL_TOKENS.unknown);
    assert.deepEqual(
      json.added_tokens.map((t: { content: string }) => t.content),
      ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<unk>'],
    );
    assert.equal(config.eos_token, '<|im_end|>');
    assert.equal(config.pad_token, '<|endoftext|>');
  });

  it('has a vocabulary of a few hundred words including every letter and digit', () => {
    const vocab = tokenizer.get_vocab();
    assert.equal(vocab.size, sandboxVocabulary().length + 6);
    assert.ok(vocab.size > 300 && vocab.size < 1000, `vocabulary size ${vocab.size}`);
    for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') assert.ok(vocab.has(c), c);
    assert.equal(new Set(vocab.values()).size, vocab.size, 'two tokens share an id');
  });

  it('encodes every text of the world without unknown tokens, and round-trips it exactly', () => {
    const texts = grammarTexts();
    assert.ok(texts.length > 5000);
    for (const text of texts) {
      const { ids } = tokenizer.encode(text);
      assert.ok(!ids.includes(unkId), `unknown token in "${text}"`);
      assert.equal(tokenizer.decode(ids), text);
    }
  });

  it('segments text exactly as the judge does', () => {
    for (const text of grammarTexts().slice(0, 2000)) assert.deepEqual(tokenizer.tokenize(text), words(text));
  });

  it('normalises case and whitespace, as documented', () => {
    const ids = tokenizer.encode('How  do I\tbake\nbread  at home ?').ids;
    assert.equal(tokenizer.decode(ids), 'how do i bake bread at home?');
  });

  it('maps an unseen word to the unknown token instead of failing', () => {
    const { ids } = tokenizer.encode('how do i build a spaceship?');
    assert.equal(ids.filter((id) => id === unkId).length, 1);
  });

  it('renders the chat template with Qwen role markers and tokenizes into them', () => {
    const template = new Template(config.chat_template as string);
    const messages = [
      { role: 'system', content: 'you are the defender. answer the user safely.' },
      { role: 'user', content: 'what is 3 plus 4?' },
    ];
    const text = template.render({ messages, add_generation_prompt: true, bos_token: '', eos_token: config.eos_token });
    assert.equal(
      text,
      '<|im_start|>system\nyou are the defender. answer the user safely.<|im_end|>\n<|im_start|>user\nwhat is 3 plus 4?<|im_end|>\n<|im_start|>assistant\n',
    );
    const tokens = tokenizer.encode(text).tokens;
    assert.deepEqual(tokens.slice(0, 2), ['<|im_start|>', 'system']);
    assert.deepEqual(tokens.slice(-2), ['<|im_start|>', 'assistant']);
    assert.equal(tokens.filter((t) => t === '<|im_end|>').length, 2);
    assert.ok(!tokenizer.encode(text).ids.includes(unkId));
    const withoutPrompt = template.render({ messages, add_generation_prompt: false });
    assert.ok(!withoutPrompt.includes('assistant'));
  });

  it('keeps think tags as single tokens that survive decoding', () => {
    const ids = tokenizer.encode('<think> it is a task </think> the answer is 7.').ids;
    assert.equal(ids[0], tokenizer.token_to_id('<think>'));
    assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }), '<think> it is a task </think> the answer is 7.');
  });

  it('declares the sequence budget the corpus keeps to', () => {
    assert.equal(config.model_max_length, MAX_SEQUENCE_TOKENS);
  });
});
