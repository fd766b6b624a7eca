//! Teardown across processes: LIFO order at exit, and no server left behind after a normal exit,
//! a panic or a SIGKILL of the test process.
//!
//! Each test re-executes this test binary as a "scenario" process that runs only the ignored
//! test `scenario_process` (with the scenario named in `MCP_HARNESS_TEST_SCENARIO`), so the
//! scenario ends exactly as a real test process ends, through libtest. The test then observes
//! what happened from outside: the bundled servers' event log, and their pids.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_harness::{
    AddressSource, Bundled, BundledServer, Readiness, Server, ServerSpec, Session, Target,
    Transport,
};

use crate::support::{eventually_blocking, pid_alive};

const SCENARIO_ENV: &str = "MCP_HARNESS_TEST_SCENARIO";
const DIR_ENV: &str = "MCP_HARNESS_TEST_SCENARIO_DIR";

/// The body of a scenario process; the teardown tests below start it in a child process.
#[test]
#[ignore = "entry point of the scenario processes started by the teardown tests"]
fn scenario_process() {
    let scenario = std::env::var(SCENARIO_ENV).expect("run by the teardown tests only");
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("scenario dir"));
    match scenario.as_str() {
        "lifo" => {
            mcp_harness::run(async move {
                for name in ["first", "second", "third"] {
                    let spec = BundledServer::new(Bundled::FastTest, Transport::Stdio)
                        .event_log(dir.join("events.jsonl"))
                        .subject(name)
                        .spec();
                    let s = Session::builder(Target::Stdio(spec))
                        .name(name)
                        // Room to record `session_closed` on a loaded machine before SIGTERM.
                        .stdio_exit_grace(Duration::from_secs(5))
                        .connect()
                        .await
                        .unwrap();
                    s.ping().await.unwrap();
                    // Keep it open until process exit: the exit hook must close it.
                    std::mem::forget(s);
                }
            });
            // Returning ends the test; libtest exits and the exit hook closes the sessions.
        }
        "exit-normal" | "exit-panic" | "sigkill" => {
            let grandchild = dir.join("grandchild");
            let pids = mcp_harness::run(async move {
                let server = Server::start(ServerSpec::bundled(
                    Bundled::FastTest,
                    Transport::StreamableHttp,
                ))
                .await
                .unwrap();
                let http = Session::connect(&server).await.unwrap();
                let stdio = Session::connect(Target::Stdio(ServerSpec::bundled(
                    Bundled::FastTest,
                    Transport::Stdio,
                )))
                .await
                .unwrap();
                // A server started through a wrapper: the process that matters is a
                // grandchild of the test process, out of PDEATHSIG's reach.
                let (wrapper, grandchild) = start_wrapper(&grandchild, "wait").await;
                let pids = vec![
                    server.pid(),
                    stdio.server_pid().unwrap(),
                    wrapper.pid(),
                    grandchild,
                ];
                std::mem::forget((server, http, stdio, wrapper));
                pids
            });
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            std::fs::write(dir.join("pids"), list.join("\n")).unwrap();
            println!("\nMCP_SCENARIO_READY");
            // Wait until the test has seen the servers alive (it closes our stdin).
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            match scenario.as_str() {
                "exit-normal" => {}
                "exit-panic" => panic!("scenario panics on purpose"),
                _ => loop {
                    std::thread::park();
                },
            }
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// A "server" that is a shell wrapper: it starts a child (`sleep`), writes the child's pid to
/// `pidfile`, reports ready, then runs `then` (`wait`, or a command that returns). Returns the
/// wrapper and its child's pid.
async fn start_wrapper(pidfile: &Path, then: &str) -> (Server, u32) {
    let script = format!(
        "sleep 600 & echo $! > '{}'; echo 'MCP_HARNESS_READY {{\"url\":\"http://127.0.0.1:9/mcp\"}}'; {then}",
        pidfile.display()
    );
    let wrapper = Server::start(
        ServerSpec::new("wrapper", "sh")
            .args(["-c", &script])
            .transport(Transport::StreamableHttp)
            .address(AddressSource::ReadyLine)
            .readiness(Readiness::AddressKnown),
    )
    .await
    .unwrap();
    let child = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (wrapper, child)
}

fn scenario_dir(name: &str) -> PathBuf {
    // Under the target folder, not the system's temp folder: a scenario's child is killed on
    // purpose and keeps its server logs, and `cargo clean` removes them with the rest.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mcp-harness-scenarios")
        .join(format!(
            "{name}-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "_")
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn scenario(name: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "teardown::scenario_process",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(SCENARIO_ENV, name)
    .env_remove("NEXTEST_ENV")
    .env(DIR_ENV, dir)
    .env("TMPDIR", dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn sessions_open_at_exit_are_closed_last_opened_first() {
    let dir = scenario_dir("lifo");
    let out = scenario("lifo", &dir).output().unwrap();
    assert!(
        out.status.success(),
        "scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.join("events.jsonl")).expect("the servers wrote events");
    let closed: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "session_closed")
        .map(|e| e["client"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(closed, ["third", "second", "first"], "event log:\n{log}");
}

fn assert_no_server_survives(mode: &str) {
    let dir = scenario_dir(mode);
    let mut child = scenario(mode, &dir).stdin(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the scenario ended before it was ready; stdout:\n{seen}"
        );
        if line.trim() == "MCP_SCENARIO_READY" {
            break;
        }
        seen.push_str(&line);
    }
    let pids: Vec<u32> = std::fs::read_to_string(dir.join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 4);
    assert!(
        pids.iter().all(|p| pid_alive(*p)),
        "servers run while the test process lives"
    );
    // Let the scenario go on: exit normally, panic, or (sigkill) wait to be killed.
    drop(child.stdin.take());
    if mode == "sigkill" {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    }
    let status = child.wait().unwrap();
    match mode {
        "exit-normal" => assert!(status.success()),
        "exit-panic" => assert_eq!(status.code(), Some(101)),
        _ => assert!(!status.success()),
    }
    eventually_blocking(
        "every server pid to be gone",
        Duration::from_secs(10),
        || pids.iter().all(|p| !pid_alive(*p)).then_some(()),
    );
}

#[test]
fn no_server_survives_a_normal_exit() {
    assert_no_server_survives("exit-normal");
}

#[test]
fn no_server_survives_a_panicking_test_process() {
    assert_no_server_survives("exit-panic");
}

#[test]
fn no_server_survives_sigkill_of_the_test_process() {
    assert_no_server_survives("sigkill");
}

/// What a server started in its process group goes with it: when the server is killed, and
/// when it exits by itself (a wrapper that returns early leaves no orphan running).
#[test]
fn processes_a_server_started_are_killed_with_it() {
    mcp_harness::run(async {
        let dir = scenario_dir("wrapper-exit");
        for exits_by_itself in [false, true] {
            let pidfile = dir.join(format!("grandchild-{exits_by_itself}"));
            // The wrapper exits when a line arrives on this FIFO (or waits for its child).
            let fifo = dir.join(format!("exit-{exits_by_itself}"));
            let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: plain syscall with a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
            let then = if exits_by_itself {
                format!("read line < '{}'", fifo.display())
            } else {
                "wait".to_owned()
            };
            let (server, grandchild) = start_wrapper(&pidfile, &then).await;
            assert!(pid_alive(grandchild));
            if exits_by_itself {
                // The wrapper exits; its child would stay, reparented, without the harness.
                tokio::task::spawn_blocking(move || std::fs::write(fifo, "exit\n"))
                    .await
                    .unwrap()
                    .unwrap();
            } else {
                server.kill().await.unwrap();
            }
            crate::support::eventually(
                "the server's own child to be gone",
                Duration::from_secs(10),
                || async { (!pid_alive(grandchild)).then_some(()) },
            )
            .await;
            // The watcher kills the group's leftovers, then publishes the exit: wait for it.
            crate::support::eventually(
                "the wrapper to be seen as exited",
                Duration::from_secs(10),
                || async { (!server.is_running()).then_some(()) },
            )
            .await;
        }
    });
}
