"""What this Python environment has for the engine, as one JSON object (`absp torch doctor --json`)."""

import sys


def doctor() -> dict:
    report: dict = {"python": sys.executable, "ok": False, "problems": []}
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        report["problems"].append(f"torch does not import: {e}")
        return report
    from . import PROTOCOL_VERSION
    from .server import devices, versions

    report.update(versions())
    report["protocol"] = PROTOCOL_VERSION
    report["devices"] = devices()
    report["cuda"] = torch.version.cuda
    for mod in ("transformers", "peft", "accelerate", "safetensors"):
        if report.get(mod) is None:
            report["problems"].append(f"{mod} is not installed")
    if not report["problems"]:
        # A real round trip: a tiny random Qwen2 with an adapter, one forward and backward.
        try:
            from transformers import Qwen2Config, Qwen2ForCausalLM
            from peft import get_peft_model

            from .adapters import lora_config

            cfg = Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
            model = get_peft_model(Qwen2ForCausalLM(cfg), lora_config(2, 4, ["q_proj"]), adapter_name="check")
            model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
        except Exception as e:  # noqa: BLE001
            report["problems"].append(f"a forward and backward pass through a tiny model failed: {type(e).__name__}: {e}")
    report["ok"] = not report["problems"]
    return report
