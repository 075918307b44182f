"""The wire format between the TypeScript engine client and this engine.

One JSON object per line each way. A request is {"id": n, "op": "...", ...}; its response is
{"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": "...", "kind": "..."}, in order.
Token ids travel on the wire: the TypeScript side keeps the tokenizer and the chat template. JSON
has no NaN or infinities, so non-finite floats travel as the strings "NaN", "Infinity" and
"-Infinity" (the client turns them back into numbers). Logs go to stderr, never stdout.
"""

import json
import math
import sys
from typing import Any


class EngineError(Exception):
    """An error the client should show as it is: it names the file or the value at fault."""

    kind = "engine"


class RequestError(EngineError):
    """A malformed request: a missing field, a wrong type, an unknown policy or token id."""

    kind = "request"


class CheckpointError(EngineError):
    """A model or adapter directory that cannot be loaded safely."""

    kind = "checkpoint"

    def __init__(self, file: str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = file


class OutOfMemory(EngineError):
    kind = "out-of-memory"


def encode_floats(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_floats(v) for v in value]
    return value


def dumps(message: dict) -> str:
    return json.dumps(encode_floats(message), allow_nan=False, separators=(",", ":"))


def write(message: dict, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(dumps(message) + "\n")
    stream.flush()


def field(req: dict, name: str, kind: type | tuple, default: Any = ...) -> Any:
    """A request field of the given type; a missing or mistyped field is a RequestError naming it."""
    if name not in req or req[name] is None:
        if default is ...:
            raise RequestError(f"{req.get('op', 'request')}: missing field {name!r}")
        return default
    value = req[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise RequestError(f"{req.get('op', 'request')}: field {name!r} must be {getattr(kind, '__name__', kind)}, got {json.dumps(value)[:80]}")
    return value


def int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        raise RequestError(f"{where}: must be a list of integer token ids")
    return value


def float_list(value: Any, where: str) -> list[float]:
    if not isinstance(value, list):
        raise RequestError(f"{where}: must be a list of numbers")
    out = []
    for x in value:
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(float(x))
        elif x in ("NaN", "Infinity", "-Infinity"):
            out.append(float(x.replace("Infinity", "inf")))
        else:
            raise RequestError(f"{where}: must be a list of numbers, got {json.dumps(x)[:40]}")
    return out
