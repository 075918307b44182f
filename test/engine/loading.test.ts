/** Loading Hugging Face checkpoints and PEFT adapters, and the clear errors bad files get. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint } from '../../extension/engine/model/checkpoint';
import { SafetensorsFile, encodeSafetensors } from '../../extension/engine/model/safetensors';
import { createAdapter, loadAdapter, saveAdapter, peftKey } from '../../extension/engine/lora/adapter';
import { LanguageModel } from '../../extension/engine/runtime/language-model';
import { parseConfig, ropeInverseFrequencies } from '../../extension/engine/model/model-config';
import { tempDir, writeRandomCheckpoint, randomConfig } from '../helpers/random-checkpoint';

function headerOnly(header: object, dataBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

describe('checkpoint loading', () => {
  it('reads F32, F16 and BF16 weights to the same values within their precision', () => {
    const f32 = loadCheckpoint(writeRandomCheckpoint(tempDir(), { dtype: 'F32', seed: 5 }));
    const f16 = loadCheckpoint(writeRandomCheckpoint(tempDir(), { dtype: 'F16', seed: 5 }));
    const bf16 = loadCheckpoint(writeRandomCheckpoint(tempDir(), { dtype: 'BF16', seed: 5 }));
    for (const [name, w] of f32.weights) {
      const a = f16.weights.get(name)!.data;
      const b = bf16.weights.get(name)!.data;
      for (let i = 0; i < w.data.length; i++) {
        assert.ok(Math.abs(a[i] - w.data[i]) <= Math.abs(w.data[i]) * 2 ** -11 + 1e-7, `${name}[${i}] f16`);
        assert.ok(Math.abs(b[i] - w.data[i]) <= Math.abs(w.data[i]) * 2 ** -8 + 1e-7, `${name}[${i}] bf16`);
      }
    }
  });

  it('reads sharded checkpoints through model.safetensors.index.json', () => {
    const one = loadCheckpoint(writeRandomCheckpoint(tempDir(), { seed: 9 }));
    const sharded = loadCheckpoint(writeRandomCheckpoint(tempDir(), { seed: 9, shards: 3 }));
    assert.equal(sharded.weights.size, one.weights.size);
    for (const [name, w] of one.weights) assert.deepEqual(sharded.weights.get(name)!.data, w.data);
  });

  it('supports tied embeddings (no lm_head.weight)', async () => {
    const dir = writeRandomCheckpoint(tempDir(), { tie: true });
    const ckpt = loadCheckpoint(dir);
    assert.ok(!ckpt.weights.has('lm_head.weight'));
    const lm = LanguageModel.load(dir, { threads: 1 });
    const [lp] = await lm.score([{ ids: [1, 2, 3], adapter: -1 }]);
    assert.equal(lp.length, 3);
    assert.ok(lp.slice(1).every((x) => x !== null && x < 0));
    await lm.dispose();
  });

  it('reads a Llama description in both spellings transformers writes: rope_theta + rope_scaling, and rope_parameters', () => {
    const llama = { ...randomConfig(), model_type: 'llama', architectures: ['LlamaForCausalLM'], attention_bias: true, mlp_bias: false, head_dim: 16 };
    delete (llama as Record<string, unknown>).rope_theta;
    const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const old = parseConfig({ ...llama, rope_theta: 500000, rope_scaling: { type: 'llama3', ...scaling } }, 'old');
    const v5 = parseConfig({ ...llama, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...scaling } }, 'v5');
    assert.equal(old.architecture, 'llama');
    assert.deepEqual(old.biased, ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    assert.equal(old.headDim, 16);
    assert.equal(v5.ropeTheta, 500000);
    assert.deepEqual(ropeInverseFrequencies(v5), ropeInverseFrequencies(old));
    const plain = parseConfig({ ...llama, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }, 'plain');
    assert.equal(plain.ropeScaling, null);
    // Short wavelengths are kept, long ones slowed by the factor.
    const [fast, ...rest] = ropeInverseFrequencies(plain);
    assert.equal(ropeInverseFrequencies(v5)[0], fast);
    assert.ok(Math.abs(ropeInverseFrequencies(v5)[7] - rest[6] / 8) < 1e-15);
    assert.deepEqual(parseConfig({ ...llama, mlp_bias: true, attention_bias: false }, 'mlp').biased, ['gate_proj', 'up_proj', 'down_proj']);
  });

  describe('bad model directories', () => {
    it('a missing directory and a missing config.json', () => {
      assert.throws(() => loadCheckpoint('/nonexistent/model'), /\/nonexistent\/model: model directory does not exist/);
      const dir = tempDir();
      assert.throws(() => loadCheckpoint(dir), new RegExp(`${dir}/config.json: is missing`));
    });

    it('malformed config.json', () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "qwen2", ');
      assert.throws(() => loadCheckpoint(dir), /config\.json: is not valid JSON/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), hidden_size: -3 }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: hidden_size must be a positive integer/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), num_key_value_heads: 3 }));
      assert.throws(() => loadCheckpoint(dir), /not a multiple of num_key_value_heads/);
    });

    it('an unsupported architecture, or Llama settings it cannot follow', () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: unsupported architecture GPT2LMHeadModel \(model_type "gpt2"\); supported: Qwen2ForCausalLM \(model_type "qwen2"\), LlamaForCausalLM \(model_type "llama"\)/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), model_type: 'llama', architectures: ['Qwen2ForCausalLM'] }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: unsupported architecture Qwen2ForCausalLM \(model_type "llama"\)/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), model_type: 'llama', architectures: ['LlamaForCausalLM'], attention_bias: 'yes' }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: attention_bias must be true or false, got "yes"/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), model_type: 'llama', architectures: ['LlamaForCausalLM'], rope_scaling: { rope_type: 'llama3', factor: 8 } }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: rope_scaling\.low_freq_factor must be a positive number, got undefined/);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...randomConfig(), model_type: 'llama', architectures: ['LlamaForCausalLM'], rope_parameters: { rope_type: 'dynamic', factor: 2, rope_theta: 1e4 } }));
      assert.throws(() => loadCheckpoint(dir), /config\.json: rope_parameters of type "dynamic" is not supported \(supported: default, linear, llama3\)/);
    });

    it('pickle checkpoints are named and refused', () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(randomConfig()));
      fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'not loaded');
      assert.throws(() => loadCheckpoint(dir), /pytorch_model\.bin: pickle checkpoints are not loaded/);
    });

    it('a truncated safetensors header', () => {
      const dir = writeRandomCheckpoint(tempDir());
      const file = path.join(dir, 'model.safetensors');
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
      assert.throws(() => loadCheckpoint(dir), /model\.safetensors: header is truncated/);
      fs.writeFileSync(file, Buffer.alloc(5));
      assert.throws(() => loadCheckpoint(dir), /too short to hold a safetensors header/);
    });

    it('a header that claims to be huge is refused before allocating it', () => {
      const file = path.join(tempDir(), 'x.safetensors');
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(50n * 1024n ** 3n, 0);
      fs.writeFileSync(file, b);
      assert.throws(() => SafetensorsFile.open(file), /declares a 53687091200-byte header, more than the/);
    });

    it('offsets that overlap or run past the end, a wrong byte count, an unsupported dtype', () => {
      const file = path.join(tempDir(), 'x.safetensors');
      fs.writeFileSync(file, headerOnly({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12));
      assert.throws(() => SafetensorsFile.open(file), /tensors a and b overlap/);
      fs.writeFileSync(file, headerOnly({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8));
      assert.throws(() => SafetensorsFile.open(file), /tensor a runs past the end of the file/);
      fs.writeFileSync(file, headerOnly({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8));
      assert.throws(() => SafetensorsFile.open(file), /needs 12 bytes but its offsets span 8/);
      fs.writeFileSync(file, headerOnly({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1));
      assert.throws(() => SafetensorsFile.open(file), /tensor a has unsupported dtype "F8_E4M3"/);
      fs.writeFileSync(file, headerOnly({ a: { dtype: 'F32', shape: [1e12, 1e12], data_offsets: [0, 4] } }, 4));
      assert.throws(() => SafetensorsFile.open(file), /needs .* bytes but its offsets span 4/);
    });

    it('a tensor of the wrong shape and a missing tensor', () => {
      const dir = writeRandomCheckpoint(tempDir());
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 40 }));
      assert.throws(() => loadCheckpoint(dir), /model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[48, 32\], expected \[40, 32\]/);
      const dir2 = tempDir();
      fs.writeFileSync(path.join(dir2, 'config.json'), JSON.stringify(randomConfig()));
      fs.writeFileSync(path.join(dir2, 'model.safetensors'), encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
      assert.throws(() => loadCheckpoint(dir2), /model\.safetensors: is missing tensor model\.embed_tokens\.weight/);
    });

    it('an unknown token id', async () => {
      const lm = LanguageModel.load(writeRandomCheckpoint(tempDir()), { threads: 1 });
      await assert.rejects(lm.score([{ ids: [1, 64], adapter: -1 }]), /unknown token id 64 \(the vocabulary has ids 0\.\.63\)/);
      await assert.rejects(lm.generate([{ prompt: [-1], adapter: -1 }], [], { maxNewTokens: 1, temperature: 0, topP: 1, stopTokens: [] }), /unknown token id -1/);
    });
  });
});

describe('PEFT adapters', () => {
  const model = () => loadCheckpoint(writeRandomCheckpoint(tempDir()));

  it('round-trips through adapter_config.json and adapter_model.safetensors with PEFT key names', () => {
    const { config } = model();
    const a = createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'down_proj'], seed: 1, init: 'random' });
    const dir = tempDir();
    saveAdapter(dir, a, 'test-base', config);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);
    assert.deepEqual(cfg.target_modules, ['q_proj', 'down_proj']);
    const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(st.entry('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight').shape, [4, 32]);
    assert.deepEqual(st.entry('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight').shape, [32, 4]);
    assert.equal(st.entries.size, 2 * 2 * 2);
    st.close();
    const b = loadAdapter(dir, config);
    for (const [k, m] of a.modules) {
      assert.deepEqual(b.modules.get(k)!.A, m.A);
      assert.deepEqual(b.modules.get(k)!.B, m.B);
      assert.equal(b.modules.get(k)!.scale, 2);
    }
  });

  it('PEFT initialisation: B is zero, A is bounded by 1/sqrt(in)', () => {
    const { config } = model();
    const a = createAdapter(config, { rank: 8, alpha: 16, targets: ['q_proj'], seed: 2 });
    const m = a.get(0, 'q_proj')!;
    assert.ok(m.B.every((x) => x === 0));
    assert.ok(m.A.every((x) => Math.abs(x) <= 1 / Math.sqrt(32)));
    assert.ok(m.A.some((x) => x !== 0));
  });

  it('rsLoRA, rank_pattern and alpha_pattern give per-module ranks and scales', () => {
    const { config } = model();
    const dir = tempDir();
    const a = createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 3, init: 'random' });
    saveAdapter(dir, a, 'x', config);
    const cfgFile = path.join(dir, 'adapter_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_rslora: true, alpha_pattern: { v_proj: 2 } }));
    const b = loadAdapter(dir, config);
    assert.equal(b.get(0, 'q_proj')!.scale, 8 / 2);
    assert.equal(b.get(0, 'v_proj')!.scale, 2 / 2);
  });

  it('adapters that do not fit the model get an error naming the file', () => {
    const { config } = model();
    const dir = tempDir();
    saveAdapter(dir, createAdapter(config, { rank: 4, alpha: 8, targets: ['q_proj'], seed: 3 }), 'x', config);
    const cfgFile = path.join(dir, 'adapter_config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, r: 8 }));
    assert.throws(() => loadAdapter(dir, config), new RegExp(`adapter_model\\.safetensors: ${peftKey(0, 'q_proj', 'A').replace(/\./g, '\\.')} has shape \\[4, 32\\], but rank 8 on this model needs \\[8, 32\\]`));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, target_modules: ['c_attn'] }));
    assert.throws(() => loadAdapter(dir, config), /adapter_config\.json: target module "c_attn" does not exist in a Qwen2 or Llama model/);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, target_modules: ['q_proj', 'k_proj'] }));
    assert.throws(() => loadAdapter(dir, config), /is missing base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_dora: true }));
    assert.throws(() => loadAdapter(dir, config), /DoRA adapters \(use_dora: true\) are not supported/);
    const bigger = loadCheckpoint(writeRandomCheckpoint(tempDir(), { hiddenSize: 48, numHeads: 4, numKvHeads: 2 })).config;
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    assert.throws(() => loadAdapter(dir, bigger), /has shape \[4, 32\], but rank 4 on this model needs \[4, 48\]/);
  });
});
