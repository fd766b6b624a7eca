//! Process lifecycle: stop signals, the watched pid, the port file.

use std::{future::Future, io::Write, path::Path, time::Duration};

use tokio::signal::unix::{SignalKind, signal};

use crate::options::ServeError;

/// How often the watched pid is polled.
const WATCH_INTERVAL: Duration = Duration::from_millis(150);

pub(crate) fn check_pid(pid: u32) -> Result<(), ServeError> {
    // 0 and negative pids mean process groups to kill(2): never watch those.
    if pid == 0 || i32::try_from(pid).is_err() {
        return Err(ServeError::InvalidOptions(format!(
            "watch_pid {pid} is not a process id (expected 1..={})",
            i32::MAX
        )));
    }
    Ok(())
}

/// Whether process `pid` is still running: it exists and is not a zombie (a process that
/// exited and waits for its parent to collect its status counts as gone).
///
/// ```
/// assert!(mcp_harness_servers::pid_alive(std::process::id()));
/// assert!(!mcp_harness_servers::pid_alive(0));
/// ```
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        // 0 and negative pids mean process groups to kill(2).
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => {
            // No procfs: signal 0 sends nothing; it only checks that `raw` (> 0, checked
            // above) exists and may be signalled. No memory is involved.
            // SAFETY: see above.
            let rc = unsafe { libc::kill(raw, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
    }
}

/// Resolves with a reason once the server should stop: SIGTERM, SIGINT, or the exit
/// of `watch_pid`. Signal handlers are installed before this returns.
pub(crate) fn stop_requested(
    watch_pid: Option<u32>,
) -> Result<impl Future<Output = &'static str> + Send + 'static, ServeError> {
    let mut term =
        signal(SignalKind::terminate()).map_err(ServeError::io("installing a SIGTERM handler"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(ServeError::io("installing a SIGINT handler"))?;
    Ok(async move {
        let watch = async {
            match watch_pid {
                Some(pid) => {
                    let mut tick = tokio::time::interval(WATCH_INTERVAL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        if !pid_alive(pid) {
                            return;
                        }
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = watch => "watched process exited",
        }
    })
}

/// Writes `port` and a newline to `path` atomically: a temporary file in the same
/// directory, then a rename.
pub(crate) fn write_port_file(path: &Path, port: u16) -> Result<(), ServeError> {
    let error = |source| ServeError::PortFile {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(format!("{port}\n").as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(source));
    }
    Ok(())
}
