#!/usr/bin/env bash
# Compile weight of the README's first test, against the same test written with raw rmcp.
#
# Builds two fresh crates one after the other, each from clean (`cargo test --no-run`) with a
# target folder of its own, on this machine, and prints the wall time and the number of crates
# compiled for each, and the ratio. The registry cache is warmed first (downloads are not
# compile time). Usage: bash scripts/weight.sh [OUT_DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
rmcp_version="$(sed -n 's/^rmcp = { version = "=\([^"]*\)".*/\1/p' "$repo/Cargo.toml")"
rstest_version="$(sed -n 's/^rstest = "\([^"]*\)"/\1/p' "$repo/Cargo.toml")"

mkdir -p "$out/with-harness/tests" "$out/raw-rmcp/tests"
cat > "$out/with-harness/Cargo.toml" <<TOML
[package]
name = "with-harness"
version = "0.0.0"
edition = "2024"
publish = false

[dev-dependencies]
mcp-harness = { path = "$repo/harness" }
mcp-harness-fixtures = { path = "$repo/fixtures" }
rstest = "$rstest_version"
serde_json = "1"

[workspace]
TOML
cat > "$out/with-harness/tests/first.rs" <<'RS'
use mcp_harness_fixtures::{alice, Session};
use rstest::rstest;

#[rstest]
#[mcp_harness::test]
async fn alice_can_echo(alice: Session) -> mcp_harness::Result<()> {
    let out = alice.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
    assert_eq!(mcp_harness::tool_text(&out), "hi");
    Ok(())
}
RS
cat > "$out/raw-rmcp/Cargo.toml" <<TOML
[package]
name = "raw-rmcp"
version = "0.0.0"
edition = "2024"
publish = false

[dev-dependencies]
rmcp = { version = "=$rmcp_version", default-features = false, features = ["client", "transport-child-process", "transport-streamable-http-client-reqwest"] }
tokio = { version = "1", features = ["full"] }
rstest = "$rstest_version"
serde_json = "1"

[workspace]
TOML
cat > "$out/raw-rmcp/tests/first.rs" <<'RS'
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rstest::rstest;

#[rstest]
#[tokio::test]
async fn echo_round_trip() {
    let cmd = tokio::process::Command::new(std::env::var("MCP_SERVER").unwrap_or("mcp-server".into()));
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let args = serde_json::json!({"text": "hi"}).as_object().cloned();
    let out = client
        .call_tool(CallToolRequestParams::new("echo").with_arguments(args.unwrap()))
        .await
        .unwrap();
    assert!(!out.content.is_empty());
    client.cancel().await.unwrap();
}
RS

measure() {
  local dir="$1"
  (cd "$dir" && cargo fetch -q)
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo test --no-run --color never 2> "$dir/build.log")
  end=$(date +%s.%N)
  local crates
  crates=$(grep -c '^ *Compiling ' "$dir/build.log" || true)
  echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') $crates"
}
read -r t_h n_h < <(measure "$out/with-harness")
read -r t_r n_r < <(measure "$out/raw-rmcp")
printf 'README first test (harness + fixtures + rstest): %6.1f s, %d crates\n' "$t_h" "$n_h"
printf 'raw rmcp (client, child process, HTTP) + tokio:  %6.1f s, %d crates\n' "$t_r" "$n_r"
awk -v th="$t_h" -v tr="$t_r" -v nh="$n_h" -v nr="$n_r" \
  'BEGIN { printf "ratio: %.2fx time, %.2fx crates\n", th / tr, nh / nr }'
