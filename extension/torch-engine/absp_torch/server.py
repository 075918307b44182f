"""The request loop: one JSON request per line on stdin, one response per line on stdout, in order.

Ops (fields in camelCase as the TypeScript side names them; see extension/engine/torch/protocol.ts):
  hello                         -> protocol, versions, devices
  open {model, device, dtype, threads, attn, microBatchTokens, gradientCheckpointing, fsdp}
                                -> {info}
  create_policy {name, spec}    -> {parameters, fingerprint}
  load_policy {name, dir, kind} -> {parameters, fingerprint}
  save_policy {name, dir}       -> {fingerprint}
  drop_policy {name}
  fingerprint {name}            -> {fingerprint}
  generate {requests, settings} -> {results: [{tokens, logprobs, finish, fingerprint}]}
  logprobs {rows}               -> {logprobs}
  next_token_logprobs {rows, candidates} -> {logprobs}
  train_step {samples, settings} -> {report}
  save_optimizer / load_optimizer {name, dir}
  shutdown
Any failure is {"ok": false, "error", "kind"}; the loop goes on serving. EOF on stdin ends it.
"""

import json
import os
import sys
import traceback

import torch

from . import PROTOCOL_VERSION, __version__
from .protocol import EngineError, OutOfMemory, RequestError, field, int_list, write

OPS = {"hello", "open", "create_policy", "load_policy", "save_policy", "drop_policy", "fingerprint", "generate", "logprobs",
       "next_token_logprobs", "train_step", "save_optimizer", "load_optimizer", "shutdown"}
DATA_PARALLEL = {"generate": "requests", "logprobs": "rows", "next_token_logprobs": "rows"}


def versions() -> dict:
    out = {"absp_torch": __version__, "torch": torch.__version__, "python_version": sys.version.split()[0]}
    for mod in ("transformers", "peft", "accelerate", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing package is reported, not raised
            out[mod] = None
    return out


def devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return found


def out_of_memory(op: str, e: BaseException) -> OutOfMemory:
    first = str(e).strip().splitlines()[0] if str(e).strip() else "out of memory"
    return OutOfMemory(
        f"{op}: the GPU ran out of memory ({first[:200]}). Try a smaller batch (game.seeds_per_step, rl.group_size, "
        "evaluation.attacker_samples_per_seed), shorter generations (game.max_new_tokens), gradient checkpointing "
        '("engine": {"gradient_checkpointing": true}), fewer tokens per training pass ("engine": {"micro_batch_tokens": 2048}), '
        'or more GPUs ("engine": {"nproc": N} under torchrun, with "fsdp": true to shard the weights).'
    )


def _fault(op: str) -> None:
    """ABSP_TORCH_FAULT=oom:<op> or exit:<op>: for the tests of what the client does then."""
    spec = os.environ.get("ABSP_TORCH_FAULT", "")
    if spec == f"oom:{op}":
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated by ABSP_TORCH_FAULT)")
    if spec == f"exit:{op}":
        os._exit(70)


class Server:
    def __init__(self, dist=None):
        self.engine = None
        self.dist = dist

    def _need_engine(self):
        if self.engine is None:
            raise RequestError("no model is open (send an open request first)")
        return self.engine

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        if not isinstance(op, str):
            raise RequestError("a request needs an \"op\" string")
        if op not in OPS:
            raise RequestError(f"unknown op {op!r}")
        if op == "shutdown":
            return {}
        _fault(op)
        if op == "hello":
            return {"protocol": PROTOCOL_VERSION, "versions": versions(), "devices": devices(), "pid": os.getpid(), "worldSize": self.dist.world if self.dist else 1}
        if op == "open":
            from .engine import TorchEngine

            device = field(req, "device", str, "cpu")
            if self.dist:
                device = self.dist.device(device)
            self.engine = TorchEngine(
                field(req, "model", str), device, field(req, "dtype", str, "float32"),
                threads=field(req, "threads", int, None), attn_implementation=field(req, "attn", str, None),
                micro_batch_tokens=field(req, "microBatchTokens", int, 8192),
                gradient_checkpointing=field(req, "gradientCheckpointing", bool, False), dist=self.dist, fsdp=field(req, "fsdp", bool, False),
            )
            return {"info": self.engine.info()}
        e = self._need_engine()
        name = lambda: field(req, "name", str)  # noqa: E731
        if op == "create_policy":
            return e.create_policy(name(), field(req, "spec", dict))
        if op == "load_policy":
            return e.load_policy(name(), field(req, "dir", str), field(req, "kind", str, "lora"))
        if op == "save_policy":
            return e.save_policy(name(), field(req, "dir", str))
        if op == "drop_policy":
            e.drop_policy(name())
            return {}
        if op == "fingerprint":
            return {"fingerprint": e.fingerprint(name())}
        if op == "train_step":
            return {"report": e.train_step(field(req, "samples", list), field(req, "settings", dict))}
        if op == "save_optimizer":
            e.save_optimizer(name(), field(req, "dir", str))
            return {}
        if op == "load_optimizer":
            e.load_optimizer(name(), field(req, "dir", str))
            return {}
        if op in DATA_PARALLEL:
            key = DATA_PARALLEL[op]
            items = field(req, key, list)
            for i, it in enumerate(items):
                if not isinstance(it, dict):
                    raise RequestError(f"{op}: {key}[{i}] must be an object")
            if op == "generate":
                settings = field(req, "settings", dict)
                run = lambda xs: e.generate(xs, settings)  # noqa: E731
            elif op == "logprobs":
                run = e.logprobs
            else:
                candidates = int_list(field(req, "candidates", list), "candidates")
                run = lambda xs: e.next_token_logprobs(xs, candidates)  # noqa: E731
            with e.gathered(items):
                return {"results" if op == "generate" else "logprobs": self._data_parallel(items, run)}
        if op == "shutdown":
            return {}
        raise RequestError(f"unknown op {op!r}")

    def _data_parallel(self, items: list, run) -> list:
        if not self.dist or self.dist.world == 1:
            return run(items)
        mine = list(range(self.dist.rank, len(items), self.dist.world))
        try:
            local = ("ok", run([items[i] for i in mine]) if mine else [])
        except Exception as err:  # noqa: BLE001 - every rank must reach the gather, or the others wait forever
            if not isinstance(err, EngineError):
                traceback.print_exc(file=sys.stderr)
            local = ("error", str(err) if isinstance(err, EngineError) else f"{type(err).__name__}: {str(err).splitlines()[0][:500] if str(err) else ''}")
        parts = self.dist.gather((mine, local))
        out: list = [None] * len(items)
        for idx, (status, value) in parts:
            if status == "error":
                raise RequestError(value)
            for i, v in zip(idx, value):
                out[i] = v
        return out

    def respond(self, req: dict) -> dict:
        rid = req.get("id") if isinstance(req, dict) else None
        op = req.get("op") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict):
                raise RequestError("a request must be a JSON object")
            result = self.handle(req)
            return {"id": rid, "ok": True, **result}
        except torch.OutOfMemoryError as err:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            e = out_of_memory(str(op), err)
            return {"id": rid, "ok": False, "error": str(e), "kind": e.kind}
        except EngineError as err:
            return {"id": rid, "ok": False, "error": str(err), "kind": err.kind}
        except Exception as err:  # noqa: BLE001 - any failure becomes an error message, not a dead pipe
            traceback.print_exc(file=sys.stderr)
            return {"id": rid, "ok": False, "error": f"{op}: {type(err).__name__}: {str(err).splitlines()[0][:500] if str(err) else ''}", "kind": "internal"}


def serve(dist=None) -> int:
    server = Server(dist)
    rank0 = dist is None or dist.rank == 0
    try:
        while True:
            if rank0:
                line = sys.stdin.readline()
                if not line:
                    req = {"op": "shutdown"}
                elif not line.strip():
                    continue
                else:
                    try:
                        req = json.loads(line)
                    except ValueError as err:
                        write({"id": None, "ok": False, "error": f"a request line is not valid JSON ({err})", "kind": "request"})
                        continue
            else:
                req, line = None, ""
            if dist is not None and dist.world > 1:
                req = dist.broadcast(req)
            response = server.respond(req)
            if rank0 and line:
                try:
                    write(response)
                except BrokenPipeError:
                    return 0
            if isinstance(req, dict) and req.get("op") == "shutdown":
                return 0
    finally:
        if server.engine is not None:
            server.engine.close()
