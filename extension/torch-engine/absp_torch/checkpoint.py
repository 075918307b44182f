"""Opening a Hugging Face model directory without running anything it ships.

Safetensors only (a pickle can execute code when loaded), `trust_remote_code` off, and only the
architectures this engine is tested on. config.json's dimensions are bounded, and every tensor they
imply is located in the safetensors headers (present, shaped as config.json says, inside its file)
before transformers builds anything: a config from someone else cannot make the loader plan a
billion layers or a terabyte embedding. Files are read as files.py reads them (no links, no FIFOs).
Each refusal is one CheckpointError naming the file. Adding an architecture is one entry in
ARCHITECTURES (transformers does the modelling) and its tensors in expected_tensors.
"""

import glob
import json
import os

import torch

from .files import read_json, safetensors_header
from .protocol import CheckpointError

# model_type -> the class transformers builds for it.
ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "consolidated.00.pth", "tf_model.h5", "flax_model.msgpack")

# The largest value of each dimension config.json may give (the built-in engine's limits,
# extension/engine/model/model-config.ts): far above any released model of these families.
DIMENSION_LIMITS = {
    "vocab_size": 4_194_304,
    "hidden_size": 65_536,
    "intermediate_size": 262_144,
    "num_hidden_layers": 1_024,
    "num_attention_heads": 1_024,
    "num_key_value_heads": 1_024,
    "head_dim": 2_048,
    "max_position_embeddings": 16_777_216,
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def read_config(model_dir: str) -> dict:
    if not os.path.isdir(model_dir):
        raise CheckpointError(model_dir, "model directory does not exist")
    file = os.path.join(model_dir, "config.json")
    if not os.path.lexists(file):
        raise CheckpointError(file, "is missing; a Hugging Face model directory needs a config.json")
    config = read_json(file)
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
    check_weights(model_dir, config, expected_tensors(config, file))
    return config


def _dimension(config: dict, key: str, file: str, default=None) -> int:
    v = config.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise CheckpointError(file, f"{key} must be a positive integer, got {json.dumps(config.get(key))}")
    limit = DIMENSION_LIMITS.get(key)
    if limit is not None and v > limit:
        raise CheckpointError(file, f"{key} is {v}, more than {limit}, the largest this engine accepts")
    return v


def expected_tensors(config: dict, file: str) -> dict:
    """{name: shape} of every weight config.json implies for a Qwen2 or Llama causal LM."""
    hidden = _dimension(config, "hidden_size", file)
    vocab = _dimension(config, "vocab_size", file)
    inter = _dimension(config, "intermediate_size", file)
    layers = _dimension(config, "num_hidden_layers", file)
    heads = _dimension(config, "num_attention_heads", file)
    kv = _dimension(config, "num_key_value_heads", file, heads)
    _dimension(config, "max_position_embeddings", file, 32768)
    head_dim = _dimension(config, "head_dim", file) if config.get("head_dim") is not None else hidden // heads
    if config.get("head_dim") is None and hidden % heads:
        raise CheckpointError(file, f"hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})")
    llama = config.get("model_type") == "llama"
    qkv_bias = bool(config.get("attention_bias", False)) if llama else True
    o_bias = bool(config.get("attention_bias", False)) if llama else False
    mlp_bias = bool(config.get("mlp_bias", False)) if llama else False
    linear = {
        "self_attn.q_proj": (heads * head_dim, hidden, qkv_bias),
        "self_attn.k_proj": (kv * head_dim, hidden, qkv_bias),
        "self_attn.v_proj": (kv * head_dim, hidden, qkv_bias),
        "self_attn.o_proj": (hidden, heads * head_dim, o_bias),
        "mlp.gate_proj": (inter, hidden, mlp_bias),
        "mlp.up_proj": (inter, hidden, mlp_bias),
        "mlp.down_proj": (hidden, inter, mlp_bias),
    }
    out = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden]}
    if not config.get("tie_word_embeddings", False):
        out["lm_head.weight"] = [vocab, hidden]
    for i in range(layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = [hidden]
        out[p + "post_attention_layernorm.weight"] = [hidden]
        for name, (rows, cols, bias) in linear.items():
            out[p + name + ".weight"] = [rows, cols]
            if bias:
                out[p + name + ".bias"] = [rows]
    return out


def check_weights(model_dir: str, config: dict, expected: dict) -> None:
    """Every expected tensor present in the safetensors headers, with its shape, inside its file."""
    index_file = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.lexists(index_file):
        index = read_json(index_file)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise CheckpointError(index_file, "has no weight_map object")
        shards = {}
        for name, shard in weight_map.items():
            if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in ("", ".", ".."):
                raise CheckpointError(index_file, f"maps {name} to {json.dumps(shard)}, which is not a file of this folder")
            shards.setdefault(shard, None)
        headers = {}
        for shard in shards:
            for name, entry in safetensors_header(os.path.join(model_dir, shard)).items():
                headers[name] = (shard, entry)
    else:
        headers = {name: ("model.safetensors", entry) for name, entry in safetensors_header(os.path.join(model_dir, "model.safetensors")).items()}
    for name, shape in expected.items():
        found = headers.get(name)
        if found is None:
            raise CheckpointError(os.path.join(model_dir, "model.safetensors"), f"has no tensor {name}, which config.json implies")
        shard, (_dtype, have) = found
        if list(have) != list(shape):
            raise CheckpointError(os.path.join(model_dir, shard), f"tensor {name} has shape {list(have)}, expected {list(shape)} from config.json")


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
