#!/usr/bin/env bash
# nextest setup script: starts the bundled fast-test and fast-time servers once for the whole run
# and exports their urls (and the JWT secret the fixtures sign tokens with) to every test through
# $NEXTEST_ENV. The servers watch the nextest process ($PPID) and exit when it does.
set -euo pipefail
cd "$(dirname "$0")/.."

# nextest has just built the CLI as `mcp-harness-cli`, a binary of the tests package (cargo builds
# a package's binaries with its integration tests); build it only when it is missing.
bin="${CARGO_TARGET_DIR:-target}/debug/mcp-harness-cli"
if [ ! -x "$bin" ]; then
  cargo build --quiet -p mcp-harness-tests --bin mcp-harness-cli
fi

secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export MCP_HARNESS_JWT_SECRET="$secret"
echo "MCP_HARNESS_SHARED_JWT_SECRET=$secret" >> "$NEXTEST_ENV"

runner_pid="$PPID"
# Their logs go to the target folder (overwritten by the next run, removed by `cargo clean`).
logs="${CARGO_TARGET_DIR:-target}/tmp"
mkdir -p "$logs"
for server in fast-test fast-time; do
  var="MCP_HARNESS_SHARED_$(echo "$server" | tr 'a-z-' 'A-Z_')_URL"
  "$bin" serve "$server" --transport http --auth jwt \
    --watch-pid "$runner_pid" --detach --env-file "$NEXTEST_ENV" --env-var "$var" \
    --log-file "$logs/shared-$server.log" >/dev/null
done
