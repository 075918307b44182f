"""Opening a Hugging Face model directory without running anything it ships.

Safetensors only (a pickle can execute code when loaded), `trust_remote_code` off, and only the
architectures this engine is tested on. Each refusal is one CheckpointError naming the file.
Adding an architecture is one entry in ARCHITECTURES (transformers does the modelling).
"""

import glob
import json
import os

import torch

from .protocol import CheckpointError

# model_type -> the class transformers builds for it.
ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "consolidated.00.pth", "tf_model.h5", "flax_model.msgpack")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def read_config(model_dir: str) -> dict:
    if not os.path.isdir(model_dir):
        raise CheckpointError(model_dir, "model directory does not exist")
    file = os.path.join(model_dir, "config.json")
    if not os.path.isfile(file):
        raise CheckpointError(file, "is missing; a Hugging Face model directory needs a config.json")
    try:
        with open(file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(file, f"is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(file, "is not a JSON object")
    return config


def check_model_dir(model_dir: str) -> dict:
    """Everything that can be refused before transformers touches the directory; returns config.json."""
    config = read_config(model_dir)
    file = os.path.join(model_dir, "config.json")
    if config.get("auto_map") or glob.glob(os.path.join(model_dir, "*.py")):
        what = ", ".join(sorted(config["auto_map"])) if isinstance(config.get("auto_map"), dict) else "Python files"
        raise CheckpointError(file, f"needs custom code ({what}); the engine loads with trust_remote_code=False and does not run code shipped with a checkpoint")
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    expected = ARCHITECTURES.get(model_type)
    if expected is None or (archs and expected not in archs):
        shown = ", ".join(map(str, archs)) or str(model_type)
        supported = ", ".join(f"{c} (model_type {t!r})" for t, c in ARCHITECTURES.items())
        raise CheckpointError(file, f"unsupported architecture {shown} (model_type {model_type!r}); supported: {supported}")
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.isfile(single) and not os.path.isfile(index):
        pickles = [p for p in PICKLE_WEIGHTS if os.path.exists(os.path.join(model_dir, p))]
        pickles += [os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "pytorch_model-*.bin"))]
        if pickles:
            raise CheckpointError(os.path.join(model_dir, pickles[0]), "holds the weights as a pickle, which can run code when loaded; convert the checkpoint to safetensors (model.save_pretrained(dir, safe_serialization=True) on a trusted machine)")
        raise CheckpointError(single, "is missing (neither model.safetensors nor model.safetensors.index.json is in the directory)")
    return config


def _dtype_kwarg() -> str:
    import transformers

    return "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


def load_model(model_dir: str, dtype: str, device: str, attn_implementation: str | None = None):
    """The causal LM of a checked directory, in eval mode, every weight frozen."""
    from transformers import AutoModelForCausalLM

    check_model_dir(model_dir)
    if dtype not in DTYPES:
        raise CheckpointError(model_dir, f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    kwargs = {
        _dtype_kwarg(): DTYPES[dtype],
        "trust_remote_code": False,
        "use_safetensors": True,
        "local_files_only": True,
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(model_dir, f"cannot be loaded by transformers: {str(e).splitlines()[0][:400]}") from None
    model.to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
