#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test mcp-harness. Idempotent.
# Assumes the Rust toolchain and cargo-nextest; uses Debian's apt (as root) for system packages.
set -euo pipefail

need_apt=()
# Keep this list in sync with what tests and the CLI need from the system.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]}) and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
echo "setup: ok"
