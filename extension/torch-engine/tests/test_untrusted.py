"""Model and adapter folders from someone else, read before transformers or PEFT sees them
(the TypeScript bad-input suite sends the same inputs through the protocol)."""

import json
import os
import shutil
import threading
import time

import pytest

from absp_torch import adapters as ad
from absp_torch.checkpoint import check_model_dir
from absp_torch.engine import TorchEngine
from absp_torch.protocol import CheckpointError

from conftest import make_peft_adapter


def copy_with(src: str, dst: str, file: str, **patch) -> str:
    shutil.copytree(src, dst)
    path = os.path.join(dst, file)
    config = json.load(open(path))
    config.update(patch)
    json.dump(config, open(path, "w"))
    return dst


def test_config_dimensions_are_bounded_and_checked_against_the_headers(qwen2_dir, tmp_path):
    huge = copy_with(qwen2_dir, str(tmp_path / "huge"), "config.json", num_hidden_layers=10**9)
    with pytest.raises(CheckpointError, match=r"config\.json: num_hidden_layers is 1000000000, more than 1024"):
        check_model_dir(huge)
    wide = copy_with(qwen2_dir, str(tmp_path / "wide"), "config.json", hidden_size=4096, num_attention_heads=32, num_key_value_heads=32)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor model\.embed_tokens\.weight has shape \[61, 32\], expected \[61, 4096\]"):
        check_model_dir(wide)
    deeper = copy_with(qwen2_dir, str(tmp_path / "deeper"), "config.json", num_hidden_layers=3)
    with pytest.raises(CheckpointError, match=r"has no tensor model\.layers\.2\.input_layernorm\.weight"):
        check_model_dir(deeper)
    fifo = str(tmp_path / "fifo")
    shutil.copytree(qwen2_dir, fifo)
    os.remove(os.path.join(fifo, "config.json"))
    os.mkfifo(os.path.join(fifo, "config.json"))
    with pytest.raises(CheckpointError, match=r"config\.json: is a FIFO"):
        check_model_dir(fifo)


# Exponential in a backtracking matcher on names like "model.layers.0.self_attn.q_proj", the regex
# package included (the lookbehind fails only at the end, after every split was tried): 18 s for one
# name on the 2-core Xeon, so no CPU finishes a model's names inside the 2 s budget.
SLOW_PATTERN = r"(?:[a-z_.0-9]|[a-z_.0-9]{2}|[a-z_.0-9]{3})+(?<!j)"


def test_adapter_patterns_are_resolved_under_a_time_limit_and_peft_gets_exact_names(qwen2_dir, tmp_path):
    engine = TorchEngine(qwen2_dir, "cpu", "float32")
    try:
        good = make_peft_adapter(qwen2_dir, str(tmp_path / "good"), ["q_proj", "v_proj"], 2, 4, 1)
        reference = engine.load_policy("listed", good, "lora")["fingerprint"]
        regex = copy_with(good, str(tmp_path / "regex"), "adapter_config.json", target_modules=r".*\.(q_proj|v_proj)")
        assert engine.load_policy("regex", regex, "lora")["fingerprint"] == reference
        assert sorted(engine.peft.peft_config["regex"].target_modules) == ["q_proj", "v_proj"]
        one_layer = copy_with(good, str(tmp_path / "one-layer"), "adapter_config.json", target_modules=r"model\.layers\.1\..*\.(q_proj|v_proj)")
        with pytest.raises(CheckpointError, match=r"holds LoRA weights for model\.layers\.0\.self_attn\.q_proj, which adapter_config\.json does not target"):
            engine.load_policy("one-layer", one_layer, "lora")
        # PEFT's catastrophic pattern: the regex package fails it fast, as a pattern matching nothing.
        evil = copy_with(good, str(tmp_path / "evil"), "adapter_config.json", target_modules="(.*.*.*.*.*.*.*.*.*.*)*X")
        t = time.monotonic()
        with pytest.raises(CheckpointError, match=r"matches no linear layer"):
            engine.load_policy("evil", evil, "lora")
        assert time.monotonic() - t < 30
        # One that backtracks exponentially in it too is stopped by the time budget, on any thread
        # (a signal-based limit works only on the main thread, and not at all on Windows).
        slow = copy_with(good, str(tmp_path / "slow"), "adapter_config.json", target_modules=SLOW_PATTERN)
        for where in ("main thread", "worker thread"):
            outcome = {}

            def load():
                t = time.monotonic()
                try:
                    engine.load_policy("slow", slow, "lora")
                except CheckpointError as e:
                    outcome["error"] = str(e)
                outcome["seconds"] = time.monotonic() - t

            if where == "main thread":
                load()
            else:
                worker = threading.Thread(target=load)
                worker.start()
                worker.join(60)
            assert "take more than 2 s to match" in outcome.get("error", ""), (where, outcome)
            assert outcome["seconds"] < 30, (where, outcome)
        big = copy_with(good, str(tmp_path / "big"), "adapter_config.json", r=1024)
        with pytest.raises(CheckpointError, match=r"lora_A\.weight has shape \[2, 32\], but rank 1024 on this model needs \[1024, 32\]"):
            engine.load_policy("big", big, "lora")
        assert sorted(engine.policies) == ["listed", "regex"]
    finally:
        engine.close()
