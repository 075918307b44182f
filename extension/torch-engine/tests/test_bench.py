"""The benchmarks' logic on tiny shapes on the CPU (their numbers mean nothing here)."""

import argparse

from absp_torch.bench import _model_flops_per_token, QWEN25, QWEN25_COMMON, run_cpu_bench, run_gpu_bench
from absp_torch.__main__ import main

TINY = {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False, "max_position_embeddings": 256}


def test_cpu_bench_phases_report_what_absp_bench_reads():
    spec = {"config": TINY, "batchSizes": [1, 4], "promptLen": 8, "newTokens": 4, "trainBatch": 2, "trainSeqLen": 16, "rank": 4, "threads": 1, "warmup": 0, "repeats": 1}
    inf = run_cpu_bench({**spec, "phase": "inference"})
    assert [d["batch"] for d in inf["decode"]] == [1, 4] and all(d["tokens_per_s"] > 0 for d in inf["decode"] + inf["prefill"])
    bi = run_cpu_bench({**spec, "phase": "bipolicy"})
    assert bi["bipolicy"]["batch"] == 4 and bi["sequential"]["tokens_per_s"] > 0
    lora = run_cpu_bench({**spec, "phase": "lora"})
    full = run_cpu_bench({**spec, "phase": "full"})
    assert 0 < lora["lora_step"]["trainable_params"] < full["full_step"]["trainable_params"]
    assert lora["peak_rss_mb"] > 0


def test_gpu_bench_runs_its_whole_logic_on_a_tiny_config(capsys):
    args = argparse.Namespace(tiny=True, device="cpu", dtype="float32", sizes="tiny", skip="", batch=4, prompt_len=8, new_tokens=4,
                              train_batch=2, train_seq_len=16, rank=4, repeats=1, peak_tflops=None)
    r = run_gpu_bench(args)
    row = r["sizes"]["tiny"]
    assert "error" not in row
    assert row["rollout"]["generated_tokens_per_s"] > 0
    assert row["bipolicy"]["ratio"] > 0
    assert row["lora_step"]["trainable_parameters"] < row["full_step"]["trainable_parameters"] == row["parameters"]
    assert row["lora_step"]["mfu"] is None  # no peak is known for a CPU
    assert main(["gpu-bench", "--tiny", "--skip", "full,lora,bipolicy"]) == 0
    assert '"rollout"' in capsys.readouterr().out


def test_model_flops_follow_the_published_7b_shape():
    config = {**QWEN25_COMMON, **QWEN25["7B"]}
    # About 2 × 7.6e9 FLOPs per token forward at short context (the 7B model has 7.6B parameters).
    fwd = _model_flops_per_token(config, 1, "forward")
    assert 1.4e10 < fwd < 1.6e10
    assert _model_flops_per_token(config, 1024, "full") == 3 * _model_flops_per_token(config, 1024, "forward")
