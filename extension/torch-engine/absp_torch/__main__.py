"""`python -m absp_torch serve|doctor|bench|gpu-bench` (also under `torchrun ... -m absp_torch serve`)."""

import argparse
import json
import os
import sys
import warnings

# Nothing is fetched from a model hub, and the libraries' progress bars and deprecation notes stay
# out of the engine's stderr (which the client shows when something goes wrong).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="absp_torch", description="The PyTorch engine of ABSP Lab")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="speak the engine protocol on stdin/stdout (rank 0 under torchrun)")
    serve.add_argument("--device", default="cpu", help="device the process group is for (cuda: NCCL, else gloo)")
    sub.add_parser("doctor", help="print one JSON object: versions, devices, and whether the environment works")
    bench = sub.add_parser("bench", help="PyTorch side of absp bench (a JSON spec as the argument)")
    bench.add_argument("spec")
    gpu = sub.add_parser("gpu-bench", help="the GPU benchmark (Qwen2.5 shapes, random weights)")
    gpu.add_argument("--sizes", default="0.5B,3B,7B")
    gpu.add_argument("--device", default="cuda")
    gpu.add_argument("--dtype", default="bfloat16")
    gpu.add_argument("--batch", type=int, default=128)
    gpu.add_argument("--prompt-len", type=int, default=256)
    gpu.add_argument("--new-tokens", type=int, default=256)
    gpu.add_argument("--train-batch", type=int, default=8)
    gpu.add_argument("--train-seq-len", type=int, default=1024)
    gpu.add_argument("--rank", type=int, default=16)
    gpu.add_argument("--repeats", type=int, default=3)
    gpu.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU (default: known H100/H200/A100/L40S)")
    gpu.add_argument("--tiny", action="store_true", help="a tiny config instead of the published ones (tests the script on a CPU)")
    gpu.add_argument("--skip", default="", help="comma-separated parts to skip: rollout,bipolicy,lora,full")
    args = parser.parse_args(argv)

    if args.command == "serve":
        from .distributed import Dist, launched_by_torchrun
        from .server import serve

        dist = Dist(args.device) if launched_by_torchrun() else None
        try:
            code = serve(dist)
        finally:
            if dist is not None:
                dist.close()
        # Every file the engine wrote is complete and closed; skip the interpreter's slow teardown of
        # torch and transformers, so the process is gone as soon as the client says goodbye.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.command == "doctor":
        from .doctor import doctor

        report = doctor()
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    if args.command == "bench":
        from .bench import run_cpu_bench

        print(json.dumps(run_cpu_bench(json.loads(args.spec))))
        return 0
    if args.command == "gpu-bench":
        from .bench import run_gpu_bench

        print(json.dumps(run_gpu_bench(args), indent=2))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
