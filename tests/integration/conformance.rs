//! The official MCP conformance suite (`@modelcontextprotocol/conformance`) judges the OAuth
//! client and the bundled server. Each client scenario stands up its own authorization server and MCP server (spec
//! conformant, and varied on purpose: metadata locations, scope sources, token endpoint auth
//! methods, pre-registered clients), runs `mcp-harness check --oauth <url>` against them, and
//! records a check for every request the client made. A scenario passes when no check failed
//! or warned and the client exited 0. The server scenarios that need no tool of the suite's
//! own (initialize, ping, logging, listing, completion, DNS rebinding protection) run against
//! a bundled `fast-test` over streamable HTTP; all of them, including the ones that need the
//! suite's tools, resources and prompts, run against the bundled `conformance` server.
//!
//! `scripts/setup.sh` installs the suite and the Node 22 it needs under
//! `$MCP_HARNESS_CONFORMANCE_DIR` (default `~/.cache/mcp-harness/conformance`).

use std::path::PathBuf;
use std::process::Command;

use rstest::rstest;
use serde_json::Value;

/// The CLI binary (built by this package: see `tests/Cargo.toml`).
const CLI: &str = env!("CARGO_BIN_EXE_mcp-harness-cli");

/// The step-up scenarios need a tool call: that is the request that wants more scope.
const STEP_UP: &str = "--call test-tool";

/// The suite's pre-registered client for `auth/pre-registration` (fixed by the scenario).
const PRE_REGISTERED: &str =
    "--oauth-client-id pre-registered-client --oauth-client-secret pre-registered-secret";

fn suite_dir() -> PathBuf {
    std::env::var_os("MCP_HARNESS_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/mcp-harness/conformance")
        })
}

/// Node 22 and the suite's entry point; fails with how to install them when missing.
fn suite() -> (PathBuf, PathBuf) {
    let dir = suite_dir();
    let node = dir.join("node_modules/.bin/node");
    let entry = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.exists() && entry.exists(),
        "the MCP conformance suite is not installed in {}: run scripts/setup.sh (npm install \
         --prefix {} node@22 @modelcontextprotocol/conformance@0.1.16)",
        dir.display(),
        dir.display()
    );
    (node, entry)
}

/// Runs one client scenario against `mcp-harness check --oauth <extra>`.
fn run_client_scenario(scenario: &str, extra: &str) -> Vec<Value> {
    let command = format!("{CLI} check --oauth {extra}");
    run_suite(
        scenario,
        &["client", "--command", command.trim(), "--timeout", "60000"],
    )
}

/// Runs the suite (`client ...` or `server ...` arguments) for `scenario` and returns its
/// checks, after asserting that none failed or warned and that the run itself passed.
fn run_suite(scenario: &str, args: &[&str]) -> Vec<Value> {
    let (node, entry) = suite();
    let out = tempdir(scenario);
    let run = Command::new(node)
        .arg(entry)
        .args(args)
        .args(["--scenario", scenario, "-o"])
        .arg(&out)
        .output()
        .expect("the conformance suite runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let checks_file = find(&out, "checks.json").unwrap_or_else(|| {
        panic!(
            "{scenario}: the suite wrote no checks.json\n--- stdout\n{stdout}\n--- stderr\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let checks: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&checks_file).unwrap()).unwrap();
    let client_stderr =
        std::fs::read_to_string(checks_file.with_file_name("stderr.txt")).unwrap_or_default();
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !matches!(c["status"].as_str(), Some("SUCCESS" | "INFO")))
        .map(|c| {
            format!(
                "{} {}: {} {}",
                c["status"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                c["description"].as_str().unwrap_or(""),
                c["errorMessage"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        bad.is_empty() && run.status.success(),
        "{scenario}: the conformance suite found problems:\n{}\n--- the client's stderr\n{client_stderr}",
        bad.join("\n")
    );
    checks
}

fn tempdir(scenario: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("mcp-harness-conformance")
        .join(format!(
            "{}-{}",
            scenario.replace('/', "_"),
            std::process::id()
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn find(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

fn has_success(checks: &[Value], id: &str) -> bool {
    checks
        .iter()
        .any(|c| c["id"] == id && c["status"] == "SUCCESS")
}

/// Every OAuth client scenario of the 2025-03-26, 2025-06-18 and 2025-11-25 specs that the
/// client implements, with the check that proves its point. Not here: `auth/basic-cimd` (client
/// ID metadata documents, a SHOULD of 2025-11-25 the client does not implement) and the draft
/// and extension scenarios.
#[rstest]
#[case::metadata_default("auth/metadata-default", "", "valid-bearer-token")]
#[case::metadata_var1("auth/metadata-var1", "", "valid-bearer-token")]
#[case::metadata_var2("auth/metadata-var2", "", "valid-bearer-token")]
#[case::metadata_var3("auth/metadata-var3", "", "valid-bearer-token")]
#[case::scope_from_www_authenticate("auth/scope-from-www-authenticate", "", "valid-bearer-token")]
#[case::scope_from_scopes_supported("auth/scope-from-scopes-supported", "", "valid-bearer-token")]
#[case::scope_omitted_when_undefined("auth/scope-omitted-when-undefined", "", "valid-bearer-token")]
#[case::scope_step_up("auth/scope-step-up", STEP_UP, "scope-step-up-escalation")]
#[case::scope_retry_limit("auth/scope-retry-limit", STEP_UP, "scope-retry-limit")]
#[case::token_endpoint_auth_none("auth/token-endpoint-auth-none", "", "valid-bearer-token")]
#[case::token_endpoint_auth_basic("auth/token-endpoint-auth-basic", "", "valid-bearer-token")]
#[case::token_endpoint_auth_post("auth/token-endpoint-auth-post", "", "valid-bearer-token")]
#[case::pre_registration("auth/pre-registration", PRE_REGISTERED, "pre-registration-auth")]
#[case::metadata_backcompat_2025_03_26(
    "auth/2025-03-26-oauth-metadata-backcompat",
    "",
    "token-request"
)]
#[case::endpoint_fallback_2025_03_26(
    "auth/2025-03-26-oauth-endpoint-fallback",
    "",
    "token-request"
)]
fn the_oauth_client_passes_the_official_conformance_scenario(
    #[case] scenario: &str,
    #[case] extra: &str,
    #[case] proof: &str,
) {
    let checks = run_client_scenario(scenario, extra);
    assert!(
        has_success(&checks, proof),
        "{scenario}: no successful `{proof}` check: {checks:#?}"
    );
}

/// The suite's server scenarios that fit any server (the others call tools, resources and
/// prompts with the suite's own names, which `fast-test` does not have).
#[rstest]
#[case::initialize("server-initialize")]
#[case::ping("ping")]
#[case::logging_set_level("logging-set-level")]
#[case::tools_list("tools-list")]
#[case::resources_list("resources-list")]
#[case::prompts_list("prompts-list")]
#[case::completion_complete("completion-complete")]
#[case::dns_rebinding_protection("dns-rebinding-protection")]
fn the_bundled_server_passes_the_official_conformance_scenario(#[case] scenario: &str) {
    run_server_scenario(mcp_harness::Bundled::FastTest, scenario);
}

/// Every server scenario of the suite (0.1.16) against the bundled `conformance` server,
/// which has the suite's own tools, resources and prompts. The sampling and elicitation
/// scenarios pass because the server sends `sampling/createMessage` and `elicitation/create`
/// to the suite's client during the tool call and reports the answers; in `server-sse-polling`
/// the server ends the POST stream of `test_reconnection` after its priming event and the
/// client gets the answer by resuming with `Last-Event-ID`. None is left out.
#[rstest]
#[case::initialize("server-initialize")]
#[case::ping("ping")]
#[case::logging_set_level("logging-set-level")]
#[case::completion_complete("completion-complete")]
#[case::tools_list("tools-list")]
#[case::tools_call_simple_text("tools-call-simple-text")]
#[case::tools_call_image("tools-call-image")]
#[case::tools_call_audio("tools-call-audio")]
#[case::tools_call_embedded_resource("tools-call-embedded-resource")]
#[case::tools_call_mixed_content("tools-call-mixed-content")]
#[case::tools_call_with_logging("tools-call-with-logging")]
#[case::tools_call_error("tools-call-error")]
#[case::tools_call_with_progress("tools-call-with-progress")]
#[case::tools_call_sampling("tools-call-sampling")]
#[case::tools_call_elicitation("tools-call-elicitation")]
#[case::json_schema_2020_12("json-schema-2020-12")]
#[case::elicitation_sep1034_defaults("elicitation-sep1034-defaults")]
#[case::elicitation_sep1330_enums("elicitation-sep1330-enums")]
#[case::server_sse_polling("server-sse-polling")]
#[case::server_sse_multiple_streams("server-sse-multiple-streams")]
#[case::resources_list("resources-list")]
#[case::resources_read_text("resources-read-text")]
#[case::resources_read_binary("resources-read-binary")]
#[case::resources_templates_read("resources-templates-read")]
#[case::resources_subscribe("resources-subscribe")]
#[case::resources_unsubscribe("resources-unsubscribe")]
#[case::prompts_list("prompts-list")]
#[case::prompts_get_simple("prompts-get-simple")]
#[case::prompts_get_with_args("prompts-get-with-args")]
#[case::prompts_get_embedded_resource("prompts-get-embedded-resource")]
#[case::prompts_get_with_image("prompts-get-with-image")]
#[case::dns_rebinding_protection("dns-rebinding-protection")]
fn the_conformance_server_passes_the_official_conformance_scenario(#[case] scenario: &str) {
    run_server_scenario(mcp_harness::Bundled::Conformance, scenario);
}

/// Starts the bundled `kind` over streamable HTTP and runs one server scenario against it:
/// no check may fail or warn, and at least one must succeed.
fn run_server_scenario(kind: mcp_harness::Bundled, scenario: &str) {
    let server = mcp_harness::run(async move {
        mcp_harness::Server::start(mcp_harness::ServerSpec::bundled(
            kind,
            mcp_harness::Transport::StreamableHttp,
        ))
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
    });
    let checks = run_suite(scenario, &["server", "--url", server.url()]);
    assert!(
        checks.iter().any(|c| c["status"] == "SUCCESS"),
        "{scenario}: no successful check: {checks:#?}"
    );
}
