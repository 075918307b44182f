"""Real transformers (and PEFT) as the reference for the built-in engine's Llama and Qwen2 decoders.

    python hf_reference.py < JOBS      JOBS: a JSON list, each one of
      {"op": "make", "out": DIR, ...SPEC}            a random checkpoint written by transformers itself
      {"op": "adapter", "model": DIR, "out": DIR, ...}  a random LoRA adapter written by PEFT itself
      {"op": "run", "model": DIR, ...REQUEST}        log-probs of rows and greedy continuations

All jobs run in one process (transformers is imported once). Everything runs in float32 on the CPU
with transformers' eager attention, as users run it; the answer is a JSON list on stdout, one
result per job.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("ABSP_REFERENCE_THREADS", "2")))


def make(out: str, spec: dict) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(spec.get("seed", 0))
    arch = spec.get("arch", "llama")
    config = {
        "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256, "tie_word_embeddings": False, "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": 0, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        **spec.get("config", {}),
    }
    model = (LlamaForCausalLM(LlamaConfig(**config)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**config))).eval()
    # Larger than the default initialisation, so the model's distributions are far from uniform.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.2)
    model.save_pretrained(out, safe_serialization=True)
    return {"dir": out, "config": json.load(open(os.path.join(out, "config.json")))}


def adapter(model_dir: str, out: str, spec: dict) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(spec.get("seed", 0))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=spec.get("rank", 4), lora_alpha=spec.get("alpha", 8), target_modules=spec["targets"], lora_dropout=0.0, bias="none"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero; a random B makes the adapter change something
                p.normal_(0, 0.2)
    peft.save_pretrained(out)
    return {"dir": out}


def run(model_dir: str, req: dict) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    if req.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, req["adapter"]).eval()
    out = {"logprobs": [], "greedy": []}
    with torch.no_grad():
        for ids in req.get("rows", []):
            logits = model(torch.tensor([ids])).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            # Per token: log p(ids[t] | ids[<t]); the first token has none.
            out["logprobs"].append([None] + [float(lp[t - 1, ids[t]]) for t in range(1, len(ids))])
        prompts = req.get("greedy", [])
        if prompts:
            # One batch, left-padded, as the engine runs it; a row that stopped is padded after its EOS.
            pad = req.get("pad", 0)
            width = max(len(p) for p in prompts)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            g = model.generate(ids, attention_mask=mask, max_new_tokens=req["max_new_tokens"], do_sample=False, eos_token_id=req.get("eos"), pad_token_id=pad)
            eos = set(req.get("eos") or [])
            for row in g[:, width:].tolist():
                cut = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
                out["greedy"].append(row[:cut])
    return out


def main() -> None:
    results = []
    for job in json.loads(sys.stdin.read()):
        op = job.pop("op")
        if op == "make":
            results.append(make(job.pop("out"), job))
        elif op == "adapter":
            results.append(adapter(job.pop("model"), job.pop("out"), job))
        elif op == "run":
            results.append(run(job.pop("model"), job))
        else:
            raise SystemExit(f"unknown op {op}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
