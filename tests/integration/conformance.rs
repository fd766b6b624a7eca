//! The official MCP conformance suite (`@modelcontextprotocol/conformance`) judges the OAuth
//! client, the bundled server, and the client in both protocol eras. Each client scenario stands
//! up its own authorization server and MCP server (spec
//! conformant, and varied on purpose: metadata locations, scope sources, token endpoint auth
//! methods, pre-registered clients), runs `mcp-harness check --oauth <url>` against them, and
//! records a check for every request the client made. A scenario passes when no check failed
//! or warned and the client exited 0. The server scenarios that need no tool of the suite's
//! own (initialize, ping, logging, listing, completion, DNS rebinding protection) run against
//! a bundled `fast-test` over streamable HTTP; all of them, including the ones that need the
//! suite's tools, resources and prompts, run against the bundled `conformance` server.
//!
//! Every client scenario of the frozen requirement sets 2025-11-25 and 2026-07-28, the
//! authorization ones included, runs with suite 0.2.0-alpha.12 against `mcp-harness check
//! --protocol <set>` (with `--oauth` for authorization), with a baseline of expected failures
//! ([`BASELINE`]), each with its reason.
//!
//! `scripts/setup.sh` installs both suites and the Node 22 they need: 0.1.16 under
//! `$MCP_HARNESS_CONFORMANCE_DIR` (default `~/.cache/mcp-harness/conformance`), 0.2.0-alpha.12
//! under `$MCP_HARNESS_CONFORMANCE_ALPHA_DIR` (default `~/.cache/mcp-harness/conformance-alpha`).

use std::collections::BTreeSet;
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

/// One installed version of the suite.
pub(crate) struct Suite {
    /// The exact npm version.
    version: &'static str,
    /// The environment variable that overrides the install prefix.
    dir_env: &'static str,
    /// The default install prefix, under `$HOME`.
    default_dir: &'static str,
}

/// The OAuth client scenarios and the server scenarios.
const SUITE: Suite = Suite {
    version: "0.1.16",
    dir_env: "MCP_HARNESS_CONFORMANCE_DIR",
    default_dir: ".cache/mcp-harness/conformance",
};

/// The frozen requirement sets 2025-11-25 and 2026-07-28 (`--requirements`, `--spec-version`).
pub(crate) const ALPHA: Suite = Suite {
    version: "0.2.0-alpha.12",
    dir_env: "MCP_HARNESS_CONFORMANCE_ALPHA_DIR",
    default_dir: ".cache/mcp-harness/conformance-alpha",
};

impl Suite {
    fn dir(&self) -> PathBuf {
        std::env::var_os(self.dir_env)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(self.default_dir)
            })
    }

    /// Node 22 and the suite's entry point; fails with how to install them when missing or
    /// when another version is installed there.
    fn paths(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir();
        let node = dir.join("node_modules/.bin/node");
        let package = dir.join("node_modules/@modelcontextprotocol/conformance");
        let entry = package.join("dist/index.js");
        let installed = std::fs::read_to_string(package.join("package.json"))
            .ok()
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .and_then(|p| p["version"].as_str().map(str::to_owned));
        assert!(
            node.exists() && entry.exists() && installed.as_deref() == Some(self.version),
            "the MCP conformance suite {} is not installed in {} (found: {}): run \
             scripts/setup.sh (it runs npm install --prefix {} node@22 \
             @modelcontextprotocol/conformance@{}; ${} chooses another directory)",
            self.version,
            dir.display(),
            installed.as_deref().unwrap_or("nothing"),
            dir.display(),
            self.version,
            self.dir_env,
        );
        (node, entry)
    }
}

/// Runs one client scenario against `mcp-harness check --oauth <extra>`.
fn run_client_scenario(scenario: &str, extra: &str) -> Vec<Value> {
    // Suite 0.1.16 judges the handshake era (2025-11-25): pinned, so that the suite's run in
    // the stateless era (MCP_HARNESS_PROTOCOL) leaves these scenarios as they are.
    let command = format!("{CLI} check --protocol 2025-11-25 --oauth {extra}");
    run_suite(
        scenario,
        &["client", "--command", command.trim(), "--timeout", "60000"],
    )
}

/// Runs suite 0.1.16 (`client ...` or `server ...` arguments) for `scenario`: see
/// [`run_suite_strictly`].
fn run_suite(scenario: &str, args: &[&str]) -> Vec<Value> {
    run_suite_strictly(&SUITE, scenario, args)
}

/// Runs `suite` (`client ...` or `server ...` arguments) for `scenario` and returns its
/// checks, after asserting that none failed, warned or was skipped and that the run itself
/// passed.
pub(crate) fn run_suite_strictly(suite: &Suite, scenario: &str, args: &[&str]) -> Vec<Value> {
    let run = run_suite_with(suite, scenario, args);
    let skipped: Vec<&Value> = run
        .checks
        .iter()
        .filter(|c| c["status"] == "SKIPPED")
        .collect();
    assert!(
        skipped.is_empty(),
        "{scenario}: the suite skipped checks: {skipped:#?}"
    );
    assert!(
        run.passed(),
        "{scenario}: the conformance suite found problems:\n{}\n--- the suite\n{}\n--- the \
         client's stderr\n{}",
        run.bad.join("\n"),
        run.suite_output,
        run.client_stderr
    );
    run.checks
}

/// What one run of the suite found.
struct SuiteRun {
    checks: Vec<Value>,
    /// Every check that failed or warned, as `STATUS id (name): message`.
    bad: Vec<String>,
    /// The ids of those checks.
    bad_ids: BTreeSet<String>,
    /// Whether the suite's own verdict was a pass (its exit status).
    suite_passed: bool,
    /// What the suite printed (its verdict and the client's output on a failure).
    suite_output: String,
    client_stderr: String,
}

impl SuiteRun {
    fn passed(&self) -> bool {
        self.bad.is_empty() && self.suite_passed
    }
}

/// Runs `suite` for `scenario` and collects its checks, without judging them.
fn run_suite_with(suite: &Suite, scenario: &str, args: &[&str]) -> SuiteRun {
    let (node, entry) = suite.paths();
    let out = tempdir(scenario);
    let run = Command::new(node)
        .arg(entry)
        .args(args)
        .args(["--scenario", scenario, "-o"])
        .arg(&out)
        .output()
        .expect("the conformance suite runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let checks_file = find(&out, "checks.json").unwrap_or_else(|| {
        panic!(
            "{scenario}: the suite wrote no checks.json\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        )
    });
    let checks: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&checks_file).unwrap()).unwrap();
    let client_stderr =
        std::fs::read_to_string(checks_file.with_file_name("stderr.txt")).unwrap_or_default();
    let bad_checks: Vec<&Value> = checks
        .iter()
        .filter(|c| !matches!(c["status"].as_str(), Some("SUCCESS" | "INFO" | "SKIPPED")))
        .collect();
    let bad = bad_checks
        .iter()
        .map(|c| {
            format!(
                "{} {} ({}): {} {}",
                c["status"].as_str().unwrap_or("?"),
                c["id"].as_str().unwrap_or("?"),
                c["name"].as_str().unwrap_or("?"),
                c["description"].as_str().unwrap_or(""),
                c["errorMessage"].as_str().unwrap_or("")
            )
        })
        .collect();
    let bad_ids: BTreeSet<String> = bad_checks
        .iter()
        .map(|c| c["id"].as_str().unwrap_or("?").to_owned())
        .collect();
    // What the suite wrote is kept only when something in it failed.
    if bad_ids.is_empty() && run.status.success() {
        let _ = std::fs::remove_dir_all(&out);
    }
    SuiteRun {
        checks,
        bad,
        bad_ids,
        suite_passed: run.status.success(),
        suite_output: format!("{stdout}{stderr}"),
        client_stderr,
    }
}

/// A fresh output directory for one run: unique within the process too, since under `cargo
/// test` two tests may run the same scenario at once (against two servers, or two suites).
fn tempdir(scenario: &str) -> PathBuf {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join("mcp-harness-conformance")
        .join(format!(
            "{}-{}-{run}",
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
/// client implements, with the check that proves its point. Not here: the draft and extension
/// scenarios (suite 0.2.0-alpha.12 judges those, `auth/basic-cimd` included, below).
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
    run_server_scenario(&SUITE, mcp_harness::Bundled::FastTest, scenario, &[]);
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
    run_server_scenario(&SUITE, mcp_harness::Bundled::Conformance, scenario, &[]);
}

/// Starts the bundled `kind` over streamable HTTP and runs one server scenario of `suite`
/// against it, with `args` after the url: no check may fail, warn or be skipped, at least one
/// must succeed, and the suite must pass.
pub(crate) fn run_server_scenario(
    suite: &Suite,
    kind: mcp_harness::Bundled,
    scenario: &str,
    args: &[&str],
) {
    let server = mcp_harness::run(async move {
        mcp_harness::Server::start(mcp_harness::ServerSpec::bundled(
            kind,
            mcp_harness::Transport::StreamableHttp,
        ))
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
    });
    let mut all = vec!["server", "--url", server.url()];
    all.extend_from_slice(args);
    let checks = run_suite_strictly(suite, scenario, &all);
    assert!(
        checks.iter().any(|c| c["status"] == "SUCCESS"),
        "{kind}, {scenario}: no successful check: {checks:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The client in both protocol eras: the frozen requirement sets of suite 0.2.0-alpha.12.

/// The custom-header values `http-custom-headers` hands the client (its MCP_CONFORMANCE_CONTEXT):
/// plain, numeric and boolean values, and ones that need Base64 (non-ASCII, edge whitespace,
/// control characters).
const CUSTOM_HEADERS: &str = r#"--call 'test_custom_headers:{"region":"us-west1","priority":42,"verbose":false,"debug":true,"empty_val":"","method_val":"test-method","float_val":3.14159,"non_ascii_val":"Hello, \u4e16\u754c","whitespace_val":" padded ","leading_space_val":" us-west1","trailing_space_val":"us-west1 ","internal_space_val":"us west 1","control_char_val":"line1\nline2","crlf_val":"line1\r\nline2","tab_val":"\tindented","query":"SELECT * FROM users"}' --call 'test_custom_headers_null:{"region":"us-east1","priority":1,"verbose":null,"query":"SELECT 1"}'"#;

/// `http-invalid-tool-headers` lists one valid tool and eleven whose `x-mcp-header` annotations
/// break a rule of SEP-2243. The client is asked to call all twelve: a conformant client calls
/// `valid_tool` and refuses the others without sending them (the scenario lets the client exit
/// non-zero).
const INVALID_TOOL_HEADERS: &str = r#"--call 'valid_tool:{"region":"us-west1"}' --call 'invalid_empty_header:{"value":"x"}' --call 'invalid_object_header:{"data":{}}' --call 'invalid_array_header:{"items":["x"]}' --call 'invalid_null_header:{"nil":null}' --call 'invalid_number_header:{"score":1.5}' --call 'invalid_duplicate_same_case:{"field1":"x","field2":"y"}' --call 'invalid_duplicate_diff_case:{"field1":"x","field2":"y"}' --call 'invalid_space_in_name:{"value":"x"}' --call 'invalid_colon_in_name:{"value":"x"}' --call 'invalid_non_ascii_name:{"value":"x"}' --call 'invalid_control_char_name:{"value":"x"}'"#;

/// Every client scenario (authorization included) of the two frozen requirement sets (`conformance list
/// --requirements <set>`), and the `check` flags that make the client do what the scenario's
/// server expects (read from the scenarios' sources). `--protocol` is always the set's own
/// revision, so that MCP_HARNESS_PROTOCOL does not change what is judged.
const CLIENT_SCENARIOS: &[(&str, &str, &str)] = &[
    ("2025-11-25", "initialize", ""),
    (
        "2025-11-25",
        "tools_call",
        r#"--call 'add_numbers:{"a":2,"b":3}'"#,
    ),
    (
        "2025-11-25",
        "elicitation-sep1034-client-defaults",
        "--elicit defaults --call test_client_elicitation_defaults",
    ),
    // The tool's POST stream ends after a priming event with `retry: 500`; the answer comes on
    // the GET stream the client must open (after 500 ms, with Last-Event-ID).
    ("2025-11-25", "sse-retry", "--call test_reconnection"),
    (
        "2026-07-28",
        "tools_call",
        r#"--call 'add_numbers:{"a":2,"b":3}'"#,
    ),
    // The first request is refused with -32022 (supported: 2026-07-28): the client retries.
    ("2026-07-28", "request-metadata", ""),
    // Two tools answer input_required (an elicitation, with and without requestState), one is
    // unrelated, one answers without resultType.
    (
        "2026-07-28",
        "sep-2322-client-request-state",
        r#"--elicit '{"confirmed":true}' --call test_mrtr_echo_state --call test_mrtr_no_state --call test_mrtr_unrelated --call test_mrtr_no_result_type"#,
    ),
    // Mcp-Name must mirror the tool, the resource URI (percent-encoded, with a query) and the
    // prompt name.
    (
        "2026-07-28",
        "http-standard-headers",
        "--call test_headers --call my-hyphenated-tool --read 'file:///path/to/file%20name.txt' \
         --read 'https://example.com/resource?id=123' --prompt test_prompt",
    ),
    ("2026-07-28", "http-custom-headers", CUSTOM_HEADERS),
    (
        "2026-07-28",
        "http-invalid-tool-headers",
        INVALID_TOOL_HEADERS,
    ),
    ("2026-07-28", "json-schema-ref-no-deref", ""),
    // The authorization scenarios: `check --oauth` runs the whole flow against the suite's
    // authorization server (the 2026-07-28 set adds SEP-837 application_type, RFC 9207 iss,
    // RFC 8414 issuer and RFC 9728 resource checks, and SEP-2352 migration).
    ("2025-11-25", "auth/metadata-default", "--oauth"),
    ("2025-11-25", "auth/metadata-var1", "--oauth"),
    ("2025-11-25", "auth/metadata-var2", "--oauth"),
    ("2025-11-25", "auth/metadata-var3", "--oauth"),
    ("2025-11-25", "auth/basic-cimd", OAUTH_CIMD),
    ("2025-11-25", "auth/scope-from-www-authenticate", "--oauth"),
    ("2025-11-25", "auth/scope-from-scopes-supported", "--oauth"),
    ("2025-11-25", "auth/scope-omitted-when-undefined", "--oauth"),
    ("2025-11-25", "auth/scope-step-up", OAUTH_STEP_UP),
    ("2025-11-25", "auth/scope-retry-limit", OAUTH_STEP_UP),
    ("2025-11-25", "auth/token-endpoint-auth-basic", "--oauth"),
    ("2025-11-25", "auth/token-endpoint-auth-post", "--oauth"),
    ("2025-11-25", "auth/token-endpoint-auth-none", "--oauth"),
    ("2025-11-25", "auth/pre-registration", OAUTH_PRE_REGISTERED),
    ("2026-07-28", "auth/metadata-default", "--oauth"),
    ("2026-07-28", "auth/metadata-var1", "--oauth"),
    ("2026-07-28", "auth/metadata-var2", "--oauth"),
    ("2026-07-28", "auth/metadata-var3", "--oauth"),
    ("2026-07-28", "auth/basic-cimd", OAUTH_CIMD),
    ("2026-07-28", "auth/scope-from-www-authenticate", "--oauth"),
    ("2026-07-28", "auth/scope-from-scopes-supported", "--oauth"),
    ("2026-07-28", "auth/scope-omitted-when-undefined", "--oauth"),
    ("2026-07-28", "auth/scope-step-up", OAUTH_STEP_UP),
    ("2026-07-28", "auth/scope-retry-limit", OAUTH_STEP_UP),
    ("2026-07-28", "auth/token-endpoint-auth-basic", "--oauth"),
    ("2026-07-28", "auth/token-endpoint-auth-post", "--oauth"),
    ("2026-07-28", "auth/token-endpoint-auth-none", "--oauth"),
    ("2026-07-28", "auth/pre-registration", OAUTH_PRE_REGISTERED),
    ("2026-07-28", "auth/resource-mismatch", "--oauth"),
    ("2026-07-28", "auth/offline-access-scope", "--oauth"),
    ("2026-07-28", "auth/offline-access-not-supported", "--oauth"),
    (
        "2026-07-28",
        "auth/authorization-server-migration",
        "--oauth",
    ),
    ("2026-07-28", "auth/iss-supported", "--oauth"),
    ("2026-07-28", "auth/iss-not-advertised", "--oauth"),
    ("2026-07-28", "auth/iss-supported-missing", "--oauth"),
    ("2026-07-28", "auth/iss-wrong-issuer", "--oauth"),
    ("2026-07-28", "auth/iss-unexpected", "--oauth"),
    ("2026-07-28", "auth/iss-normalized", "--oauth"),
    ("2026-07-28", "auth/metadata-issuer-mismatch", "--oauth"),
];

/// `check --oauth` for the step-up scenarios: a tool call is the request that wants more scope.
const OAUTH_STEP_UP: &str = "--oauth --call test-tool";

/// `check --oauth` with the client ID metadata document url the suite expects (fixed by the
/// scenario; its authorization server takes the url as the client id without fetching it).
const OAUTH_CIMD: &str =
    "--oauth --oauth-client-metadata-url https://conformance-test.local/client-metadata.json";

/// `check --oauth` with the suite's pre-registered client (`auth/pre-registration`).
const OAUTH_PRE_REGISTERED: &str =
    "--oauth --oauth-client-id pre-registered-client --oauth-client-secret pre-registered-secret";

/// Client scenarios expected to fail today: `(set, scenario, the ids of the checks that fail or
/// warn, why)`. A scenario here must fail with exactly those checks: one that passes, or fails
/// differently, fails its test, so that the baseline follows the client.
const BASELINE: &[(&str, &str, &[&str], &str)] = &[];

fn client_scenario_flags(set: &str, scenario: &str) -> &'static str {
    CLIENT_SCENARIOS
        .iter()
        .find(|(s, name, _)| *s == set && *name == scenario)
        .map(|(_, _, flags)| *flags)
        .unwrap_or_else(|| panic!("{scenario} ({set}) is not in CLIENT_SCENARIOS"))
}

/// One test per client scenario of each requirement set (the same list as
/// [`CLIENT_SCENARIOS`], which `the_client_scenario_list_is_the_suites_requirement_sets`
/// compares with the suite's own).
#[rstest]
#[case::initialize_2025_11_25("2025-11-25", "initialize")]
#[case::tools_call_2025_11_25("2025-11-25", "tools_call")]
#[case::elicitation_sep1034_client_defaults_2025_11_25(
    "2025-11-25",
    "elicitation-sep1034-client-defaults"
)]
#[case::sse_retry_2025_11_25("2025-11-25", "sse-retry")]
#[case::tools_call_2026_07_28("2026-07-28", "tools_call")]
#[case::request_metadata_2026_07_28("2026-07-28", "request-metadata")]
#[case::sep_2322_client_request_state_2026_07_28("2026-07-28", "sep-2322-client-request-state")]
#[case::http_standard_headers_2026_07_28("2026-07-28", "http-standard-headers")]
#[case::http_custom_headers_2026_07_28("2026-07-28", "http-custom-headers")]
#[case::http_invalid_tool_headers_2026_07_28("2026-07-28", "http-invalid-tool-headers")]
#[case::json_schema_ref_no_deref_2026_07_28("2026-07-28", "json-schema-ref-no-deref")]
#[case::auth_metadata_default_2025_11_25("2025-11-25", "auth/metadata-default")]
#[case::auth_metadata_var1_2025_11_25("2025-11-25", "auth/metadata-var1")]
#[case::auth_metadata_var2_2025_11_25("2025-11-25", "auth/metadata-var2")]
#[case::auth_metadata_var3_2025_11_25("2025-11-25", "auth/metadata-var3")]
#[case::auth_basic_cimd_2025_11_25("2025-11-25", "auth/basic-cimd")]
#[case::auth_scope_from_www_authenticate_2025_11_25(
    "2025-11-25",
    "auth/scope-from-www-authenticate"
)]
#[case::auth_scope_from_scopes_supported_2025_11_25(
    "2025-11-25",
    "auth/scope-from-scopes-supported"
)]
#[case::auth_scope_omitted_when_undefined_2025_11_25(
    "2025-11-25",
    "auth/scope-omitted-when-undefined"
)]
#[case::auth_scope_step_up_2025_11_25("2025-11-25", "auth/scope-step-up")]
#[case::auth_scope_retry_limit_2025_11_25("2025-11-25", "auth/scope-retry-limit")]
#[case::auth_token_endpoint_auth_basic_2025_11_25("2025-11-25", "auth/token-endpoint-auth-basic")]
#[case::auth_token_endpoint_auth_post_2025_11_25("2025-11-25", "auth/token-endpoint-auth-post")]
#[case::auth_token_endpoint_auth_none_2025_11_25("2025-11-25", "auth/token-endpoint-auth-none")]
#[case::auth_pre_registration_2025_11_25("2025-11-25", "auth/pre-registration")]
#[case::auth_metadata_default_2026_07_28("2026-07-28", "auth/metadata-default")]
#[case::auth_metadata_var1_2026_07_28("2026-07-28", "auth/metadata-var1")]
#[case::auth_metadata_var2_2026_07_28("2026-07-28", "auth/metadata-var2")]
#[case::auth_metadata_var3_2026_07_28("2026-07-28", "auth/metadata-var3")]
#[case::auth_basic_cimd_2026_07_28("2026-07-28", "auth/basic-cimd")]
#[case::auth_scope_from_www_authenticate_2026_07_28(
    "2026-07-28",
    "auth/scope-from-www-authenticate"
)]
#[case::auth_scope_from_scopes_supported_2026_07_28(
    "2026-07-28",
    "auth/scope-from-scopes-supported"
)]
#[case::auth_scope_omitted_when_undefined_2026_07_28(
    "2026-07-28",
    "auth/scope-omitted-when-undefined"
)]
#[case::auth_scope_step_up_2026_07_28("2026-07-28", "auth/scope-step-up")]
#[case::auth_scope_retry_limit_2026_07_28("2026-07-28", "auth/scope-retry-limit")]
#[case::auth_token_endpoint_auth_basic_2026_07_28("2026-07-28", "auth/token-endpoint-auth-basic")]
#[case::auth_token_endpoint_auth_post_2026_07_28("2026-07-28", "auth/token-endpoint-auth-post")]
#[case::auth_token_endpoint_auth_none_2026_07_28("2026-07-28", "auth/token-endpoint-auth-none")]
#[case::auth_pre_registration_2026_07_28("2026-07-28", "auth/pre-registration")]
#[case::auth_resource_mismatch_2026_07_28("2026-07-28", "auth/resource-mismatch")]
#[case::auth_offline_access_scope_2026_07_28("2026-07-28", "auth/offline-access-scope")]
#[case::auth_offline_access_not_supported_2026_07_28(
    "2026-07-28",
    "auth/offline-access-not-supported"
)]
#[case::auth_authorization_server_migration_2026_07_28(
    "2026-07-28",
    "auth/authorization-server-migration"
)]
#[case::auth_iss_supported_2026_07_28("2026-07-28", "auth/iss-supported")]
#[case::auth_iss_not_advertised_2026_07_28("2026-07-28", "auth/iss-not-advertised")]
#[case::auth_iss_supported_missing_2026_07_28("2026-07-28", "auth/iss-supported-missing")]
#[case::auth_iss_wrong_issuer_2026_07_28("2026-07-28", "auth/iss-wrong-issuer")]
#[case::auth_iss_unexpected_2026_07_28("2026-07-28", "auth/iss-unexpected")]
#[case::auth_iss_normalized_2026_07_28("2026-07-28", "auth/iss-normalized")]
#[case::auth_metadata_issuer_mismatch_2026_07_28("2026-07-28", "auth/metadata-issuer-mismatch")]
fn the_client_passes_the_official_requirement_set_scenario(
    #[case] set: &str,
    #[case] scenario: &str,
) {
    let flags = client_scenario_flags(set, scenario);
    let command = format!("{CLI} check --protocol {set} --timeout 15s {flags}");
    let run = run_suite_with(
        &ALPHA,
        scenario,
        &[
            "client",
            "--spec-version",
            set,
            "--command",
            command.trim(),
            "--timeout",
            "90000",
        ],
    );
    let what = format!(
        "{scenario} ({set})\n--- failed or warned\n{}\n--- the suite\n{}\n--- the client's stderr\n{}",
        run.bad.join("\n"),
        run.suite_output,
        run.client_stderr
    );
    assert!(
        run.checks.iter().any(|c| c["status"] == "SUCCESS") || !run.bad.is_empty(),
        "{what}: the suite judged nothing (no check succeeded or failed)"
    );
    match BASELINE
        .iter()
        .find(|(s, name, _, _)| *s == set && *name == scenario)
    {
        None => assert!(run.passed(), "{what}"),
        Some((_, _, expected, why)) => {
            assert!(
                !run.passed(),
                "{scenario} ({set}) passes now: remove it from the baseline (it was there \
                 because: {why})"
            );
            let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(
                run.bad_ids, expected,
                "{scenario} ({set}) fails differently than the baseline says (it is there \
                 because: {why}); update the baseline or fix the client\n{what}"
            );
        }
    }
}

/// The OAuth client credentials extension (`io.modelcontextprotocol/oauth-client-credentials`):
/// the suite hands the client its credentials in `MCP_CONFORMANCE_CONTEXT` (a client secret,
/// or a freshly generated ES256 private key), which a small wrapper passes to `check` the way a
/// CI job would: the client id as a flag, the secret or key in the environment. Extension
/// scenarios are not on the spec timeline, so a run for a revision needs `--force`.
#[rstest]
#[case::basic_2025_11_25("2025-11-25", "auth/client-credentials-basic")]
#[case::jwt_2025_11_25("2025-11-25", "auth/client-credentials-jwt")]
#[case::basic_2026_07_28("2026-07-28", "auth/client-credentials-basic")]
#[case::jwt_2026_07_28("2026-07-28", "auth/client-credentials-jwt")]
fn the_client_passes_the_client_credentials_extension_scenarios(
    #[case] revision: &str,
    #[case] scenario: &str,
) {
    let (node, _) = ALPHA.paths();
    let dir = tempfile::tempdir().expect("a folder for the wrapper");
    let wrapper = dir.path().join("client.sh");
    let script = format!(
        r#"#!/bin/sh
set -e
get() {{ '{node}' -e 'const v = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || "{{}}")[process.argv[1]]; process.stdout.write(v == null ? "" : String(v))' "$1"; }}
secret=$(get client_secret)
key=$(get private_key_pem)
alg=$(get signing_algorithm)
if [ -n "$secret" ]; then export MCP_HARNESS_OAUTH_CLIENT_SECRET="$secret"; fi
if [ -n "$key" ]; then export MCP_HARNESS_OAUTH_PRIVATE_KEY="$key"; fi
exec '{CLI}' check --protocol {revision} --timeout 15s --oauth-client-id "$(get client_id)" \
  --oauth-client-credentials --oauth-signing-alg "${{alg:-ES256}}" "$@"
"#,
        node = node.display(),
    );
    std::fs::write(&wrapper, script).unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();
    let command = wrapper.display().to_string();
    let args = [
        "client",
        "--spec-version",
        revision,
        "--force",
        "--command",
        command.as_str(),
        "--timeout",
        "60000",
    ];
    let checks = run_suite_strictly(&ALPHA, scenario, &args);
    let proof = if scenario.ends_with("jwt") {
        "client-credentials-jwt-verified"
    } else {
        "client-credentials-basic-auth"
    };
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == proof && c["status"] == "SUCCESS"),
        "{scenario} ({revision}): no successful {proof}: {checks:#?}"
    );
}

/// The scenario list above is exactly the suite's: every client scenario that each
/// frozen requirement set names, and the baseline names only listed scenarios.
#[test]
fn the_client_scenario_list_is_the_suites_requirement_sets() {
    let (node, entry) = ALPHA.paths();
    let mut listed = BTreeSet::new();
    for set in ["2025-11-25", "2026-07-28"] {
        let out = Command::new(&node)
            .arg(&entry)
            .args(["list", "--requirements", set])
            .output()
            .expect("the conformance suite runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "list --requirements {set}: {text}");
        // The required client scenarios: the `  - name` lines of the "Client scenarios"
        // section, up to the scenarios that are run but never scored.
        let section = text
            .split("Client scenarios")
            .nth(1)
            .and_then(|rest| rest.split("never scored").next())
            .unwrap_or_else(|| panic!("no client scenarios in list --requirements {set}:\n{text}"));
        for line in section.lines() {
            if let Some(name) = line.trim().strip_prefix("- ") {
                listed.insert((set.to_owned(), name.trim().to_owned()));
            }
        }
    }
    let ours: BTreeSet<(String, String)> = CLIENT_SCENARIOS
        .iter()
        .map(|(set, name, _)| ((*set).to_owned(), (*name).to_owned()))
        .collect();
    assert_eq!(
        ours, listed,
        "CLIENT_SCENARIOS differs from the suite's requirement sets"
    );
    for (set, name, _, why) in BASELINE {
        assert!(
            ours.contains(&((*set).to_owned(), (*name).to_owned())),
            "the baseline names {name} ({set}), which is not a client scenario ({why})"
        );
        assert!(
            !why.trim().is_empty(),
            "the baseline entry {name} ({set}) gives no reason"
        );
    }
}

/// The suite's authorization-server scenarios (`conformance authorization`:
/// `authorization-server-metadata-endpoint`, `authorization-code-grant`) judge the built-in
/// authorization server, in each revision. The suite prints an authorization url for a person
/// to open; the test plays that person (the built-in server approves at once and redirects to
/// the suite's callback).
#[rstest]
#[case::revision_2025_11_25("2025-11-25")]
#[case::revision_2026_07_28("2026-07-28")]
#[mcp_harness::test]
async fn the_built_in_authorization_server_passes_the_suites_authorization_scenarios(
    #[case] revision: &str,
) {
    use mcp_harness::{
        Bundled, BundledAuth, BundledServer, OAuthClient, OAuthServerConfig, Server, Transport,
    };
    use tokio::io::AsyncBufReadExt as _;
    // The suite's client: public (it picks `none` when the metadata offers it), on a loopback
    // callback.
    let config = OAuthServerConfig {
        clients: vec![OAuthClient {
            client_id: "conformance-suite".into(),
            client_secret: None,
            token_endpoint_auth_method: "none".into(),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            jwks: None,
        }],
        ..OAuthServerConfig::default()
    };
    let server = Server::start(
        BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
            .auth(BundledAuth::OAuth(Box::new(config)))
            .spec(),
    )
    .await
    .expect("fast-test with OAuth starts");
    let issuer = reqwest::Url::parse(server.url())
        .expect("a url")
        .origin()
        .ascii_serialization();
    // A free port for the suite's callback server (the suite binds it itself).
    let callback_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (node, entry) = ALPHA.paths();
    let out = tempdir(&format!("authorization-{revision}"));
    let mut suite = tokio::process::Command::new(node)
        .arg(entry)
        .args(["authorization", "--url", &issuer])
        .args([
            "--client-id",
            "conformance-suite",
            "--resource",
            server.url(),
        ])
        .args(["-p", &callback_port.to_string(), "--spec-version", revision])
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the conformance suite runs");
    let mut lines = tokio::io::BufReader::new(suite.stdout.take().expect("piped")).lines();
    let mut printed = String::new();
    let mut authorize_url = None;
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with(&format!("{issuer}/authorize?")) {
                authorize_url = Some(line.trim().to_owned());
            }
            if line.contains("Callback server started") {
                break;
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the suite never asked for the authorization:\n{printed}"
    );
    let url = authorize_url.unwrap_or_else(|| panic!("no authorization url:\n{printed}"));
    // The person's browser: follows the redirect to the suite's callback.
    let landed = reqwest::get(&url).await.expect("the authorization request");
    assert!(landed.status().is_success(), "{}", landed.status());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
        }
        suite.wait().await
    })
    .await
    .expect("the suite finishes")
    .expect("the suite's exit status");
    let mut checks = Vec::new();
    for dir in std::fs::read_dir(&out)
        .expect("the suite's output")
        .flatten()
    {
        if let Some(file) = find(&dir.path(), "checks.json") {
            let parsed: Vec<Value> =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            checks.extend(parsed);
        }
    }
    for id in ["authorization-server-metadata", "authorization-code-grant"] {
        assert!(has_success(&checks, id), "no successful {id}:\n{printed}");
    }
    let bad: BTreeSet<String> = checks
        .iter()
        .filter(|c| !matches!(c["status"].as_str(), Some("SUCCESS" | "INFO")))
        .map(|c| c["id"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert!(
        bad.is_empty(),
        "the suite failed or warned: {bad:?}\n{printed}"
    );
    // A warning does not fail the suite's run; anything else would.
    assert!(ended.success(), "{printed}");
    let _ = std::fs::remove_dir_all(&out);
}
