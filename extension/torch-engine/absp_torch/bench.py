"""Benchmarks of the engine as users run it: transformers models with random weights of a given
shape, driven through the engine's own code paths (generation with the KV cache and per-row seeded
choice, training steps with AdamW).

run_cpu_bench(spec): the PyTorch side of `absp bench`, one phase per process (peak memory is the
phase's own), measured the way extension/bench/ort-bench.ts measures the built-in engine:
  prefill = a generate call of one new token over the prompt; decode = the extra time of
  new_tokens more; training = forward + backward + AdamW over the LoRA tensors (all linear layers)
  or every weight, the pooled-mean NLL on train_batch × train_seq_len random tokens.

run_gpu_bench(args): Qwen2.5-0.5B/3B/7B's published shapes on a GPU (bf16): rollout tokens/s at
batch 128, the bipolicy batch against two single-adapter passes, LoRA and full fine-tuning step
tokens/s with model-FLOPs utilisation, and peak memory of each. `--tiny` runs the same code on a
tiny config on the CPU (its logic is tested that way; the numbers mean nothing).
"""

import gc
import math
import os
import random
import resource
import statistics
import time

import torch

from .engine import TorchEngine

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# The published configs (config.json of each Qwen2.5 base model); weights are random.
QWEN25 = {
    "0.5B": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "3B": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
}
QWEN25_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6)

# Dense bf16 tensor-core peak, TFLOP/s, by device name (for MFU); --peak-tflops overrides.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def _random_model(config: dict, dtype: torch.dtype, device: str, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(**config)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = Qwen2ForCausalLM(cfg)
        finally:
            torch.set_default_dtype(prev)
    return model


def _median(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        times.append(fn())
    return statistics.median(times)


def _timed(fn, sync=None) -> float:
    if sync:
        sync()
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t0


def _ids(rng: random.Random, vocab: int, rows: int, length: int) -> list[list[int]]:
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(rows)]


def _nll_samples(ids: list[list[int]], policy: str) -> list[dict]:
    n = sum(len(r) - 1 for r in ids)
    return [{"ids": r, "policy": policy, "weights": [0.0] + [1.0 / n] * (len(r) - 1)} for r in ids]


def _adamw(lr: float = 1e-4) -> dict:
    return {"kind": "adamw", "lr": lr, "weightDecay": 0.0, "clipNorm": 1.0, "warmupSteps": 0}


def _random_adapter(engine: TorchEngine, name: str, rank: int, seed: int, targets=ALL_TARGETS) -> None:
    engine.create_policy(name, {"kind": "lora", "rank": rank, "alpha": 2 * rank, "targets": list(targets), "seed": seed})
    # B nonzero, as after the first update, so the low-rank path is real work.
    with torch.no_grad():
        for n, p in engine._lora_params(name).items():
            if n.endswith(".B"):
                p.normal_(0, 0.02)


def run_cpu_bench(spec: dict) -> dict:
    threads = int(spec.get("threads") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    phase = spec["phase"]
    warmup, repeats = int(spec.get("warmup", 1)), int(spec.get("repeats", 3))
    rank = int(spec.get("rank", 8))
    rng = random.Random(int(spec.get("seed", 0)) + 1)
    if spec.get("model"):
        # A real model directory (absp bench --model DIR), loaded as the engine loads any base.
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    else:
        config = {"vocab_size": 32000, "max_position_embeddings": 1024, **spec["config"]}
        config.pop("model_type", None)
        config.pop("architectures", None)
        model = _random_model(config, torch.float32, "cpu", int(spec.get("seed", 0)))
    engine = TorchEngine("bench", "cpu", "float32", model=model, micro_batch_tokens=1 << 30)
    vocab = model.config.vocab_size
    out = {"phase": phase, "threads": threads, "params_m": engine.base_parameters / 1e6, "torch_version": torch.__version__,
           "blas": {"kind": "mkl" if torch.backends.mkl.is_available() else "other", "mkldnn": torch.backends.mkldnn.is_available()}}
    greedy = {"temperature": 0, "topP": 1, "stopTokens": []}
    prompt_len, new_tokens = int(spec["promptLen"]), int(spec["newTokens"])
    if phase == "inference":
        decode, prefill = [], []
        for b in spec["batchSizes"]:
            rows = [{"prompt": p, "policy": None, "seed": 0} for p in _ids(rng, vocab, b, prompt_len)]
            engine.generate(rows, {**greedy, "maxNewTokens": 2})
            t_prefill = _median(lambda: _timed(lambda: engine.generate(rows, {**greedy, "maxNewTokens": 1})), warmup, repeats)
            t_all = _median(lambda: _timed(lambda: engine.generate(rows, {**greedy, "maxNewTokens": new_tokens + 1})), warmup, repeats)
            t_decode = max(1e-9, t_all - t_prefill)
            prefill.append({"batch": b, "tokens_per_s": b * prompt_len / t_prefill, "ms": t_prefill * 1e3})
            decode.append({"batch": b, "tokens_per_s": b * new_tokens / t_decode, "ms_per_step": t_decode / new_tokens * 1e3})
        out["prefill"], out["decode"] = prefill, decode
    elif phase == "bipolicy":
        b = spec["batchSizes"][-1]
        _random_adapter(engine, "attacker", rank, 11)
        _random_adapter(engine, "defender", rank, 12)
        prompts = _ids(rng, vocab, b, prompt_len)
        mixed = [{"prompt": p, "policy": "attacker" if i < b // 2 else "defender", "seed": i} for i, p in enumerate(prompts)]
        settings = {**greedy, "maxNewTokens": new_tokens}
        engine.generate(mixed, settings)
        t_mixed = _median(lambda: _timed(lambda: engine.generate(mixed, settings)), warmup, repeats)

        def two_passes():
            engine.generate(mixed[: b // 2], settings)
            engine.generate(mixed[b // 2:], settings)

        t_seq = _median(lambda: _timed(two_passes), warmup, repeats)
        tokens = b * (prompt_len + new_tokens)
        out["bipolicy"] = {"batch": b, "tokens_per_s": tokens / t_mixed, "ms": t_mixed * 1e3}
        out["sequential"] = {"batch": b, "tokens_per_s": tokens / t_seq, "ms": t_seq * 1e3}
    else:
        ids = _ids(rng, vocab, int(spec["trainBatch"]), int(spec["trainSeqLen"]))
        kind = "lora" if phase == "lora" else "full"
        if kind == "lora":
            engine.create_policy("p", {"kind": "lora", "rank": rank, "alpha": 2 * rank, "targets": ALL_TARGETS, "seed": 3})
        else:
            engine.create_policy("p", {"kind": "full"})
        settings = {"loss": "nll", "optimizers": {"p": _adamw()}}
        samples = _nll_samples(ids, "p")
        engine.train_step(samples[:1], settings)
        t = _median(lambda: _timed(lambda: engine.train_step(samples, settings)), warmup, repeats)
        key = "lora_step" if kind == "lora" else "full_step"
        out[key] = {"batch": len(ids), "seq_len": len(ids[0]), "tokens_per_s": len(ids) * len(ids[0]) / t, "ms_per_step": t * 1e3,
                    "trainable_params": engine.policy_parameters("p")}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


# ----------------------------------------------------------------------------------------------------
# GPU


def _model_flops_per_token(config: dict, seq_len: int, training: str) -> float:
    """Matmul FLOPs per token: 2·N per forward for the weights (N without embeddings' lookup, with
    the LM head) plus attention's 2·2·layers·seq·hidden (causal average seq/2 each way counted as
    seq); backward adds the input gradients (2·N), and full fine-tuning the weight gradients (2·N)."""
    h, i, L, v = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], config["vocab_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = h // heads
    per_layer = h * (heads * head_dim) + 2 * h * (kv * head_dim) + (heads * head_dim) * h + 3 * h * i
    n = L * per_layer + h * v  # the LM head is a matmul; the embedding lookup is not
    attn = 2 * L * seq_len * h  # QK^T and AV per token (causal: half of 2·2·seq·h)
    forward = 2 * n + attn
    return {"forward": forward, "lora": 2 * forward, "full": 3 * forward}[training]


def run_gpu_bench(args) -> dict:
    device = "cpu" if args.tiny else args.device
    dtype = torch.float32 if args.tiny else {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[args.dtype]
    sizes = ["tiny"] if args.tiny else [s.strip() for s in args.sizes.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = getattr(args, "peak_tflops", None) or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    batch = 4 if args.tiny else args.batch
    prompt_len = 8 if args.tiny else args.prompt_len
    new_tokens = 4 if args.tiny else args.new_tokens
    train_batch = 2 if args.tiny else args.train_batch
    seq_len = 16 if args.tiny else args.train_seq_len
    repeats = 1 if args.tiny else args.repeats
    result = {"device": name, "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "peak_tflops": peak,
              "date": time.strftime("%Y-%m-%d"), "settings": {"batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
                                                               "train_batch": train_batch, "train_seq_len": seq_len, "rank": args.rank}, "sizes": {}}

    def reset():
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gb():
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    for size in sizes:
        config = {**QWEN25_COMMON, **QWEN25[size]}
        if args.tiny:
            config["vocab_size"] = 512
        row: dict = {"config": QWEN25[size]}
        reset()
        model = _random_model(config, dtype, device)
        engine = TorchEngine("bench", device, result["dtype"], model=model, micro_batch_tokens=train_batch * seq_len)
        row["parameters"] = engine.base_parameters
        row["weights_gb"] = peak_gb()
        rng = random.Random(0)
        greedy = {"temperature": 0, "topP": 1, "stopTokens": []}
        prompts = _ids(rng, config["vocab_size"], batch, prompt_len)
        try:
            if "rollout" not in skip:
                reset()
                rows = [{"prompt": p, "policy": None, "seed": i} for i, p in enumerate(prompts)]
                settings = {"temperature": 1.0, "topP": 1.0, "stopTokens": [], "maxNewTokens": new_tokens}
                engine.generate(rows[:2], {**settings, "maxNewTokens": 2})
                t = _median(lambda: _timed(lambda: engine.generate(rows, settings), sync), 0, repeats)
                row["rollout"] = {"batch": batch, "generated_tokens_per_s": batch * new_tokens / t, "seconds": t, "peak_gb": peak_gb()}
            ids = _ids(rng, config["vocab_size"], train_batch, seq_len)
            # Full fine-tuning first: its copy of the model is made while the base has no adapters.
            for kind in ("full", "bipolicy", "lora"):
                if kind in skip:
                    continue
                if kind == "bipolicy":
                    reset()
                    _random_adapter(engine, "attacker", args.rank, 1)
                    _random_adapter(engine, "defender", args.rank, 2)
                    mixed = [{"prompt": p, "policy": "attacker" if i % 2 == 0 else "defender", "seed": i} for i, p in enumerate(prompts)]
                    settings = {**greedy, "maxNewTokens": new_tokens}
                    engine.generate(mixed[:2], {**settings, "maxNewTokens": 2})
                    t_mixed = _median(lambda: _timed(lambda: engine.generate(mixed, settings), sync), 0, repeats)
                    att = [m for m in mixed if m["policy"] == "attacker"]
                    dfd = [m for m in mixed if m["policy"] == "defender"]
                    t_two = _median(lambda: _timed(lambda: (engine.generate(att, settings), engine.generate(dfd, settings)), sync), 0, repeats)
                    row["bipolicy"] = {"batch": batch, "one_pass_tokens_per_s": batch * new_tokens / t_mixed, "two_passes_tokens_per_s": batch * new_tokens / t_two,
                                       "ratio": t_two / t_mixed, "peak_gb": peak_gb()}
                    engine.drop_policy("attacker")
                    engine.drop_policy("defender")
                    continue
                reset()
                if kind == "lora":
                    _random_adapter(engine, "p", args.rank, 3)
                else:
                    engine.create_policy("p", {"kind": "full"})
                settings = {"loss": "nll", "optimizers": {"p": _adamw()}}
                samples = _nll_samples(ids, "p")
                engine.train_step(samples, settings)
                t = _median(lambda: _timed(lambda: engine.train_step(samples, settings), sync), 0, repeats)
                tokens = train_batch * seq_len
                flops = _model_flops_per_token(config, seq_len, kind) * tokens / t
                row[f"{kind}_step"] = {"tokens_per_s": tokens / t, "seconds": t, "trainable_parameters": engine.policy_parameters("p"),
                                       "model_tflops": flops / 1e12, "mfu": (flops / 1e12 / peak) if peak else None, "peak_gb": peak_gb()}
                engine.drop_policy("p")
        except torch.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0]}"
        result["sizes"][size] = row
        del engine, model
        reset()
    return result
