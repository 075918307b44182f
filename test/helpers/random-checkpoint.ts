/** Builds small random Hugging Face Qwen2 checkpoints for tests (no model hub here). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectedWeights } from '../../extension/engine/model/checkpoint';
import { parseConfig } from '../../extension/engine/model/model-config';
import { TensorToWrite, encodeSafetensors, f32ToBf16, f32ToF16 } from '../../extension/engine/model/safetensors';
import { Rng } from '../../extension/util/rng';

export interface RandomCheckpointOptions {
  vocabSize?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  tie?: boolean;
  dtype?: 'F32' | 'F16' | 'BF16';
  shards?: number;
  seed?: number;
  std?: number;
  ropeTheta?: number;
}

export { tempDir } from './temp-dirs';

export function randomConfig(o: RandomCheckpointOptions = {}): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: o.vocabSize ?? 64,
    hidden_size: o.hiddenSize ?? 32,
    intermediate_size: o.intermediateSize ?? 48,
    num_hidden_layers: o.numLayers ?? 2,
    num_attention_heads: o.numHeads ?? 4,
    num_key_value_heads: o.numKvHeads ?? 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: o.ropeTheta ?? 10000,
    tie_word_embeddings: o.tie ?? false,
    hidden_act: 'silu',
    torch_dtype: 'float32',
    bos_token_id: 1,
    eos_token_id: 2,
    use_sliding_window: false,
  };
}

/** Writes config.json and random weights (norm weights near 1, others normal·std) into `dir`. */
export function writeRandomCheckpoint(dir: string, o: RandomCheckpointOptions = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const raw = randomConfig(o);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  const config = parseConfig(raw, 'config.json');
  const rng = new Rng(o.seed ?? 1234);
  const std = o.std ?? 0.2;
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of expectedWeights(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith('norm.weight');
    for (let i = 0; i < n; i++) data[i] = isNorm ? 1 + 0.1 * rng.normal() : std * rng.normal();
    const dtype = o.dtype ?? 'F32';
    tensors[name] = { dtype, shape, data: dtype === 'F32' ? data : dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data) };
  }
  const shards = o.shards ?? 1;
  if (shards <= 1) {
    fs.writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  } else {
    const names = Object.keys(tensors).sort();
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part: Record<string, TensorToWrite> = {};
      names.filter((_, i) => i % shards === s).forEach((n) => {
        part[n] = tensors[n];
        weightMap[n] = file;
      });
      fs.writeFileSync(path.join(dir, file), encodeSafetensors(part, { format: 'pt' }));
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
  }
  return dir;
}

/**
 * A word-level tokenizer for a random checkpoint: the chat markers plus words `w3`…, so tests can
 * exercise the text and chat-template paths of any vocabulary size.
 */
export function writeTinyTokenizer(dir: string, vocabSize: number): void {
  const special = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const roles = ['system', 'user', 'assistant'];
  const vocab: Record<string, number> = {};
  special.forEach((t, i) => (vocab[t] = i));
  roles.forEach((t, i) => (vocab[t] = special.length + i));
  for (let id = special.length + roles.length; id < vocabSize; id++) vocab[`w${id}`] = id;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<|endoftext|>' },
  };
  const config = {
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    chat_template:
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
}

/** A small random Qwen2 model that speaks the sandbox's vocabulary (for trainer mechanics tests). */
export function writeTinySandboxModel(dir: string, seed = 7): string {
  // Required lazily so tests that do not need the sandbox do not load its grammar.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tok = require('../../extension/sandbox/vocabulary') as typeof import('../../extension/sandbox/vocabulary');
  fs.mkdirSync(dir, { recursive: true });
  tok.writeTokenizerFiles(dir);
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: { id: number }[] };
  const size = Math.max(...Object.values(vocab.model.vocab), ...vocab.added_tokens.map((t) => t.id)) + 1;
  writeRandomCheckpoint(dir, { vocabSize: size, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 4, numKvHeads: 2, seed, tie: true });
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const imEnd = vocab.added_tokens.find((t) => (t as { content?: string }).content === '<|im_end|>')?.id ?? 2;
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, eos_token_id: imEnd, max_position_embeddings: 160 }, null, 2));
  return dir;
}
