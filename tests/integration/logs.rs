//! Server logs: each file capped (head and tail kept, the cut said), the run's folder removed at
//! exit after a passing run, kept after a failing one. Exit behaviour needs a process that
//! exits: each test runs this test binary again as a child (`child_run_with_a_noisy_server`),
//! with its own `TMPDIR`, and looks at what the child left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_harness::{AddressSource, Readiness, Server, ServerSpec, Transport};

use crate::support::eventually;

/// Set by the parent tests: what the child run does at the end (`pass`, `err` or `panic`).
const OUTCOME: &str = "MCP_HARNESS_TEST_LOG_OUTCOME";
const CAP: u64 = 64 * 1024;

/// Not a test on its own: the child run of the tests below (it does nothing without
/// `MCP_HARNESS_TEST_LOG_OUTCOME`). A server writes 3 MB to stderr and 3 MB to stdout.
#[mcp_harness::test]
#[ignore = "run as a child process by the logs:: tests"]
async fn child_run_with_a_noisy_server() -> mcp_harness::Result<()> {
    let Ok(outcome) = std::env::var(OUTCOME) else {
        return Ok(());
    };
    let script = "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo ' LAST-STDERR-LINE' >&2; \
                  head -c 3000000 /dev/zero | tr '\\0' o; echo ' LAST-STDOUT-LINE'; \
                  echo 'MCP_HARNESS_READY {\"url\":\"http://127.0.0.1:9/mcp\"}'; exec sleep 600";
    let mut spec = ServerSpec::new("noisy", "sh")
        .args(["-c", script])
        .transport(Transport::StreamableHttp)
        .address(AddressSource::ReadyLine)
        .readiness(Readiness::AddressKnown);
    if std::env::var_os("MCP_HARNESS_LOG_CAP").is_none() {
        spec = spec.log_cap(CAP);
    }
    let server = Server::start(spec).await?;
    // The READY line comes after all the noise; the stderr drain may still be behind it.
    eventually(
        "the last stderr line in the log",
        Duration::from_secs(10),
        || {
            let logs = server.logs();
            async move { logs.contains("LAST-STDERR-LINE").then_some(()) }
        },
    )
    .await;
    let logs = server.logs();
    assert!(logs.len() < 2 * CAP as usize + 400, "{} bytes", logs.len());
    match outcome.as_str() {
        "pass" => Ok(()),
        "err" => Err(mcp_harness::Error::Invalid {
            what: "the child run".into(),
            reason: "asked to fail".into(),
        }),
        _ => panic!("asked to fail"),
    }
}

/// Runs the child with `outcome` in a fresh `TMPDIR`; returns that folder and whether the child
/// test passed.
fn child_run(outcome: &str, extra_env: &[(&str, &str)]) -> (tempfile::TempDir, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = crate::support::rerun_test_binary("logs::child_run_with_a_noisy_server");
    cmd.env("TMPDIR", tmp.path())
        .env(OUTCOME, outcome)
        .env_remove("MCP_HARNESS_LOG_DIR")
        .env_remove("MCP_HARNESS_KEEP_LOGS")
        .env_remove("MCP_HARNESS_LOG_CAP");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("1 passed") || text.contains("1 failed"),
        "the child run did not run its test:\n{text}"
    );
    (tmp, out.status.success())
}

/// The per-run folders the child left under `<tmp>/mcp-harness-logs/`.
fn run_folders(tmp: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(tmp.join("mcp-harness-logs")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn the_log(folder: &Path, suffix: &str) -> String {
    let file = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", folder.display()));
    String::from_utf8(std::fs::read(file).unwrap()).unwrap()
}

#[test]
fn a_passing_run_leaves_no_logs_behind() {
    let (tmp, passed) = child_run("pass", &[]);
    assert!(passed);
    assert_eq!(run_folders(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_failing_run_keeps_its_logs_capped_with_head_and_tail() {
    for outcome in ["panic", "err"] {
        let (tmp, passed) = child_run(outcome, &[]);
        assert!(!passed, "{outcome}");
        let folders = run_folders(tmp.path());
        assert_eq!(folders.len(), 1, "{outcome}: {folders:?}");
        for (suffix, fill, last) in [
            (".stderr.log", 'e', "LAST-STDERR-LINE"),
            (".stdout.log", 'o', "LAST-STDOUT-LINE"),
        ] {
            let log = the_log(&folders[0], suffix);
            // 3 MB written, 64 KiB kept: a quarter at the head, the rest at the tail.
            assert!(
                log.len() <= CAP as usize + 200,
                "{outcome}{suffix}: {} bytes",
                log.len()
            );
            assert!(
                log.starts_with(&fill.to_string().repeat(1000)),
                "{outcome}{suffix}"
            );
            assert!(log.contains(last), "{outcome}{suffix}: the tail is kept");
            let marker = log
                .lines()
                .find(|l| l.starts_with("[mcp-harness: "))
                .unwrap_or_else(|| panic!("{outcome}{suffix}: no cut marker"));
            let cut: u64 = marker
                .trim_start_matches("[mcp-harness: ")
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(cut > 2_900_000, "{outcome}{suffix}: {marker}");
        }
    }
}

#[test]
fn keep_logs_set_keeps_a_passing_runs_logs() {
    let (tmp, passed) = child_run("pass", &[("MCP_HARNESS_KEEP_LOGS", "1")]);
    assert!(passed);
    assert_eq!(run_folders(tmp.path()).len(), 1);
}

#[test]
fn the_cap_comes_from_the_environment_when_the_spec_sets_none() {
    let (tmp, _) = child_run("panic", &[("MCP_HARNESS_LOG_CAP", "16K")]);
    let log = the_log(&run_folders(tmp.path())[0], ".stderr.log");
    assert!(log.len() <= 16 * 1024 + 200, "{} bytes", log.len());
    assert!(log.contains("LAST-STDERR-LINE") && log.contains("bytes cut here"));
}
