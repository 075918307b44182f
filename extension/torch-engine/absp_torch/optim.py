"""Optimisers with the built-in engine's semantics (extension/engine/train/optimizer.ts) on PyTorch's
own torch.optim.AdamW and torch.optim.SGD: global-norm clipping as clip_grad_norm_ (max / (norm +
1e-6)), linear warmup over the first steps, and a step whose gradient norm is not finite skipped
(parameters and moments untouched) and counted. The state is saved in the built-in engine's format
(`<name>.safetensors` with m.<param> and v.<param>, `<name>.json` with step, skipped and config), so a
run resumes on either engine.

Under FSDP a full policy's parameters, gradients and moments are sharded DTensors: torch.optim and
clip_grad_norm_ work on them as they are; saving gathers each moment whole for rank 0 to write,
loading hands each rank its shard.
"""

import json
import math
import os

import torch

from .distributed import full_tensor
from .protocol import CheckpointError, RequestError


def like_param(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """A saved (flat, whole) moment in the layout of its parameter: this rank's shard of a sharded one."""
    from torch.distributed.tensor import DTensor

    whole = values.reshape(p.shape).to(dtype=p.dtype)
    if isinstance(p, DTensor):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(whole.to(p.device), p.device_mesh, p.placements)
    return whole.to(device=p.device).clone()


def settings_config(s: dict) -> dict:
    """The built-in engine's OptimizerConfig for the trainer's per-policy settings."""
    kind = s.get("kind", "adamw")
    if kind not in ("adamw", "sgd"):
        raise RequestError(f"optimizer kind must be adamw or sgd, got {kind!r}")
    return {
        "kind": kind,
        "lr": float(s["lr"]),
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weightDecay": float(s.get("weightDecay", 0.0)),
        "clipNorm": None if s.get("clipNorm") is None else float(s["clipNorm"]),
        "schedule": {
            "kind": (s.get("schedule") or {}).get("kind", "constant"),
            "warmupSteps": int(s.get("warmupSteps", 0)),
            "totalSteps": int((s.get("schedule") or {}).get("totalSteps", 1)),
            "minLrRatio": float((s.get("schedule") or {}).get("minLrRatio", 0)),
        },
    }


def scheduled_lr(config: dict, step: int) -> float:
    s = config["schedule"]
    lr = config["lr"]
    if s["warmupSteps"] > 0 and step < s["warmupSteps"]:
        return lr * (step + 1) / s["warmupSteps"]
    if s["kind"] == "constant":
        return lr
    span = max(1, s["totalSteps"] - s["warmupSteps"])
    progress = min(1.0, max(0.0, (step - s["warmupSteps"]) / span))
    factor = 1 - progress if s["kind"] == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return lr * (s["minLrRatio"] + (1 - s["minLrRatio"]) * factor)


class PolicyOptimizer:
    def __init__(self, params: dict, config: dict):
        self.names = list(params)
        self.params = params
        self.config = config
        self.step = 0
        self.skipped = 0
        self.torch = self._make()

    def _make(self):
        c = self.config
        ps = [self.params[n] for n in self.names]
        if c["kind"] == "sgd":
            return torch.optim.SGD(ps, lr=c["lr"], weight_decay=c["weightDecay"])
        return torch.optim.AdamW(ps, lr=c["lr"], betas=tuple(c["betas"]), eps=c["eps"], weight_decay=c["weightDecay"])

    def update_settings(self, s: dict) -> None:
        self.config["lr"] = float(s["lr"])
        self.config["weightDecay"] = float(s.get("weightDecay", 0.0))
        self.config["clipNorm"] = None if s.get("clipNorm") is None else float(s["clipNorm"])

    def apply(self) -> dict:
        """One update from the gradients in .grad (which it clears)."""
        ps = [self.params[n] for n in self.names]
        for p in ps:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        clip = self.config["clipNorm"]
        norm = torch.nn.utils.clip_grad_norm_(ps, max_norm=clip if clip is not None else math.inf, foreach=None)
        grad_norm = float(full_tensor(norm))
        lr = scheduled_lr(self.config, self.step)
        if not math.isfinite(grad_norm):
            self.skipped += 1
            self.zero_grad()
            return {"lr": lr, "gradNorm": grad_norm, "skipped": True}
        for group in self.torch.param_groups:
            group["lr"] = lr
            group["weight_decay"] = self.config["weightDecay"]
        self.torch.step()
        self.zero_grad()
        self.step += 1
        return {"lr": lr, "gradNorm": grad_norm, "skipped": False}

    def skip(self) -> None:
        self.skipped += 1
        self.zero_grad()

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def save(self, out_dir: str, name: str, write: bool = True) -> None:
        """Writes the state files; under torchrun every rank calls it and only `write` (rank 0) writes."""
        from safetensors.torch import save_file

        tensors = {}
        for n in self.names:
            st = self.torch.state.get(self.params[n])
            if st and "exp_avg" in st:
                for key, moment in (("m", "exp_avg"), ("v", "exp_avg_sq")):
                    whole = full_tensor(st[moment].detach())
                    if write:
                        tensors[f"{key}.{n}"] = whole.float().contiguous().cpu().reshape(-1)
        if not write:
            return
        os.makedirs(out_dir, exist_ok=True)
        st_file = os.path.join(out_dir, f"{name}.safetensors")
        json_file = os.path.join(out_dir, f"{name}.json")
        save_file(tensors, st_file + ".tmp")
        os.replace(st_file + ".tmp", st_file)
        with open(json_file + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"step": self.step, "skipped": self.skipped, "config": self.config}, f)
        os.replace(json_file + ".tmp", json_file)

    @staticmethod
    def load(in_dir: str, name: str, params: dict) -> "PolicyOptimizer":
        from safetensors import safe_open

        from .files import check_regular, read_json

        json_file = os.path.join(in_dir, f"{name}.json")
        meta = read_json(json_file, 1024 * 1024)  # a run directory's file: no link, no FIFO, bounded
        try:
            config = meta["config"]
            step = int(meta["step"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(json_file, f"cannot read optimizer state ({e})") from None
        opt = PolicyOptimizer(params, config)
        opt.step = step
        opt.skipped = int(meta.get("skipped", 0))
        st_file = os.path.join(in_dir, f"{name}.safetensors")
        check_regular(st_file)
        moments: dict = {}
        try:
            with safe_open(st_file, framework="pt") as f:
                for key in f.keys():
                    moments[key] = f.get_tensor(key)
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(st_file, f"cannot read optimizer moments ({e})") from None
        if config["kind"] == "adamw" and step > 0:
            for n in opt.names:
                p = params[n]
                m, v = moments.get(f"m.{n}"), moments.get(f"v.{n}")
                if m is None or v is None:
                    raise CheckpointError(st_file, f"has no moments for parameter {n}")
                if m.numel() != p.numel():
                    raise CheckpointError(st_file, f"m.{n} has {m.numel()} values for {p.numel()} parameters")
                opt.torch.state[p] = {
                    "step": torch.tensor(float(step)),
                    "exp_avg": like_param(m, p),
                    "exp_avg_sq": like_param(v, p),
                }
        return opt
