#!/usr/bin/env bash
# The PyTorch engine on a GPU: Qwen2.5-0.5B/3B/7B's published shapes with random bf16 weights —
# rollout tokens/s at batch 128, the bipolicy batch (attacker and defender rows in one pass)
# against two single-adapter passes, LoRA and full fine-tuning step tokens/s with model-FLOPs
# utilisation, and the peak GPU memory of each. Writes one JSON object to stdout (and to
# gpu-bench-<date>.json); the engine's environment comes from `absp torch setup --cuda`.
#
#   bash scripts/gpu-bench.sh                       # all sizes on cuda:0
#   bash scripts/gpu-bench.sh --sizes 7B --batch 128 --new-tokens 256
#   bash scripts/gpu-bench.sh --tiny                # a tiny config on the CPU: checks the script
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${ABSP_TORCH_PYTHON:-}"
for candidate in "$PY" .absp-cache/torch-venv/bin/python "${XDG_CACHE_HOME:-$HOME/.cache}/absp-lab/torch-venv/bin/python"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then PY="$candidate"; break; fi
done
if [ -z "$PY" ] || [ ! -x "$PY" ]; then
  echo "gpu-bench: no engine environment; run: node bin/absp.js torch setup --cuda" >&2
  exit 2
fi
out="gpu-bench-$(date +%Y-%m-%d).json"
PYTHONPATH="$PWD/extension/torch-engine${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m absp_torch gpu-bench "$@" | tee "$out"
echo "gpu-bench: wrote $out" >&2
