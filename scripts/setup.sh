#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test mcp-harness. Idempotent.
# Assumes the Rust toolchain and cargo-nextest; uses Debian's apt (as root) for system packages.
set -euo pipefail

need_apt=()
# Keep this list in sync with what tests and the CLI need from the system.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The Redis scenarios start their own redis-server (never a shared system instance).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]}) and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# The CLI scenarios (tests/integration/cli.rs) check MCP servers nobody here wrote: the official
# Python SDK (a FastMCP/MCPServer script in tests/fixtures/) and the TypeScript SDK's example
# server. Both installs are skipped when already present.
# 2.3 is the first to serve MCP 2026-07-28 (tests/integration/stateless.rs).
if ! python3 -c "import importlib.metadata as m, sys; v = tuple(int(x) for x in m.version('mcp').split('.')[:2]); sys.exit(0 if (2, 3) <= v < (3, 0) else 1)" >/dev/null 2>&1; then
  echo "setup: installing the MCP Python SDK (pip: mcp)" >&2
  pip_install=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'mcp>=2.3,<3')
  # Debian's own python3 refuses global installs (PEP 668) unless told.
  "${pip_install[@]}" || "${pip_install[@]}" --break-system-packages
fi
if ! command -v mcp-server-everything >/dev/null 2>&1; then
  echo "setup: installing @modelcontextprotocol/server-everything (npm)" >&2
  npm install --global --silent --no-fund --no-audit @modelcontextprotocol/server-everything@2026.8.31
fi

# The official MCP conformance suite judges the OAuth client and the bundled servers
# (tests/integration/conformance.rs). It needs Node 22, which npm ships as the `node` package:
# both go into a prefix of their own, leaving the system's node alone. Two versions, each in its
# own prefix and pinned exactly: 0.1.16 (OAuth client and server scenarios) and 0.2.0-alpha.12,
# whose frozen requirement sets (2025-11-25, 2026-07-28) judge the client in both protocol eras.
install_conformance() { # version dir
  local version="$1" dir="$2"
  if grep -qs "\"version\": \"$version\"" \
      "$dir/node_modules/@modelcontextprotocol/conformance/package.json" \
    && [ -x "$dir/node_modules/.bin/node" ] \
    && "$dir/node_modules/.bin/node" --version 2>/dev/null | grep -q '^v22\.'; then
    return
  fi
  echo "setup: installing @modelcontextprotocol/conformance@$version and Node 22 into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --silent --no-fund --no-audit --save-exact \
    node@22 "@modelcontextprotocol/conformance@$version"
}
install_conformance 0.1.16 "${MCP_HARNESS_CONFORMANCE_DIR:-$HOME/.cache/mcp-harness/conformance}"
install_conformance 0.2.0-alpha.12 \
  "${MCP_HARNESS_CONFORMANCE_ALPHA_DIR:-$HOME/.cache/mcp-harness/conformance-alpha}"

# Its 0.2.0 alpha has the 2026-07-28 server scenarios; it judges the bundled servers in both
# eras (tests/integration/servers_eras/alpha.rs). A prefix of its own, Node 22 included.
conformance_alpha_version=0.2.0-alpha.12
conformance_alpha_dir="${MCP_HARNESS_CONFORMANCE_ALPHA_DIR:-$HOME/.cache/mcp-harness/conformance-alpha}"
if ! grep -qs "\"version\": \"$conformance_alpha_version\"" \
    "$conformance_alpha_dir/node_modules/@modelcontextprotocol/conformance/package.json" \
  || [ ! -x "$conformance_alpha_dir/node_modules/.bin/node" ]; then
  echo "setup: installing @modelcontextprotocol/conformance@$conformance_alpha_version and Node 22 into $conformance_alpha_dir" >&2
  mkdir -p "$conformance_alpha_dir"
  npm install --prefix "$conformance_alpha_dir" --silent --no-fund --no-audit \
    node@22 "@modelcontextprotocol/conformance@$conformance_alpha_version"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
echo "setup: ok"
