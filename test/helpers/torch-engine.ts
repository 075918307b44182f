/**
 * Mocha helpers for the PyTorch engine: skip (one line saying why) where no engine environment
 * exists, and run Python with transformers and PEFT to build what the tests compare against —
 * random checkpoints made with transformers' own config classes, adapters made by PEFT itself.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sandboxModelDir } from '../../extension/sandbox/builtin';
import { engineEnv, findEnginePython } from '../../extension/engine/torch/python-env';

export const TORCH_ENGINE_MISSING = 'no Python with torch, transformers and peft (run `absp torch setup --venv .absp-cache/torch-venv`, as scripts/test.sh does)';

export function torchEnginePython(): string | null {
  return findEnginePython();
}

/** describe() whose tests need the engine's environment; without it, one skipped test says why. */
export function describeWithTorchEngine(title: string, fn: (python: string) => void): void {
  const python = torchEnginePython();
  if (!python) {
    describe(title, () => it.skip(TORCH_ENGINE_MISSING, () => undefined));
    return;
  }
  describe(title, () => fn(python));
}

/** Runs a Python snippet in the engine's environment; returns its stdout, throws with its stderr. */
export function runPython(python: string, code: string, args: string[] = []): string {
  const r = spawnSync(python, ['-c', code, ...args], { encoding: 'utf8', env: { ...engineEnv(), HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' }, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

/**
 * A random Qwen2 or Llama checkpoint written by transformers (config classes, save_pretrained), with
 * the sandbox model's tokenizer (so its vocabulary size is the sandbox's, 770).
 */
export function makeHfCheckpoint(python: string, dir: string, arch: 'qwen2' | 'llama', o: { seed?: number; tie?: boolean } = {}): string {
  runPython(
    python,
    `
import sys, json, torch
from transformers import Qwen2Config, Qwen2ForCausalLM, LlamaConfig, LlamaForCausalLM
arch, out, seed, tie, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
torch.manual_seed(seed)
common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=tie, eos_token_id=2, rms_norm_eps=1e-6, rope_theta=10000.0)
model = Qwen2ForCausalLM(Qwen2Config(**common)) if arch == "qwen2" else LlamaForCausalLM(LlamaConfig(**common))
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" not in n: p.normal_(0, 0.2)
model.save_pretrained(out, safe_serialization=True)
`,
    [arch, dir, String(o.seed ?? 0), o.tie ? '1' : '0', '770'],
  );
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(sandboxModelDir(), f), path.join(dir, f));
  return dir;
}

/** An adapter made by PEFT (get_peft_model(...).save_pretrained), with B nonzero. */
export function makePeftAdapter(python: string, modelDir: string, out: string, targets: string[], rank: number, alpha: number, seed: number): string {
  runPython(
    python,
    `
import sys, json, torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model
model_dir, out, targets, r, alpha, seed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
torch.manual_seed(seed)
m = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0))
with torch.no_grad():
    for n, p in m.named_parameters():
        if "lora_B" in n: p.normal_(0, 0.3)
m.save_pretrained(out, safe_serialization=True)
`,
    [modelDir, out, JSON.stringify(targets), String(rank), String(alpha), String(seed)],
  );
  return out;
}

/** Log-probs of rows computed by PeftModel.from_pretrained (or the plain model) in float32. */
export function peftLogprobs(python: string, modelDir: string, adapter: string | null, rows: number[][]): (number | null)[][] {
  const out = runPython(
    python,
    `
import sys, json, torch
from transformers import AutoModelForCausalLM
model_dir, adapter, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(model_dir)
if adapter:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, adapter)
model.eval()
res = []
with torch.no_grad():
    for ids in rows:
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        res.append([None] + lp.tolist())
print(json.dumps(res))
`,
    [modelDir, adapter ?? '', JSON.stringify(rows)],
  );
  return JSON.parse(out.trim().split('\n').pop()!);
}
