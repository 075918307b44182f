#!/usr/bin/env bash
# The full test run, from a fresh clone: installs what the tests need and runs every suite.
#   - Debian packages: python3-torch (the PyTorch reference for numerical parity) and chromium
#     (webview and end-to-end tests), skipped when already present;
#   - npm ci when node_modules is missing or stale (it also builds dist/);
#   - code-server for the end-to-end test in a real VS Code (scripts/e2e/setup-code-server.sh);
#   - then `npm test` (typecheck, build, mocha) and the end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need_apt+=(python3-torch)
# Debian's torch otherwise runs on the reference BLAS, about 20x slower than OpenBLAS.
[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || need_apt+=(libopenblas0-pthread)
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

if [ -x scripts/e2e/setup-code-server.sh ]; then
  bash scripts/e2e/setup-code-server.sh
fi

npm test

if [ -x scripts/e2e/run.sh ]; then
  bash scripts/e2e/run.sh
fi
