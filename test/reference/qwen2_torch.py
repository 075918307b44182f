"""PyTorch reference implementation of Hugging Face ``Qwen2ForCausalLM`` with PEFT LoRA.

This module is the numerical ground truth that ABSP Lab's ONNX Runtime engine is
checked against.  It depends only on PyTorch (>= 1.13) and numpy: no transformers,
peft or safetensors package.  Everything that matters for numerics follows the
upstream code (transformers ``models/qwen2/modeling_qwen2.py``,
``modeling_rope_utils.py``; peft ``tuners/lora/layer.py``, ``tuners/tuners_utils.py``,
``utils/save_and_load.py``, ``utils/other.py``); see README.md for the list of
deliberate deviations (all of them only raise the precision of float64 runs).

Public entry points:
  * ``read_safetensors`` / ``write_safetensors`` -- a small safetensors codec
  * ``Qwen2Config``, ``Qwen2`` (``load_model``) -- the base model
  * ``LoraAdapter`` (``load_adapter``, ``write_adapter``) -- PEFT LoRA adapters
  * ``Reference`` -- the operations served by ``server.py`` (``Reference().handle(req)``)
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------

# name -> (numpy little-endian dtype used to read the raw bytes, bytes per element)
_ST_DTYPES: Dict[str, Tuple[str, int]] = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),  # decoded by hand: numpy has no bfloat16
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("<i1", 1),
    "U8": ("<u1", 1),
    "BOOL": ("<u1", 1),
}
_FLOAT_ST = ("F64", "F32", "F16", "BF16")


class SafetensorsError(ValueError):
    pass


def read_safetensors_header(path: str) -> Tuple[Dict[str, Any], int, int]:
    """Returns (header without __metadata__, byte offset of the data section, data length)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SafetensorsError(f"{path}: file too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 * 1024 * 1024:
            raise SafetensorsError(f"{path}: header length {n} exceeds the file size {size}")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    header = dict(header)
    header.pop("__metadata__", None)
    data_start = 8 + n
    data_len = size - data_start
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SafetensorsError(f"{path}: bad header entry for {name!r}")
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dt}")
        shape = info["shape"]
        if not isinstance(shape, list) or any((not isinstance(d, int)) or d < 0 for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has a bad shape {shape!r}")
        b, e = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= data_len) or e - b != count * _ST_DTYPES[dt][1]:
            raise SafetensorsError(
                f"{path}: tensor {name!r} data_offsets {b}..{e} do not fit dtype {dt} shape {shape} "
                f"(data section is {data_len} bytes)"
            )
    return header, data_start, data_len


def _decode(raw: bytes, dt: str, shape: List[int]) -> np.ndarray:
    arr = np.frombuffer(raw, dtype=_ST_DTYPES[dt][0])
    if dt == "BF16":
        # bfloat16 is the top half of a float32: widening is exact.
        arr = (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
    elif dt == "BOOL":
        arr = arr.astype(bool)
    return arr.reshape(shape)


def read_safetensors(
    path: str, names: Optional[Sequence[str]] = None, dtype: Optional[torch.dtype] = torch.float64
) -> Dict[str, torch.Tensor]:
    """Reads tensors from a .safetensors file.  Floating tensors are converted to ``dtype``
    (exactly, when widening); ``dtype=None`` keeps F32/F64 as is and widens F16/BF16 to float32."""
    header, data_start, _ = read_safetensors_header(path)
    wanted = list(header) if names is None else list(names)
    out: Dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        for name in wanted:
            if name not in header:
                raise SafetensorsError(f"{path}: no tensor named {name!r}")
            info = header[name]
            b, e = info["data_offsets"]
            f.seek(data_start + b)
            raw = f.read(e - b)
            arr = _decode(raw, info["dtype"], info["shape"])
            if info["dtype"] in _FLOAT_ST:
                target = dtype
                if target is None:
                    target = torch.float64 if info["dtype"] == "F64" else torch.float32
                np_t = np.float64 if target == torch.float64 else np.float32
                if target not in (torch.float64, torch.float32):
                    out[name] = torch.from_numpy(arr.astype(np.float32)).to(target)
                else:
                    out[name] = torch.from_numpy(arr.astype(np_t))  # astype copies: writable
            else:
                out[name] = torch.from_numpy(arr.copy())
    return out


_TORCH_TO_ST = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ST_TO_TORCH = {v: k for k, v in _TORCH_TO_ST.items()}


def write_safetensors(
    path: str,
    tensors: Dict[str, torch.Tensor],
    dtype: Optional[str] = None,
    metadata: Optional[Dict[str, str]] = None,
) -> None:
    """Writes a .safetensors file.  ``dtype`` ("F32", "F16", "BF16", "F64") converts every
    floating tensor (round-to-nearest-even); None keeps each tensor's dtype."""
    header: Dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    chunks: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if dtype is not None and t.is_floating_point():
            t = t.to(_ST_TO_TORCH[dtype])
        st = _TORCH_TO_ST.get(t.dtype)
        if st is None:
            raise SafetensorsError(f"cannot write dtype {t.dtype} for {name!r}")
        if st == "BF16":
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(_ST_DTYPES[st][0]).tobytes()
        header[name] = {"dtype": st, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # the reference writer pads the header to 8 bytes
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


class ConfigError(ValueError):
    pass


@dataclass
class Qwen2Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    layer_types: List[str]
    sliding_window: Optional[int]
    pad_token_id: Optional[int]
    max_position_embeddings: int
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def from_dict(d: Dict[str, Any], validate_type: bool = True) -> "Qwen2Config":
        if validate_type:
            mt = d.get("model_type")
            if mt != "qwen2":
                raise ConfigError(f"config.json model_type is {mt!r}, expected 'qwen2'")
            arch = d.get("architectures")
            if arch is not None and "Qwen2ForCausalLM" not in arch:
                raise ConfigError(f"config.json architectures {arch!r} do not include Qwen2ForCausalLM")
        # Defaults are those of transformers' Qwen2Config.
        g = lambda k, v: d.get(k, v) if d.get(k) is not None else v  # noqa: E731
        hidden = int(g("hidden_size", 4096))
        heads = int(g("num_attention_heads", 32))
        kv = int(g("num_key_value_heads", heads))
        layers = int(g("num_hidden_layers", 32))
        act = g("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"hidden_act {act!r} is not supported (Qwen2 uses silu)")
        # modeling_qwen2.Qwen2Attention: getattr(config, "head_dim", hidden_size // num_attention_heads)
        head_dim = d.get("head_dim") or None
        if head_dim is None:
            if hidden % heads:
                raise ConfigError(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
            head_dim = hidden // heads
        head_dim = int(head_dim)
        if heads % kv:
            raise ConfigError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        if head_dim % 2:
            raise ConfigError(f"head_dim {head_dim} must be even for rotary embeddings")
        if float(d.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
            raise ConfigError("partial_rotary_factor != 1 is not supported")
        # rope: v4 configs have rope_theta (+ rope_scaling), v5 configs rope_parameters
        rp = d.get("rope_parameters") or {}
        theta = rp.get("rope_theta", d.get("rope_theta", 10000.0))
        for scaling in (d.get("rope_scaling"), rp):
            if scaling:
                rtype = scaling.get("rope_type", scaling.get("type", "default"))
                if rtype != "default":
                    raise ConfigError(f"rope scaling type {rtype!r} is not supported by the reference")
        sliding = None
        if d.get("use_sliding_window", False):
            sliding = int(g("sliding_window", 4096))
        layer_types = d.get("layer_types")
        if layer_types is None:
            mwl = int(g("max_window_layers", 28))
            layer_types = [
                "sliding_attention" if sliding is not None and i >= mwl else "full_attention" for i in range(layers)
            ]
        if len(layer_types) != layers:
            raise ConfigError("layer_types has the wrong length")
        return Qwen2Config(
            vocab_size=int(g("vocab_size", 151936)),
            hidden_size=hidden,
            intermediate_size=int(g("intermediate_size", 22016)),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv,
            head_dim=head_dim,
            rms_norm_eps=float(g("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            layer_types=list(layer_types),
            sliding_window=sliding,
            pad_token_id=d.get("pad_token_id"),
            max_position_embeddings=int(g("max_position_embeddings", 32768)),
            raw=dict(d),
        )

    def linear_shapes(self) -> Dict[str, Tuple[int, int]]:
        """Short module name -> (out_features, in_features) for each adaptable Linear."""
        H, D = self.hidden_size, self.head_dim
        return {
            "q_proj": (self.num_attention_heads * D, H),
            "k_proj": (self.num_key_value_heads * D, H),
            "v_proj": (self.num_key_value_heads * D, H),
            "o_proj": (H, self.num_attention_heads * D),
            "gate_proj": (self.intermediate_size, H),
            "up_proj": (self.intermediate_size, H),
            "down_proj": (H, self.intermediate_size),
        }

    def linear_modules(self) -> Dict[str, Tuple[int, int]]:
        """Full module name (as in model.named_modules()) -> (out, in) for every nn.Linear."""
        shapes = self.linear_shapes()
        mods: Dict[str, Tuple[int, int]] = {}
        for i in range(self.num_hidden_layers):
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                mods[f"model.layers.{i}.self_attn.{n}"] = shapes[n]
            for n in ("gate_proj", "up_proj", "down_proj"):
                mods[f"model.layers.{i}.mlp.{n}"] = shapes[n]
        mods["lm_head"] = (self.vocab_size, self.hidden_size)
        return mods

    def all_module_names(self) -> List[str]:
        """Every module name of Qwen2ForCausalLM.named_modules() (for PEFT target matching)."""
        names = ["model", "model.embed_tokens", "model.layers"]
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}"
            names += [p, f"{p}.self_attn"]
            names += [f"{p}.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
            names += [f"{p}.self_attn.rotary_emb", f"{p}.mlp"]
            names += [f"{p}.mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")]
            names += [f"{p}.mlp.act_fn", f"{p}.input_layernorm", f"{p}.post_attention_layernorm"]
        names += ["model.norm", "model.rotary_emb", "lm_head"]
        return names

    def weight_names(self) -> List[str]:
        names = ["model.embed_tokens.weight"]
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}"
            for n in ("q_proj", "k_proj", "v_proj"):
                names += [f"{p}.self_attn.{n}.weight", f"{p}.self_attn.{n}.bias"]
            names.append(f"{p}.self_attn.o_proj.weight")
            names += [f"{p}.mlp.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")]
            names += [f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"]
        names.append("model.norm.weight")
        if not self.tie_word_embeddings:
            names.append("lm_head.weight")
        return names

    def weight_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, V = self.hidden_size, self.vocab_size
        lin = self.linear_shapes()
        out: Dict[str, Tuple[int, ...]] = {}
        for n in self.weight_names():
            short = n.split(".")[-2]
            if n == "model.embed_tokens.weight" or n == "lm_head.weight":
                out[n] = (V, H)
            elif n.endswith("layernorm.weight") or n == "model.norm.weight":
                out[n] = (H,)
            elif n.endswith(".bias"):
                out[n] = (lin[short][0],)
            else:
                out[n] = lin[short]
        return out


def read_config(model_dir: str) -> Qwen2Config:
    p = os.path.join(model_dir, "config.json")
    if not os.path.isfile(p):
        raise ConfigError(f"{model_dir}: no config.json")
    with open(p, "r", encoding="utf-8") as f:
        return Qwen2Config.from_dict(json.load(f))


def _weight_files(model_dir: str) -> Dict[str, List[str]]:
    """file path -> tensor names to read from it."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.isfile(idx):
        with open(idx, "r", encoding="utf-8") as f:
            wm = json.load(f).get("weight_map")
        if not isinstance(wm, dict):
            raise ConfigError(f"{idx}: no weight_map")
        files: Dict[str, List[str]] = {}
        for name, shard in wm.items():
            if os.path.basename(shard) != shard:
                raise ConfigError(f"{idx}: shard name {shard!r} is not a plain file name")
            files.setdefault(os.path.join(model_dir, shard), []).append(name)
        return files
    if os.path.isfile(single):
        header, _, _ = read_safetensors_header(single)
        return {single: list(header)}
    raise ConfigError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")


# ---------------------------------------------------------------------------
# LoRA (PEFT semantics)
# ---------------------------------------------------------------------------

PEFT_PREFIX = "base_model.model."


class AdapterError(ValueError):
    pass


def _peft_target_matches(cfg: Dict[str, Any], key: str, all_linear: set) -> bool:
    """peft.tuners.tuners_utils.check_target_module_exists, for the parts that apply to Qwen2."""
    excl = cfg.get("exclude_modules")
    if excl:
        if isinstance(excl, str):
            if re.fullmatch(excl, key):
                return False
        elif key in excl or any(key.endswith(f".{e}") for e in excl):
            return False
    tm = cfg.get("target_modules")
    if isinstance(tm, str):
        if tm.lower() == "all-linear":
            # _maybe_include_all_linear_layers: every nn.Linear except the output embedding (lm_head)
            return key in all_linear and key != "lm_head"
        return re.fullmatch(tm, key) is not None
    if not tm:
        return False
    if key in tm:
        return True
    found = any(key.endswith(f".{t}") for t in tm)
    lt = cfg.get("layers_to_transform")
    using_idx = lt is not None and (len(lt) != 0 if isinstance(lt, list) else True)
    if using_idx and found:
        lp = cfg.get("layers_pattern")
        m = None
        if lp is None or len(lp) == 0:
            m = re.match(r".*?\.[^.]*\.(\d+)\.", key)
        else:
            for pat in [lp] if isinstance(lp, str) else lp:
                m = re.match(rf".*?\.{pat}\.(\d+)\.", key)
                if m is not None:
                    break
        if m is None:
            return False
        li = int(m.group(1))
        return li == lt if isinstance(lt, int) else li in lt
    return found


def _pattern_value(patterns: Dict[str, Any], key: str, default: Any) -> Any:
    """peft.utils.other.get_pattern_key + dict.get: the first pattern p with re.match(rf"(.*\\.)?({p})$", key)."""
    for p in patterns or {}:
        if re.match(rf"(.*\.)?({p})$", key):
            return patterns[p]
    return default


@dataclass
class LoraModule:
    module: str  # e.g. model.layers.0.self_attn.q_proj
    r: int
    alpha: float
    scale: float
    key_a: str  # PEFT key names (with base_model.model. prefix)
    key_b: str
    key_bias: Optional[str]


class LoraAdapter:
    """A PEFT LoRA adapter: y = x W^T + b + (x A^T B^T + b_B) * scale."""

    def __init__(self, config: Dict[str, Any], modules: Dict[str, LoraModule], tensors: Dict[str, torch.Tensor],
                 path: Optional[str] = None):
        self.config = config
        self.modules = modules
        self.tensors = tensors
        self.path = path

    def with_tensors(self, tensors: Dict[str, torch.Tensor]) -> "LoraAdapter":
        return LoraAdapter(self.config, self.modules, tensors, self.path)

    def trainable_keys(self) -> List[str]:
        keys: List[str] = []
        for m in self.modules.values():
            keys += [m.key_a, m.key_b] + ([m.key_bias] if m.key_bias else [])
        return keys

    @staticmethod
    def build(cfg: Qwen2Config, config: Dict[str, Any], tensors: Dict[str, torch.Tensor],
              path: str = "<memory>") -> "LoraAdapter":
        pt = config.get("peft_type", "LORA")
        if pt != "LORA":
            raise AdapterError(f"{path}: peft_type {pt!r} is not LORA")
        for flag in ("use_dora", "use_qalora"):
            if config.get(flag):
                raise AdapterError(f"{path}: {flag}=true is not supported")
        for opt in ("modules_to_save", "target_parameters", "trainable_token_indices", "alora_invocation_tokens",
                    "layer_replication"):
            if config.get(opt):
                raise AdapterError(f"{path}: {opt} is not supported")
        if config.get("bias", "none") != "none":
            raise AdapterError(f"{path}: bias={config.get('bias')!r} (trained base biases) is not supported")
        if "r" not in config or "lora_alpha" not in config:
            raise AdapterError(f"{path}: adapter_config.json needs r and lora_alpha")
        use_rslora = bool(config.get("use_rslora", False))
        lora_bias = bool(config.get("lora_bias", False))
        linear = cfg.linear_modules()
        # Normalise key names: accept the PEFT prefix or none (transformers' integration).
        norm: Dict[str, torch.Tensor] = {}
        for k, v in tensors.items():
            nk = k if k.startswith(PEFT_PREFIX) else PEFT_PREFIX + k
            norm[nk] = v
        modules: Dict[str, LoraModule] = {}
        used = set()
        for name in cfg.all_module_names():
            if not _peft_target_matches(config, name, set(linear)):
                continue
            if name not in linear:
                if name.endswith("embed_tokens"):
                    raise AdapterError(f"{path}: LoRA on embeddings is not supported")
                # PEFT would reject non-Linear targets too
                raise AdapterError(f"{path}: target {name!r} is not a Linear layer")
            out_f, in_f = linear[name]
            r = int(_pattern_value(config.get("rank_pattern") or {}, name, config["r"]))
            alpha = float(_pattern_value(config.get("alpha_pattern") or {}, name, config["lora_alpha"]))
            if r <= 0:
                raise AdapterError(f"{path}: r must be positive for {name}")
            scale = alpha / math.sqrt(r) if use_rslora else alpha / r
            ka = f"{PEFT_PREFIX}{name}.lora_A.weight"
            kb = f"{PEFT_PREFIX}{name}.lora_B.weight"
            kbias = f"{PEFT_PREFIX}{name}.lora_B.bias" if lora_bias else None
            for k, shape in ((ka, (r, in_f)), (kb, (out_f, r))) + (((kbias, (out_f,)),) if kbias else ()):
                if k not in norm:
                    raise AdapterError(f"{path}: adapter_model.safetensors lacks {k}")
                if tuple(norm[k].shape) != shape:
                    raise AdapterError(f"{path}: {k} has shape {list(norm[k].shape)}, expected {list(shape)}")
                used.add(k)
            modules[name] = LoraModule(name, r, alpha, scale, ka, kb, kbias)
        extra = sorted(set(norm) - used)
        if extra:
            raise AdapterError(f"{path}: tensors not matched by target_modules: {extra[:5]}")
        if not modules:
            raise AdapterError(f"{path}: target_modules match no Linear layer")
        return LoraAdapter(config, modules, {k: norm[k] for k in used}, path)


def load_adapter(cfg: Qwen2Config, adapter_dir: str, dtype: torch.dtype = torch.float64) -> LoraAdapter:
    cp = os.path.join(adapter_dir, "adapter_config.json")
    wp = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.isfile(cp):
        raise AdapterError(f"{adapter_dir}: no adapter_config.json")
    if not os.path.isfile(wp):
        raise AdapterError(f"{adapter_dir}: no adapter_model.safetensors")
    with open(cp, "r", encoding="utf-8") as f:
        config = json.load(f)
    return LoraAdapter.build(cfg, config, read_safetensors(wp, dtype=dtype), adapter_dir)


def write_adapter(out_dir: str, adapter: LoraAdapter, dtype: str = "F32") -> None:
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), adapter.tensors, dtype=dtype)
    with open(os.path.join(out_dir, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(adapter.config, f, indent=2, sort_keys=True)


def peft_adapter_config(r: int, alpha: float, targets: Any, base: str = "", use_rslora: bool = False,
                        layers: Optional[List[int]] = None, rank_pattern: Optional[Dict] = None,
                        alpha_pattern: Optional[Dict] = None, lora_bias: bool = False) -> Dict[str, Any]:
    """An adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (the fields that matter)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": r,
        "lora_alpha": alpha,
        "target_modules": targets,
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": use_rslora,
        "use_dora": False,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "layers_to_transform": layers,
        "layers_pattern": None,
        "rank_pattern": rank_pattern or {},
        "alpha_pattern": alpha_pattern or {},
        "modules_to_save": None,
        "exclude_modules": None,
        "lora_bias": lora_bias,
        "inference_mode": True,
        "revision": None,
    }


class LoraBatch:
    """Per-row adapter assignment: ``rows[b]`` is an index into ``adapters`` or -1 (frozen base)."""

    def __init__(self, adapters: Sequence[LoraAdapter], rows: Sequence[int]):
        self.adapters = list(adapters)
        self.rows = list(rows)
        B = len(self.rows)
        self.groups: List[Tuple[LoraAdapter, Optional[torch.Tensor]]] = []
        for i, ad in enumerate(self.adapters):
            idx = [b for b in range(B) if self.rows[b] == i]
            if not idx:
                continue
            self.groups.append((ad, None if len(idx) == B else torch.tensor(idx, dtype=torch.long)))

    def apply(self, x: torch.Tensor, name: str, y: torch.Tensor) -> torch.Tensor:
        """peft lora.Linear.forward / _mixed_batch_forward: result + lora_B(lora_A(x)) * scaling."""
        for ad, idx in self.groups:
            m = ad.modules.get(name)
            if m is None:
                continue
            t = ad.tensors
            xs = x if idx is None else x.index_select(0, idx)
            bias = t[m.key_bias] if m.key_bias else None
            d = F.linear(F.linear(xs, t[m.key_a]), t[m.key_b], bias) * m.scale
            y = y + d if idx is None else y.index_add(0, idx, d)
        return y


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------


class KVCache:
    """Preallocated contiguous cache: k, v are [layers, batch, kv_heads, max_len, head_dim]."""

    def __init__(self, n_layers: int, batch: int, n_kv: int, max_len: int, head_dim: int, dtype: torch.dtype):
        self.k = torch.zeros(n_layers, batch, n_kv, max_len, head_dim, dtype=dtype)
        self.v = torch.zeros(n_layers, batch, n_kv, max_len, head_dim, dtype=dtype)
        self.length = 0
        self.max_len = max_len

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s, T = self.length, k.shape[2]
        if s + T > self.max_len:
            raise ValueError(f"KV cache overflow: {s}+{T} > {self.max_len}")
        self.k[layer, :, :, s:s + T] = k
        self.v[layer, :, :, s:s + T] = v
        return self.k[layer, :, :, :s + T], self.v[layer, :, :, :s + T]


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """transformers GenerationMixin.prepare_inputs_for_generation: cumsum(mask) - 1, pads set to 1."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def default_inv_freq(theta: float, dim: int) -> torch.Tensor:
    """modeling_rope_utils._compute_default_rope_parameters, bit for bit (float32)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


class Qwen2:
    """Functional Qwen2ForCausalLM.  ``params`` maps HF weight names to tensors; a tied model has
    no lm_head.weight and uses model.embed_tokens.weight as the output projection."""

    def __init__(self, cfg: Qwen2Config, params: Dict[str, torch.Tensor], dtype: torch.dtype = torch.float64,
                 rope: str = "hf"):
        self.cfg = cfg
        self.dtype = dtype
        self.params = params
        self.rope = rope
        self.inv_freq32 = default_inv_freq(cfg.rope_theta, cfg.head_dim)
        d = cfg.head_dim
        self.inv_freq64 = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).double() / d))

    # -- pieces -------------------------------------------------------------

    def _norm_dtype(self) -> torch.dtype:
        # Qwen2RMSNorm upcasts to float32; float64 runs stay in float64.
        return torch.float64 if self.dtype == torch.float64 else torch.float32

    def rms_norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Qwen2RMSNorm.forward: weight * (x * rsqrt(mean(x^2) + eps)).to(input_dtype)."""
        in_dtype = x.dtype
        h = x.to(self._norm_dtype())
        var = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(var + self.cfg.rms_norm_eps)
        return w * h.to(in_dtype)

    def rope_cos_sin(self, pos: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Qwen2RotaryEmbedding.forward: angles and cos/sin in float32, then cast to the compute dtype.
        rope='exact' computes everything in float64 instead."""
        if self.rope == "exact":
            freqs = pos.double()[:, :, None] * self.inv_freq64[None, None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        # inv_freq[None,:,None] @ pos[:,None,:] is an outer product: one float32 rounding per entry
        freqs = (self.inv_freq32[None, :, None] * pos[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    @staticmethod
    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def linear(self, x: torch.Tensor, name: str, p: Dict[str, torch.Tensor], lora: Optional[LoraBatch],
               bias: bool = False) -> torch.Tensor:
        y = F.linear(x, p[name + ".weight"], p[name + ".bias"] if bias else None)
        return lora.apply(x, name, y) if lora is not None else y

    # -- forward ------------------------------------------------------------

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor, *,
                lora: Optional[LoraBatch] = None, cache: Optional[KVCache] = None,
                params: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """ids, pos: [B, T] (the new tokens); key_mask: [B, past + T] (1 = real token).
        Returns the final-normed hidden states [B, T, hidden]."""
        cfg, p = self.cfg, (params if params is not None else self.params)
        B, T = ids.shape
        past = cache.length if cache is not None else 0
        S = past + T
        if key_mask.shape != (B, S):
            raise ValueError(f"key_mask shape {tuple(key_mask.shape)} != {(B, S)}")
        H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        n_rep = H // KV
        scaling = D ** -0.5
        neg = torch.finfo(self.dtype).min

        q_idx = torch.arange(past, S)[:, None]
        k_idx = torch.arange(S)[None, :]
        allowed_full = (k_idx <= q_idx)[None, None] & key_mask.bool()[:, None, None, :]  # [B,1,T,S]
        allowed_sw = None
        if cfg.sliding_window is not None:
            # masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window
            allowed_sw = allowed_full & (k_idx > q_idx - cfg.sliding_window)[None, None]

        cos, sin = self.rope_cos_sin(pos)
        cos, sin = cos[:, None], sin[:, None]  # [B,1,T,D]

        # nn.Embedding(vocab, hidden, padding_idx=pad_token_id): only the backward differs (the
        # pad row of embed_tokens gets no gradient from the lookup)
        pad = cfg.pad_token_id if isinstance(cfg.pad_token_id, int) and 0 <= cfg.pad_token_id < cfg.vocab_size \
            else None
        h = F.embedding(ids, p["model.embed_tokens.weight"], padding_idx=pad)
        for i in range(cfg.num_hidden_layers):
            pre = f"model.layers.{i}"
            resid = h
            x = self.rms_norm(h, p[f"{pre}.input_layernorm.weight"])
            q = self.linear(x, f"{pre}.self_attn.q_proj", p, lora, bias=True).view(B, T, H, D).transpose(1, 2)
            k = self.linear(x, f"{pre}.self_attn.k_proj", p, lora, bias=True).view(B, T, KV, D).transpose(1, 2)
            v = self.linear(x, f"{pre}.self_attn.v_proj", p, lora, bias=True).view(B, T, KV, D).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            if cache is not None:
                k, v = cache.append(i, k, v)
            # repeat_kv without copies: query head h uses kv head h // n_rep
            qg = q.reshape(B, KV, n_rep * T, D)
            scores = torch.matmul(qg, k.transpose(-1, -2)).view(B, H, T, S) * scaling
            allowed = allowed_sw if cfg.layer_types[i] == "sliding_attention" else allowed_full
            scores = scores.masked_fill(~allowed, neg)
            probs = torch.softmax(scores, dim=-1)
            o = torch.matmul(probs.view(B, KV, n_rep * T, S), v).view(B, H, T, D)
            o = o.transpose(1, 2).reshape(B, T, H * D)
            h = resid + self.linear(o, f"{pre}.self_attn.o_proj", p, lora)
            resid = h
            x = self.rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"])
            g = self.linear(x, f"{pre}.mlp.gate_proj", p, lora)
            u = self.linear(x, f"{pre}.mlp.up_proj", p, lora)
            h = resid + self.linear(F.silu(g) * u, f"{pre}.mlp.down_proj", p, lora)
        if cache is not None:
            cache.length = S
        return self.rms_norm(h, p["model.norm.weight"])

    def logits(self, h: torch.Tensor, lora: Optional[LoraBatch] = None,
               params: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        p = params if params is not None else self.params
        w = p["lm_head.weight"] if "lm_head.weight" in p else p["model.embed_tokens.weight"]
        y = F.linear(h, w)
        return lora.apply(h, "lm_head", y) if lora is not None else y

    def next_token_logprobs(self, h: torch.Tensor, targets: torch.Tensor, lora: Optional[LoraBatch] = None,
                            params: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """log softmax(logits(h))[targets] for h [B,T,H], targets [B,T] -> [B,T].  Chunked over
        positions when no gradient is needed, to bound the [B,T,vocab] temporaries."""
        B, T, _ = h.shape
        V = self.cfg.vocab_size
        if torch.is_grad_enabled():
            chunk = T
        else:
            chunk = max(1, (1 << 25) // max(1, B * V))
        parts = []
        for t0 in range(0, T, chunk):
            lg = self.logits(h[:, t0:t0 + chunk], lora, params)
            ls = torch.log_softmax(lg, dim=-1)
            parts.append(ls.gather(-1, targets[:, t0:t0 + chunk, None]).squeeze(-1))
        return torch.cat(parts, dim=1)


def load_model(model_dir: str, dtype: torch.dtype = torch.float64, rope: str = "hf") -> Qwen2:
    cfg = read_config(model_dir)
    files = _weight_files(model_dir)
    expected = cfg.weight_shapes()
    params: Dict[str, torch.Tensor] = {}
    for path, names in files.items():
        want = [n for n in names if n in expected]
        if not os.path.isfile(path):
            raise ConfigError(f"{model_dir}: missing shard {os.path.basename(path)}")
        params.update(read_safetensors(path, want, dtype=dtype))
    if cfg.tie_word_embeddings:
        params.pop("lm_head.weight", None)  # tied: lm_head is the embedding matrix
    missing = [n for n in expected if n not in params]
    if missing:
        raise ConfigError(f"{model_dir}: missing weights {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for n, s in expected.items():
        if tuple(params[n].shape) != tuple(s):
            raise ConfigError(f"{model_dir}: {n} has shape {list(params[n].shape)}, expected {list(s)}")
    return Qwen2(cfg, params, dtype, rope)


TINY_CONFIG: Dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 2,
    "torch_dtype": "float32",
}


def write_checkpoint(out_dir: str, config: Optional[Dict[str, Any]] = None, seed: int = 0, std: float = 0.2,
                     norm_jitter: float = 0.2, save_dtype: str = "F32", shards: int = 1) -> Dict[str, torch.Tensor]:
    """Writes a random Qwen2 checkpoint in Hugging Face layout (config.json plus model.safetensors,
    or ``shards`` files with model.safetensors.index.json).  ``config`` overrides TINY_CONFIG.
    Returns the float64 weights before rounding to ``save_dtype``."""
    conf = dict(TINY_CONFIG, **(config or {}))
    cfg = Qwen2Config.from_dict(conf)
    if save_dtype not in ("F32", "F16", "BF16", "F64"):
        raise RequestError("save_dtype must be F32, F16, BF16 or F64")
    if not isinstance(shards, int) or shards < 1:
        raise RequestError("shards must be a positive integer")
    params = random_params(cfg, seed=seed, std=std, dtype=torch.float64, norm_jitter=norm_jitter)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=2)
    for stale in ("model.safetensors", "model.safetensors.index.json"):
        if os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), params, dtype=save_dtype)
    else:
        names = sorted(params)
        wm: Dict[str, str] = {}
        for s in range(shards):
            part = names[s::shards]
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(os.path.join(out_dir, fn), {n: params[n] for n in part}, dtype=save_dtype)
            wm.update({n: fn for n in part})
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f, indent=2)
    return params


def random_params(cfg: Qwen2Config, seed: int = 0, std: float = 0.02, dtype: torch.dtype = torch.float32,
                  norm_jitter: float = 0.1) -> Dict[str, torch.Tensor]:
    """Random weights of a Qwen2 shape (for tests and benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    out: Dict[str, torch.Tensor] = {}
    for n, s in cfg.weight_shapes().items():
        if n.endswith("norm.weight"):
            out[n] = (1.0 + norm_jitter * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype)
        else:
            out[n] = (std * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype)
    return out


# ---------------------------------------------------------------------------
# batches and losses
# ---------------------------------------------------------------------------


class RequestError(ValueError):
    pass


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] long, pads replaced by 0
    mask: torch.Tensor  # [B, T] long 0/1
    pos: torch.Tensor  # [B, T]
    adapters: List[int]
    offsets: List[int]  # row b's given position i is padded position offsets[b] + i
    lengths: List[int]
    valid: torch.Tensor  # [B, T] bool: log p(ids[t] | ids[<t]) is defined (t and t-1 are real)

    def to_rows(self, x: torch.Tensor) -> List[List[Optional[float]]]:
        xs, vs = x.detach().tolist(), self.valid.tolist()
        out = []
        for b, (o, n) in enumerate(zip(self.offsets, self.lengths)):
            out.append([xs[b][o + i] if vs[b][o + i] else None for i in range(n)])
        return out

    def from_rows(self, rows: Any, what: str, dtype: torch.dtype, required_zero_outside: bool = False,
                  default: Optional[float] = None, need: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-row lists (row coordinates) -> [B, T] tensor in padded coordinates (0 at pads).
        ``need``: [B, T] bool, positions where a number (not null) is required."""
        B, T = self.ids.shape
        if rows is None:
            if default is None:
                raise RequestError(f"{what} is required")
            return torch.full((B, T), float(default), dtype=dtype)
        if not isinstance(rows, list) or len(rows) != B:
            raise RequestError(f"{what} must be a list with one list per row ({B})")
        out = torch.zeros(B, T, dtype=dtype)
        for b, r in enumerate(rows):
            if not isinstance(r, list) or len(r) != self.lengths[b]:
                raise RequestError(f"{what}[{b}] must have {self.lengths[b]} entries (the row's length)")
            for i, v in enumerate(r):
                if v is None:
                    if need is not None and bool(need[b, self.offsets[b] + i]):
                        raise RequestError(f"{what}[{b}][{i}] is null but that token has a nonzero weight")
                    continue
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    raise RequestError(f"{what}[{b}][{i}] is not a finite number")
                if required_zero_outside and v != 0 and not bool(self.valid[b, self.offsets[b] + i]):
                    raise RequestError(
                        f"{what}[{b}][{i}] is {v} but position {i} has no log-prob (first token or padding)")
                out[b, self.offsets[b] + i] = float(v)
        return out


def make_batch(rows: Any, n_adapters: int, vocab: int) -> Batch:
    if not isinstance(rows, list) or not rows:
        raise RequestError("rows must be a non-empty list")
    ids_l, mask_l, ads = [], [], []
    for b, r in enumerate(rows):
        if not isinstance(r, dict):
            raise RequestError(f"rows[{b}] must be an object")
        ids = r.get("ids")
        if not isinstance(ids, list) or not ids:
            raise RequestError(f"rows[{b}].ids must be a non-empty list")
        mask = r.get("mask", [1] * len(ids))
        if not isinstance(mask, list) or len(mask) != len(ids):
            raise RequestError(f"rows[{b}].mask must have the same length as ids")
        for i, (t, m) in enumerate(zip(ids, mask)):
            if m not in (0, 1) or isinstance(m, bool):
                raise RequestError(f"rows[{b}].mask[{i}] must be 0 or 1")
            if not isinstance(t, int) or isinstance(t, bool):
                raise RequestError(f"rows[{b}].ids[{i}] is not an integer")
            if m == 1 and not (0 <= t < vocab):
                raise RequestError(f"rows[{b}].ids[{i}]={t} is outside the vocabulary [0, {vocab})")
        ones = [i for i, m in enumerate(mask) if m == 1]
        if not ones:
            raise RequestError(f"rows[{b}].mask has no 1")
        if ones[-1] - ones[0] + 1 != len(ones):
            raise RequestError(f"rows[{b}].mask must be one block of 1s (left and/or right padding only)")
        a = r.get("adapter", -1)
        if not isinstance(a, int) or isinstance(a, bool) or not (-1 <= a < n_adapters):
            raise RequestError(f"rows[{b}].adapter must be -1 or an index into adapters (0..{n_adapters - 1})")
        ids_l.append([t if m == 1 else 0 for t, m in zip(ids, mask)])
        mask_l.append(mask)
        ads.append(a)
    T = max(len(x) for x in ids_l)
    offsets = [T - len(x) for x in ids_l]
    ids_t = torch.tensor([[0] * o + x for o, x in zip(offsets, ids_l)], dtype=torch.long)
    mask_t = torch.tensor([[0] * o + m for o, m in zip(offsets, mask_l)], dtype=torch.long)
    valid = torch.zeros(len(rows), T, dtype=torch.bool)
    valid[:, 1:] = (mask_t[:, 1:] == 1) & (mask_t[:, :-1] == 1)
    return Batch(ids_t, mask_t, position_ids_from_mask(mask_t), ads, offsets, [len(x) for x in ids_l], valid)


def batch_logprobs(model: Qwen2, batch: Batch, lora: Optional[LoraBatch],
                   params: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
    """[B, T]: lp[b, t] = log p(ids[b,t] | ids[b,<t]) where valid, 0 elsewhere."""
    h = model.forward(batch.ids, batch.pos, batch.mask, lora=lora, params=params)
    lp = torch.zeros(batch.ids.shape, dtype=model.dtype)
    lp_next = model.next_token_logprobs(h[:, :-1], batch.ids[:, 1:], lora, params)
    lp = torch.cat([lp[:, :1], lp_next], dim=1)
    return torch.where(batch.valid, lp, torch.zeros_like(lp))


def batch_logprobs_kv(model: Qwen2, batch: Batch, lora: Optional[LoraBatch], split: int) -> torch.Tensor:
    B, T = batch.ids.shape
    if not (1 <= split <= T):
        raise RequestError(f"split must be in 1..{T} (the padded batch length)")
    cache = KVCache(model.cfg.num_hidden_layers, B, model.cfg.num_key_value_heads, T, model.cfg.head_dim,
                    model.dtype)
    hs = [model.forward(batch.ids[:, :split], batch.pos[:, :split], batch.mask[:, :split], lora=lora, cache=cache)]
    for t in range(split, T):
        hs.append(model.forward(batch.ids[:, t:t + 1], batch.pos[:, t:t + 1], batch.mask[:, :t + 1], lora=lora,
                                cache=cache))
    h = torch.cat(hs, dim=1)
    lp_next = model.next_token_logprobs(h[:, :-1], batch.ids[:, 1:], lora)
    lp = torch.cat([torch.zeros(B, 1, dtype=model.dtype), lp_next], dim=1)
    return torch.where(batch.valid, lp, torch.zeros_like(lp))


def compute_loss(lp: torch.Tensor, batch: Batch, spec: Any, dtype: torch.dtype) -> torch.Tensor:
    """Losses of the grad/sgd ops (see README.md)."""
    if not isinstance(spec, dict):
        raise RequestError("loss must be an object")
    kind = spec.get("type")
    w = batch.from_rows(spec.get("weights"), "loss.weights", dtype, required_zero_outside=True)
    if kind == "nll":
        return (w * -lp).sum()
    if kind == "pg":
        need = w != 0
        adv = batch.from_rows(spec.get("advantages"), "loss.advantages", dtype, need=need)
        old = batch.from_rows(spec.get("old_logprobs"), "loss.old_logprobs", dtype, need=need)
        eps = float(spec.get("clip_eps", 0.2))
        b1 = float(spec.get("kl_k1", 0.0))
        b3 = float(spec.get("kl_k3", 0.0))
        ref_given = spec.get("ref_logprobs") is not None
        ref = batch.from_rows(spec.get("ref_logprobs"), "loss.ref_logprobs", dtype,
                              default=None if (b1 or b3) else 0.0, need=need if (b1 or b3) else None)
        # positions without a log-prob carry weight 0; keep them finite (0 * inf would be NaN)
        lpv = torch.where(batch.valid, lp, torch.zeros_like(lp))
        old = torch.where(batch.valid, old, lpv.detach())
        ref = torch.where(batch.valid, ref, lpv.detach()) if ref_given else lpv.detach()
        ratio = torch.exp(lpv - old)
        pg = -torch.min(ratio * adv, torch.clamp(ratio, 1.0 - eps, 1.0 + eps) * adv)
        k1 = lpv - ref
        k3 = torch.exp(ref - lpv) - (ref - lpv) - 1.0
        return (w * (pg + b1 * k1 + b3 * k3)).sum()
    raise RequestError(f"unknown loss type {kind!r} (nll or pg)")


# ---------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _files_stamp(paths: Sequence[str]) -> Tuple:
    st = []
    for p in paths:
        try:
            s = os.stat(p)
            st.append((p, s.st_mtime_ns, s.st_size))
        except OSError:
            st.append((p, None, None))
    return tuple(st)


def _finite_json(x: Any) -> Any:
    """JSON cannot carry NaN/Infinity: encode them as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, list):
        return [_finite_json(v) for v in x]
    if isinstance(x, dict):
        return {k: _finite_json(v) for k, v in x.items()}
    return x


class Reference:
    """The server's operations, with small caches of loaded models and adapters."""

    def __init__(self, max_models: int = 2):
        self._models: Dict[Tuple, Qwen2] = {}
        self._adapters: Dict[Tuple, LoraAdapter] = {}
        self.max_models = max_models

    # -- loading ------------------------------------------------------------

    def model(self, req: Dict[str, Any]) -> Qwen2:
        d = req.get("model")
        if not isinstance(d, str) or not os.path.isdir(d):
            raise RequestError(f"model must be a model directory (got {d!r})")
        dname = req.get("dtype", "float64")
        if dname not in _DTYPES:
            raise RequestError("dtype must be float64 or float32")
        rope = req.get("rope", "hf")
        if rope not in ("hf", "exact"):
            raise RequestError("rope must be 'hf' or 'exact'")
        d = os.path.realpath(d)
        files = [os.path.join(d, "config.json")]
        try:
            files += list(_weight_files(d))
        except ConfigError:
            pass
        key = (d, dname, rope, _files_stamp(files))
        m = self._models.get(key)
        if m is None:
            for k in [k for k in self._models if k[0] == d]:
                del self._models[k]
            while len(self._models) >= self.max_models:
                del self._models[next(iter(self._models))]
            m = load_model(d, _DTYPES[dname], rope)
            self._models[key] = m
        return m

    def adapters(self, req: Dict[str, Any], model: Qwen2) -> List[LoraAdapter]:
        lst = req.get("adapters", [])
        if not isinstance(lst, list) or not all(isinstance(x, str) for x in lst):
            raise RequestError("adapters must be a list of adapter directories")
        out = []
        for d in lst:
            if not os.path.isdir(d):
                raise RequestError(f"adapter directory {d!r} does not exist")
            d = os.path.realpath(d)
            stamp = _files_stamp([os.path.join(d, "adapter_config.json"),
                                  os.path.join(d, "adapter_model.safetensors")])
            key = (d, id(model), model.dtype, stamp)
            a = self._adapters.get(key)
            if a is None:
                for k in [k for k in self._adapters if k[0] == d]:
                    del self._adapters[k]
                a = load_adapter(model.cfg, d, model.dtype)
                self._adapters[key] = a
            out.append(a)
        return out

    # -- dispatch -----------------------------------------------------------

    def handle(self, req: Any) -> Dict[str, Any]:
        if not isinstance(req, dict):
            raise RequestError("a request must be a JSON object")
        op = req.get("op")
        fn = getattr(self, "op_" + op, None) if isinstance(op, str) and op.isidentifier() else None
        if fn is None:
            raise RequestError(f"unknown op {op!r}")
        return _finite_json(fn(req))

    def op_ping(self, req: Dict[str, Any]) -> Dict[str, Any]:
        return {"torch": torch.__version__, "pid": os.getpid()}

    def op_info(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m = self.model(req)
        ads = self.adapters(req, m)
        c = m.cfg
        return {
            "config": {k: v for k, v in c.__dict__.items() if k != "raw"},
            "inv_freq": m.inv_freq32.tolist(),
            "adapters": [{name: {"r": mod.r, "alpha": mod.alpha, "scale": mod.scale}
                          for name, mod in a.modules.items()} for a in ads],
        }

    def _setup(self, req: Dict[str, Any]):
        m = self.model(req)
        ads = self.adapters(req, m)
        batch = make_batch(req.get("rows"), len(ads), m.cfg.vocab_size)
        return m, ads, batch, LoraBatch(ads, batch.adapters)

    def op_logprobs(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m, _, batch, lora = self._setup(req)
        with torch.no_grad():
            lp = batch_logprobs(m, batch, lora)
        return {"logprobs": batch.to_rows(lp)}

    def op_logprobs_kv(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m, _, batch, lora = self._setup(req)
        split = req.get("split")
        if not isinstance(split, int) or isinstance(split, bool):
            raise RequestError("split must be an integer")
        with torch.no_grad():
            lp = batch_logprobs_kv(m, batch, lora, split)
        return {"logprobs": batch.to_rows(lp)}

    def op_greedy(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m, _, batch, lora = self._setup(req)
        n = req.get("max_new_tokens")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > 100000:
            raise RequestError("max_new_tokens must be a non-negative integer")
        eos = req.get("eos_token_ids", [])
        if isinstance(eos, int):
            eos = [eos]
        if not isinstance(eos, list) or not all(isinstance(e, int) for e in eos):
            raise RequestError("eos_token_ids must be a list of token ids")
        if not bool((batch.mask[:, -1] == 1).all()):
            raise RequestError("greedy rows must not be right-padded")
        with torch.no_grad():
            toks, lps = greedy(m, batch, lora, n, set(eos))
        return {"ids": toks, "logprobs": lps}

    def _grad_common(self, req: Dict[str, Any]):
        m, ads, batch, _ = self._setup(req)
        trainable = req.get("trainable", "lora")
        if trainable not in ("lora", "full"):
            raise RequestError("trainable must be 'lora' or 'full'")
        train_ads = req.get("train_adapters", list(range(len(ads))))
        if not isinstance(train_ads, list) or any(not isinstance(i, int) or not 0 <= i < len(ads) for i in train_ads):
            raise RequestError("train_adapters must list adapter indices")
        return m, ads, batch, trainable, train_ads

    def _loss_and_grads(self, m: Qwen2, ads: List[LoraAdapter], batch: Batch, trainable: str,
                        train_ads: List[int], loss_spec: Any):
        leaves: Dict[str, torch.Tensor] = {}
        params = None
        if trainable == "full":
            params = {}
            for k, t in m.params.items():
                params[k] = t.detach().requires_grad_(True)  # shares storage; never written
                leaves[k] = params[k]
            ads_used = ads
        else:
            ads_used = []
            for i, a in enumerate(ads):
                if i in train_ads:
                    tens = {k: t.detach().clone().requires_grad_(True) for k, t in a.tensors.items()}
                    for k, t in tens.items():
                        leaves[f"{i}:{k}"] = t
                    ads_used.append(a.with_tensors(tens))
                else:
                    ads_used.append(a)
        lora = LoraBatch(ads_used, batch.adapters)
        with torch.enable_grad():
            lp = batch_logprobs(m, batch, lora, params)
            loss = compute_loss(lp, batch, loss_spec, m.dtype)
            names = list(leaves)
            gs = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
        grads = {n: (g if g is not None else torch.zeros_like(leaves[n])) for n, g in zip(names, gs)}
        return loss.detach(), grads, lp.detach(), leaves

    def op_grad(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m, ads, batch, trainable, train_ads = self._grad_common(req)
        loss, grads, lp, _ = self._loss_and_grads(m, ads, batch, trainable, train_ads, req.get("loss"))
        only = req.get("grad_names")
        if only is not None:
            missing = [n for n in only if n not in grads]
            if missing:
                raise RequestError(f"unknown grad_names {missing[:5]}")
            grads = {n: grads[n] for n in only}
        return {"loss": float(loss), "grads": {n: g.reshape(-1).tolist() for n, g in grads.items()},
                "shapes": {n: list(g.shape) for n, g in grads.items()},
                "token_logprobs": batch.to_rows(lp)}

    def op_sgd(self, req: Dict[str, Any]) -> Dict[str, Any]:
        m, ads, batch, trainable, train_ads = self._grad_common(req)
        if trainable != "lora":
            raise RequestError("sgd updates LoRA tensors only (trainable must be 'lora')")
        lr = req.get("lr")
        steps = req.get("steps", 1)
        if not isinstance(lr, (int, float)) or not math.isfinite(lr):
            raise RequestError("lr must be a number")
        if not isinstance(steps, int) or steps < 1 or steps > 10000:
            raise RequestError("steps must be a positive integer")
        out = req.get("out")
        outs = [out] if isinstance(out, str) else out
        if not isinstance(outs, list) or len(outs) != len(train_ads) or not all(isinstance(o, str) for o in outs):
            raise RequestError("out must be a directory (one trained adapter) or a list, one per trained adapter")
        save_dtype = req.get("save_dtype", "F32")
        if save_dtype not in ("F32", "F64", "F16", "BF16"):
            raise RequestError("save_dtype must be F32, F64, F16 or BF16")
        cur = [a.with_tensors({k: t.detach().clone() for k, t in a.tensors.items()}) for a in ads]
        losses = []
        for _ in range(steps):
            loss, grads, _, _ = self._loss_and_grads(m, cur, batch, "lora", train_ads, req.get("loss"))
            losses.append(float(loss))
            for i in train_ads:
                cur[i] = cur[i].with_tensors({k: t - lr * grads[f"{i}:{k}"] for k, t in cur[i].tensors.items()})
        with torch.no_grad():
            final = compute_loss(batch_logprobs(m, batch, LoraBatch(cur, batch.adapters)), batch, req.get("loss"),
                                 m.dtype)
        for i, o in zip(train_ads, outs):
            write_adapter(o, cur[i], save_dtype)
        return {"losses": losses, "final_loss": float(final), "out": outs}

    def op_make_model(self, req: Dict[str, Any]) -> Dict[str, Any]:
        out = req.get("out")
        if not isinstance(out, str):
            raise RequestError("out must be a directory path")
        conf = req.get("config", {})
        if not isinstance(conf, dict):
            raise RequestError("config must be an object (overrides of the tiny default config)")
        write_checkpoint(out, conf, seed=int(req.get("seed", 0)), std=float(req.get("std", 0.2)),
                         norm_jitter=float(req.get("norm_jitter", 0.2)), save_dtype=req.get("save_dtype", "F32"),
                         shards=req.get("shards", 1))
        with open(os.path.join(out, "config.json"), "r", encoding="utf-8") as f:
            return {"out": out, "config": json.load(f)}

    def op_make_adapter(self, req: Dict[str, Any]) -> Dict[str, Any]:
        d = req.get("model")
        if not isinstance(d, str) or not os.path.isdir(d):
            raise RequestError("model must be a model directory")
        out = req.get("out")
        if not isinstance(out, str):
            raise RequestError("out must be a directory path")
        cfg = read_config(d)
        r = req.get("r", 8)
        alpha = req.get("alpha", 16)
        targets = req.get("targets", ["q_proj", "k_proj", "v_proj", "o_proj"])
        ad = make_adapter(cfg, r=r, alpha=alpha, targets=targets, seed=int(req.get("seed", 0)),
                          init=req.get("init", "random"), std=float(req.get("std", 0.02)),
                          use_rslora=bool(req.get("use_rslora", False)), layers=req.get("layers"),
                          rank_pattern=req.get("rank_pattern"), alpha_pattern=req.get("alpha_pattern"),
                          base=d)
        write_adapter(out, ad, req.get("save_dtype", "F32"))
        return {"out": out, "modules": sorted(ad.modules), "keys": sorted(ad.tensors)}


def make_adapter(cfg: Qwen2Config, r: int = 8, alpha: float = 16, targets: Any = ("q_proj", "v_proj"),
                 seed: int = 0, init: str = "random", std: float = 0.02, use_rslora: bool = False,
                 layers: Optional[List[int]] = None, rank_pattern: Optional[Dict] = None,
                 alpha_pattern: Optional[Dict] = None, base: str = "") -> LoraAdapter:
    """A PEFT-format adapter.  init: 'random' (A, B ~ N(0, std^2)), 'zero_b' (A random, B = 0),
    'peft' (PEFT's default: A ~ kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in)), B = 0)."""
    if init not in ("random", "zero_b", "peft"):
        raise RequestError("init must be random, zero_b or peft")
    if not isinstance(r, int) or r <= 0:
        raise RequestError("r must be a positive integer")
    if isinstance(targets, tuple):
        targets = list(targets)
    config = peft_adapter_config(r, alpha, targets, base, use_rslora, layers, rank_pattern, alpha_pattern)
    linear = cfg.linear_modules()
    g = torch.Generator().manual_seed(seed)
    tensors: Dict[str, torch.Tensor] = {}
    for name in cfg.all_module_names():
        if name not in linear or not _peft_target_matches(config, name, set(linear)):
            continue
        out_f, in_f = linear[name]
        rr = int(_pattern_value(rank_pattern or {}, name, r))
        if init == "peft":
            a = (torch.rand(rr, in_f, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(in_f)
        else:
            a = std * torch.randn(rr, in_f, generator=g, dtype=torch.float64)
        b = std * torch.randn(out_f, rr, generator=g, dtype=torch.float64) if init == "random" else \
            torch.zeros(out_f, rr, dtype=torch.float64)
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b
    return LoraAdapter.build(cfg, config, tensors)


def greedy(model: Qwen2, batch: Batch, lora: Optional[LoraBatch], n: int, eos: set):
    """Batched greedy decoding with left padding and a KV cache (argmax, first index on ties)."""
    B, T = batch.ids.shape
    cfg = model.cfg
    cache = KVCache(cfg.num_hidden_layers, B, cfg.num_key_value_heads, T + n, cfg.head_dim, model.dtype)
    mask = batch.mask
    out: List[List[int]] = [[] for _ in range(B)]
    lps: List[List[float]] = [[] for _ in range(B)]
    done = [False] * B
    if n == 0:
        return out, lps
    h = model.forward(batch.ids, batch.pos, mask, lora=lora, cache=cache)[:, -1:]
    last_pos = batch.pos[:, -1:]
    for step in range(n):
        lg = model.logits(h, lora)[:, -1]
        tok = torch.argmax(lg, dim=-1)  # HF greedy: argmax of the raw logits
        ls = torch.log_softmax(lg, dim=-1)
        for b in range(B):
            if not done[b]:
                t = int(tok[b])
                out[b].append(t)
                lps[b].append(float(ls[b, t]))
                if t in eos:
                    done[b] = True
        if all(done) or step == n - 1:
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1)
        last_pos = last_pos + 1
        h = model.forward(tok[:, None], last_pos, mask, lora=lora, cache=cache)
    return out, lps
