"""Role adapters as PEFT LoRA adapters: created, loaded and saved with PEFT's own functions, in
PEFT's on-disk format (adapter_config.json + adapter_model.safetensors, keys without the adapter's
name), which the built-in engine reads and writes too.

An adapter folder from someone else is read by `read_adapter` before PEFT sees it: its documents as
files.py reads them, its sizes bounded, its regular expressions (`target_modules` as a string, the
keys of `rank_pattern` and `alpha_pattern`) evaluated here once, against this model's module names,
under a time limit, and every tensor it must hold located in the safetensors header with the shape
the model and its rank give. PEFT then gets a LoraConfig naming the modules and their ranks exactly,
so it never runs the file's patterns, and allocates only what the file holds.

A fingerprint is a hash of a policy's weights, the same function in both engines
(extension/engine/fingerprint.ts): SHA-256 over the tensors in key order, each as its key, its
shape and its float32 little-endian bytes; the first 16 hex digits. Equal weights give equal
fingerprints whichever engine holds them and whatever dtype they are stored in.
"""

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time

import regex
import torch

from .files import read_json, safetensors_header
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


# LoRA ranks above this are not LoRA (the built-in engine's limit); shapes are checked against the file.
MAX_RANK = 65_536
MAX_PATTERN_CHARS = 1024
MAX_PATTERNS = 4096
# All of one adapter's regular expressions against all of the model's module names.
PATTERN_SECONDS = 2.0


class _PatternTimeout(Exception):
    pass


class _Deadline:
    """One time budget for all of an adapter's patterns against all module names. Python's re cannot be
    interrupted (a signal-based limit works only on POSIX and on the main thread); the `regex` package
    (a transformers dependency) takes a timeout per call, on every platform and thread."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def fullmatch(self, pattern, name: str) -> bool:
        left = self.end - time.monotonic()
        if left <= 0:
            raise _PatternTimeout()
        try:
            return pattern.fullmatch(name, timeout=left) is not None
        except TimeoutError:
            raise _PatternTimeout() from None


def _compile(pattern, file: str, field: str):
    if not isinstance(pattern, str) or not pattern:
        raise CheckpointError(file, f"{field} must be a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise CheckpointError(file, f"{field} is a pattern of {len(pattern)} characters, more than {MAX_PATTERN_CHARS}")
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise CheckpointError(file, f"{field} {json.dumps(pattern[:100])} is not a regular expression: {e}") from None


def _number(v, file: str, field: str, integer: bool) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if integer:
        ok = ok and isinstance(v, int) and v <= MAX_RANK
    if not ok:
        raise CheckpointError(file, f"{field} must be a positive {'integer up to ' + str(MAX_RANK) if integer else 'number'}, got {json.dumps(v)}")
    return v


def _patterns(config: dict, key: str, file: str, integer: bool) -> dict:
    v = config.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise CheckpointError(file, f"{key} must be an object of pattern: value")
    if len(v) > MAX_PATTERNS:
        raise CheckpointError(file, f"{key} has {len(v)} patterns, more than {MAX_PATTERNS}")
    # PEFT matches a key against the end of a module's name: (.*\.)?(key)$
    return {_compile(rf"(?:.*\.)?(?:{k})", file, f"{key} key {json.dumps(k[:100])}"): _number(value, file, f"{key}[{json.dumps(k[:100])}]", integer) for k, value in v.items()}


def check_adapter_dir(adapter_dir: str) -> dict:
    """What can be refused without a model: the folder, adapter_config.json, no pickle; returns the config."""
    if not os.path.isdir(adapter_dir):
        raise CheckpointError(adapter_dir, "adapter directory does not exist")
    config_file = os.path.join(adapter_dir, "adapter_config.json")
    if not os.path.lexists(config_file):
        raise CheckpointError(config_file, "is missing; a PEFT adapter directory needs adapter_config.json")
    config = read_json(config_file)
    if not isinstance(config, dict):
        raise CheckpointError(config_file, "is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise CheckpointError(config_file, f"peft_type {config.get('peft_type')!r} is not supported (only LORA)")
    weights = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.lexists(weights):
        if os.path.lexists(os.path.join(adapter_dir, "adapter_model.bin")):
            raise CheckpointError(os.path.join(adapter_dir, "adapter_model.bin"), "holds the adapter as a pickle, which can run code when loaded, and is not loaded; save it with safe_serialization=True (adapter_model.safetensors)")
        raise CheckpointError(weights, "is missing")
    return config


def read_adapter(adapter_dir: str, linear: dict):
    """A LoraConfig naming exactly the modules (of `linear`: module name -> (in, out)) the adapter
    holds, with their ranks and alphas, after checking the folder against them; raises CheckpointError."""
    config = check_adapter_dir(adapter_dir)
    file = os.path.join(adapter_dir, "adapter_config.json")
    for key, bad, why in (("use_dora", True, "DoRA adapters (use_dora: true) are not supported"),
                          ("fan_in_fan_out", True, "fan_in_fan_out: true is not supported for these linear layers")):
        if config.get(key) is bad:
            raise CheckpointError(file, why)
    if config.get("bias", "none") != "none":
        raise CheckpointError(file, f"bias {json.dumps(config.get('bias'))} is not supported (only \"none\")")
    if config.get("modules_to_save"):
        raise CheckpointError(file, "modules_to_save is not supported")
    rank = _number(config.get("r"), file, "r", True)
    alpha = _number(config.get("lora_alpha", rank), file, "lora_alpha", False)
    ranks = _patterns(config, "rank_pattern", file, True)
    alphas = _patterns(config, "alpha_pattern", file, False)
    layers = config.get("layers_to_transform")
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if layers is not None and (not isinstance(layers, list) or len(layers) > 4096 or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers)):
        raise CheckpointError(file, "layers_to_transform must be a layer index or a list of at most 4096 of them")

    targets = config.get("target_modules")
    names = sorted(linear)
    deadline = _Deadline(PATTERN_SECONDS)
    try:
        if targets == "all-linear":
            chosen = names
        elif isinstance(targets, str):
            # PEFT: a string is a regular expression over the whole module name (re.fullmatch).
            pattern = _compile(targets, file, "target_modules")
            chosen = [n for n in names if deadline.fullmatch(pattern, n)]
        elif isinstance(targets, list) and targets and len(targets) <= MAX_PATTERNS and all(isinstance(t, str) for t in targets):
            chosen = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
            unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
            if unknown:
                raise CheckpointError(file, f"target module {json.dumps(unknown[0])} is not a linear layer of this model (targets: {', '.join(LORA_MODULES)})")
        else:
            raise CheckpointError(file, "target_modules must be a non-empty list of module names, a regular expression or \"all-linear\"")
        if layers is not None:
            chosen = [n for n in chosen if (m := re.search(r"\.layers\.(\d+)\.", n)) and int(m.group(1)) in layers]
        per_module = {}
        for n in chosen:
            r = next((v for p, v in ranks.items() if deadline.fullmatch(p, n)), rank)
            a = next((v for p, v in alphas.items() if deadline.fullmatch(p, n)), alpha)
            per_module[n] = (r, a)
    except _PatternTimeout:
        raise CheckpointError(file, f"its regular expressions (target_modules, rank_pattern, alpha_pattern) take more than {PATTERN_SECONDS:g} s to match this model's {len(names)} module names (catastrophic backtracking); the adapter is not loaded") from None
    if not per_module:
        raise CheckpointError(file, f"target_modules {json.dumps(targets)[:200]} matches no linear layer of this model")

    weights = os.path.join(adapter_dir, "adapter_model.safetensors")
    header = safetensors_header(weights)
    keys = {}
    for key in header:
        m = re.match(r"^(?:base_model\.model\.)?(.*)\.lora_([AB])\.weight$", key)
        if m:
            keys[(m.group(1), m.group(2))] = key
    for n, (r, _a) in per_module.items():
        fan_in, fan_out = linear[n]
        for half, shape in (("A", [r, fan_in]), ("B", [fan_out, r])):
            key = keys.get((n, half))
            if key is None:
                raise CheckpointError(weights, f"is missing base_model.model.{n}.lora_{half}.weight (adapter_config.json targets {n})")
            if list(header[key][1]) != shape:
                raise CheckpointError(weights, f"{key} has shape {list(header[key][1])}, but rank {r} on this model needs {shape}")
    extra = sorted({n for (n, _h) in keys} - set(per_module))
    if extra:
        raise CheckpointError(weights, f"holds LoRA weights for {extra[0]}, which adapter_config.json does not target")

    from peft import LoraConfig

    # Names for PEFT's own matching (a list matches by name or suffix), never the file's patterns:
    # the module kinds when every layer has them (what adapter_config.json then says when saved
    # again), else every module by its full name; ranks and alphas that differ by escaped full name.
    kinds = {n.rsplit(".", 1)[-1] for n in per_module}
    every_layer = {n for n in names if n.rsplit(".", 1)[-1] in kinds} == set(per_module)
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=sorted(kinds) if every_layer else sorted(per_module),
        rank_pattern={re.escape(n): r for n, (r, _a) in per_module.items() if r != rank},
        alpha_pattern={re.escape(n): a for n, (_r, a) in per_module.items() if a != alpha},
        use_rslora=config.get("use_rslora") is True,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    ), weights


def linear_modules(model) -> dict:
    """{module name: (in_features, out_features)} of the layers LoRA can target."""
    out = {}
    for n, m in model.named_modules():
        if n.rsplit(".", 1)[-1] in LORA_MODULES and hasattr(m, "in_features") and hasattr(m, "out_features"):
            out[n] = (int(m.in_features), int(m.out_features))
    return out


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
