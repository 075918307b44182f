"""Several processes under torchrun (gloo on the CPU, NCCL on GPUs), in one of two layouts.

Rank 0 speaks the protocol and broadcasts each request; every rank executes it. Generation and
scoring deal rows round-robin across ranks and gather the results; a training step deals each
policy's rows the same way, every rank doing the same number of passes, so N processes take the
step one process takes on the whole batch. After each step every rank hashes its weights and the
hashes must agree (a rank that silently missed an update is an error, not a wrong run).

- DistributedDataParallel (the default): every rank holds the whole base; DDP sums the gradients.
- FSDP (`open` with `fsdp`; the config's `"fsdp": true`): PyTorch's `fully_shard` (FSDP2)
  shards the frozen base across the ranks, one group per decoder layer plus the root (embeddings,
  final norm, head). LoRA adapters are added after sharding and stay whole on every rank (they are
  ~0.1-1% of the weights, and PEFT keeps them in float32 next to a bfloat16 base, while FSDP wants
  one dtype per group): their gradients are summed with one all-reduce. A full policy
  (shared-full) is sharded the same way, its gradients reduce-scattered and its optimiser moments
  sharded. Training runs sharded: each layer is all-gathered for its forward and again for its
  backward. Generation and scoring run with the weights gathered (`gathered`): every rank
  all-gathers the models a call uses once, serves its own rows with no further communication
  (ranks finish their generations at different steps), and frees the gathered weights when the
  call ends. So a rank briefly holds one whole model during rollouts, as DDP always does, and its
  shards the rest of the time; a model whose weights do not fit on one device would need tensor
  parallelism, which this engine does not have.
"""

import datetime
import os
from collections.abc import Mapping
from contextlib import contextmanager

import torch
import torch.distributed as dist

from .protocol import EngineError


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


class Dist:
    def __init__(self, device: str, timeout_s: int = 1800):
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            if not torch.cuda.is_available() or torch.cuda.device_count() < local_world:
                found = torch.cuda.device_count() if torch.cuda.is_available() else 0
                raise SystemExit(f"absp_torch: {local_world} processes on this machine need {local_world} CUDA devices (one each); "
                                 f"this PyTorch (torch {torch.__version__}) sees {found}: lower engine.nproc or use \"device\": \"cpu\"")
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.backend = backend
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"
        self._mesh = None

    def device(self, requested: str) -> str:
        """Each rank on its own GPU: "cuda" becomes "cuda:<local rank>"."""
        return f"cuda:{self.local_rank}" if requested == "cuda" else requested

    def broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def max_int(self, n: int) -> int:
        t = torch.tensor([n], dtype=torch.long)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def sum_float(self, x: float) -> float:
        t = torch.tensor([x], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def check_same(self, value: str, what: str) -> None:
        values = self.gather(value)
        if len(set(values)) > 1:
            raise EngineError(f"ranks disagree on {what}: {', '.join(f'rank {r}: {v}' for r, v in enumerate(values))}")

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=False)

    def no_sync(self, module):
        return module.no_sync()

    def all_reduce_grads(self, params: list) -> None:
        """Sums the gradients of replicated parameters (LoRA adapters under FSDP) across ranks, in one
        flat buffer; a parameter without a gradient contributes zeros."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    @property
    def mesh(self):
        if self._mesh is None:
            from torch.distributed.device_mesh import init_device_mesh

            self._mesh = init_device_mesh(self.device_type, (self.world,))
        return self._mesh

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()



def fully_shard_available() -> str | None:
    """None when this PyTorch has FSDP2's public fully_shard, else why not."""
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401  (public since torch 2.6)
    except ImportError:
        return f"this PyTorch (torch {torch.__version__}) has no torch.distributed.fsdp.fully_shard (FSDP2, torch 2.6 or later)"
    return None


def decoder_layers(model: torch.nn.Module):
    """The decoder layers of a Qwen2 or Llama causal LM (model.model.layers)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    return list(layers) if layers is not None else None


def shard(model: torch.nn.Module, mesh) -> None:
    """FSDP2: one group per decoder layer, then the root (embeddings, final norm, LM head; tied
    weights stay one parameter in the root's group). Bottom-up, as fully_shard requires."""
    from torch.distributed.fsdp import fully_shard

    layers = decoder_layers(model)
    if not layers:
        raise EngineError(f"FSDP: {type(model).__name__} has no decoder layers at model.layers to shard")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def fsdp_modules(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered(models: list):
    """The whole weights of sharded models on every rank for the duration of the block.

    Every rank enters with the same models in the same order (each unshard is one all-gather per
    group). Inside, forward passes communicate nothing, so ranks may run different numbers of them.
    On leaving, the gathered copies are freed and the models are sharded again."""
    groups = [fsdp_modules(m) for m in models]
    try:
        for mods in groups:
            for m in mods:
                m.unshard()
                m.set_reshard_after_forward(False, recurse=False)
        yield
    finally:
        for mods in groups:
            root, layers = mods[0], mods[1:]  # modules() lists the root first
            for m in layers:
                m.set_reshard_after_forward(True, recurse=False)
            for m in mods:
                m.reshard()
            # Forget the passes just run (FSDP records each forward for backward prefetching).
            # (reset_iter_state is newer than torch 2.6; without it the record is cleared by the next backward.)
            reset = getattr(root, "reset_iter_state", None)
            if reset is not None:
                reset()


def local_numel(t: torch.Tensor) -> int:
    """How many of a parameter's values this rank holds."""
    from torch.distributed.tensor import DTensor

    return t.to_local().numel() if isinstance(t, DTensor) else t.numel()


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A sharded parameter's whole value (an all-gather: every rank calls it, in the same order)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


class FullTensors(Mapping):
    """name -> whole tensor of a module's parameters, gathered one at a time when read."""

    def __init__(self, named: dict):
        self.named = named

    def __getitem__(self, key):
        return full_tensor(self.named[key].detach())

    def __iter__(self):
        return iter(self.named)

    def __len__(self):
        return len(self.named)
