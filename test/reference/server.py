#!/usr/bin/env python3
"""JSON-lines driver for the PyTorch Qwen2/LoRA reference (see README.md for the protocol).

Reads one JSON request per line on stdin and writes exactly one JSON response per line on
stdout: {"ok": true, ...result} or {"ok": false, "error": "..."}.  A request's "id" (any JSON
value) is echoed back.  Blank lines are ignored; EOF or {"op": "shutdown"} ends the process.
Diagnostics go to stderr only.
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    out = sys.stdout
    # Nothing but responses may reach stdout: route stray prints to stderr.
    sys.stdout = sys.stderr
    try:
        import torch  # noqa: F401

        from qwen2_torch import Reference, RequestError, ConfigError, AdapterError, SafetensorsError
    except Exception as e:  # torch missing or broken: answer every request with the reason
        err = f"cannot import the reference: {type(e).__name__}: {e}"
        for line in sys.stdin:
            if line.strip():
                out.write(json.dumps({"ok": False, "error": err}) + "\n")
                out.flush()
        return 1

    threads = os.environ.get("ABSP_TORCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    expected = (RequestError, ConfigError, AdapterError, SafetensorsError, ValueError, KeyError, TypeError,
                OSError, IndexError)
    ref = Reference()
    for line in sys.stdin:
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            if isinstance(req, dict):
                rid = req.get("id")
                if req.get("op") == "shutdown":
                    resp = {"ok": True}
                    if rid is not None:
                        resp["id"] = rid
                    out.write(json.dumps(resp) + "\n")
                    out.flush()
                    return 0
            result = ref.handle(req)
            resp = {"ok": True}
            resp.update(result)
        except json.JSONDecodeError as e:
            resp = {"ok": False, "error": f"request is not valid JSON: {e}"}
        except expected as e:
            resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # a bug: keep serving, but say where it happened
            traceback.print_exc(file=sys.stderr)
            resp = {"ok": False, "error": f"internal error {type(e).__name__}: {e}"}
        if rid is not None:
            resp["id"] = rid
        try:
            text = json.dumps(resp, allow_nan=False)
        except (TypeError, ValueError) as e:
            text = json.dumps({"ok": False, "error": f"response could not be encoded: {e}", "id": rid})
        out.write(text + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
