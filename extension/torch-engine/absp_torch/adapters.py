"""Role adapters as PEFT LoRA adapters: created, loaded and saved with PEFT's own functions, in
PEFT's on-disk format (adapter_config.json + adapter_model.safetensors, keys without the adapter's
name), which the built-in engine reads and writes too.

A fingerprint is a hash of a policy's weights, the same function in both engines
(extension/engine/fingerprint.ts): SHA-256 over the tensors in key order, each as its key, its
shape and its float32 little-endian bytes; the first 16 hex digits. Equal weights give equal
fingerprints whichever engine holds them and whatever dtype they are stored in.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile

import torch

from .protocol import CheckpointError

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fingerprint(tensors: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to(torch.float32).contiguous().cpu()
        h.update(key.encode("utf-8") + b"\0" + ",".join(str(d) for d in t.shape).encode("ascii") + b"\0")
        h.update(t.numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()[:16]


def lora_config(rank: int, alpha: float, targets: list[str]):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")


_PARAM = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.")


def optimizer_name(peft_param_name: str) -> str:
    """`…layers.3.self_attn.q_proj.lora_A.<adapter>.weight` -> `3.q_proj.A`, the built-in engine's names."""
    m = _PARAM.search(peft_param_name)
    if not m:
        raise ValueError(f"not a LoRA parameter of a decoder layer: {peft_param_name}")
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"


def check_adapter_dir(adapter_dir: str) -> dict:
    if not os.path.isdir(adapter_dir):
        raise CheckpointError(adapter_dir, "adapter directory does not exist")
    config_file = os.path.join(adapter_dir, "adapter_config.json")
    if not os.path.isfile(config_file):
        raise CheckpointError(config_file, "is missing; a PEFT adapter directory needs adapter_config.json")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(config_file, f"is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(config_file, "is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(config_file, f"peft_type {config.get('peft_type')!r} is not supported (only LORA)")
    if config.get("auto_mapping") and config["auto_mapping"].get("base_model_class") not in (None, "Qwen2ForCausalLM", "LlamaForCausalLM"):
        pass  # informational only; PEFT does not import anything from it
    weights = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.isfile(weights):
        if os.path.exists(os.path.join(adapter_dir, "adapter_model.bin")):
            raise CheckpointError(os.path.join(adapter_dir, "adapter_model.bin"), "holds the adapter as a pickle, which can run code when loaded, and is not loaded; save it with safe_serialization=True (adapter_model.safetensors)")
        raise CheckpointError(weights, "is missing")
    return config


def write_adapter(peft_model, name: str, out_dir: str) -> str:
    """Saves one named adapter in PEFT's format, atomically (files appear complete or not at all)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = get_peft_model_state_dict(peft_model, adapter_name=name)
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in state.items()}
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".saving-", dir=out_dir)
    try:
        save_file(tensors, os.path.join(tmp, "adapter_model.safetensors"), metadata={"format": "pt"})
        config = peft_model.peft_config[name]
        was = config.inference_mode
        config.inference_mode = True
        try:
            config.save_pretrained(tmp)
        finally:
            config.inference_mode = was
        for f in ("adapter_model.safetensors", "adapter_config.json"):
            os.replace(os.path.join(tmp, f), os.path.join(out_dir, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return fingerprint(tensors)
