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

export interface HfCheckpointSpec {
  dir: string;
  arch: 'qwen2' | 'llama';
  seed?: number;
  tie?: boolean;
}

/**
 * Random Qwen2 or Llama checkpoints written by transformers (config classes, save_pretrained), with
 * the sandbox model's tokenizer (so the vocabulary size is the sandbox's, 770). All in one Python
 * process: importing torch and transformers costs more than building a tiny model.
 */
export function makeHfCheckpoints(python: string, specs: HfCheckpointSpec[]): string[] {
  runPython(
    python,
    `
import sys, json, torch
from transformers import Qwen2Config, Qwen2ForCausalLM, LlamaConfig, LlamaForCausalLM
for spec in json.loads(sys.argv[1]):
    torch.manual_seed(spec["seed"])
    common = dict(vocab_size=770, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=spec["tie"], eos_token_id=2, rms_norm_eps=1e-6, rope_theta=10000.0)
    model = Qwen2ForCausalLM(Qwen2Config(**common)) if spec["arch"] == "qwen2" else LlamaForCausalLM(LlamaConfig(**common))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" not in n: p.normal_(0, 0.2)
    model.save_pretrained(spec["dir"], safe_serialization=True)
`,
    [JSON.stringify(specs.map((s) => ({ dir: s.dir, arch: s.arch, seed: s.seed ?? 0, tie: s.tie ?? false })))],
  );
  for (const { dir } of specs) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(sandboxModelDir(), f), path.join(dir, f));
  }
  return specs.map((s) => s.dir);
}

export function makeHfCheckpoint(python: string, dir: string, arch: 'qwen2' | 'llama', o: { seed?: number; tie?: boolean } = {}): string {
  return makeHfCheckpoints(python, [{ dir, arch, ...o }])[0];
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

/**
 * Log-probs of rows under each adapter (null: the plain model), computed in float32 by
 * PeftModel.from_pretrained on a fresh copy of the model each, in one Python process.
 */
export function peftLogprobs(python: string, modelDir: string, adapters: (string | null)[], rows: number[][]): (number | null)[][][] {
  const out = runPython(
    python,
    `
import sys, json, torch
from transformers import AutoModelForCausalLM
model_dir, adapters, rows = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
res = []
for adapter in adapters:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    lps = []
    with torch.no_grad():
        for ids in rows:
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
            lps.append([None] + lp.tolist())
    res.append(lps)
print(json.dumps(res))
`,
    [modelDir, JSON.stringify(adapters), JSON.stringify(rows)],
  );
  return JSON.parse(out.trim().split('\n').pop()!);
}
