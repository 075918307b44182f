"""Several processes under torchrun: PyTorch's DistributedDataParallel (gloo on the CPU, NCCL on
GPUs), or FSDP's fully_shard when the config asks for it.

Rank 0 speaks the protocol and broadcasts each request; every rank executes it. (FSDP sharding,
`fully_shard`, is refused in this build: every rank holds the whole base.) Generation and
scoring deal rows round-robin across ranks and gather the results; a training step deals each
policy's rows the same way and DDP sums the gradients, so N processes take the step one process
takes on the whole batch. After each step every rank hashes its weights and the hashes must agree
(a rank that silently missed an update is an error, not a wrong run).
"""

import datetime
import os

import torch
import torch.distributed as dist

from .protocol import EngineError


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


class Dist:
    def __init__(self, device: str, fsdp: bool = False, timeout_s: int = 1800):
        if fsdp:
            raise SystemExit("absp_torch: --fsdp (sharding the weights with fully_shard) is not available in this build; "
                             "run without it: every rank then holds the whole base model (DistributedDataParallel)")
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.fsdp = fsdp
        self.backend = backend

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

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

