//! Where a child's stdout and stderr go: one pair of capped log files per process, their
//! tails, and the run's log folder, removed at exit unless something failed.
//!
//! Each file keeps the first quarter of its cap and the last three quarters; what lies between
//! is cut and a marker line says how many bytes. The cap is `MCP_HARNESS_LOG_CAP` (bytes, or
//! with a `K`, `M` or `G` suffix; default 8 MiB) or [`ServerSpec::log_cap`].
//!
//! [`ServerSpec::log_cap`]: crate::ServerSpec::log_cap

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::runtime;

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

/// The default cap of one log file.
pub(crate) const DEFAULT_LOG_CAP: u64 = 8 << 20;

/// How often a file past its cap is rewritten while output keeps coming (reads through the
/// harness always see the latest bytes; this bounds how stale the file on disk can be).
const REWRITE_EVERY: Duration = Duration::from_millis(250);

/// The longest stdout line handed to address discovery; longer lines are cut there.
const MAX_LINE: usize = 64 * 1024;

/// The log folder of this process, and whether the harness chose it (and may remove it).
struct LogDir {
    path: PathBuf,
    ours: bool,
}

static LOG_DIR: OnceLock<LogDir> = OnceLock::new();
static KEEP: AtomicBool = AtomicBool::new(false);

fn log_dir() -> &'static LogDir {
    LOG_DIR.get_or_init(|| {
        let dir = match std::env::var_os("MCP_HARNESS_LOG_DIR") {
            Some(d) => LogDir {
                path: PathBuf::from(d),
                ours: false,
            },
            None => LogDir {
                path: std::env::temp_dir()
                    .join("mcp-harness-logs")
                    .join(std::process::id().to_string()),
                ours: true,
            },
        };
        let _ = std::fs::create_dir_all(&dir.path);
        watch_for_failures();
        runtime::at_exit(
            runtime::ExitStep::RemoveLogs,
            |_| remove_logs_unless_kept(),
            remove_logs_unless_kept,
        );
        dir
    })
}

/// Keeps this run's server logs at exit (see [`keep_logs`](crate::keep_logs)).
pub(crate) fn keep() {
    KEEP.store(true, Ordering::SeqCst);
}

/// Any panic (a failed assertion, in a test body or anywhere else) keeps the logs.
fn watch_for_failures() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            keep();
            previous(info);
        }));
    });
}

fn keep_requested() -> bool {
    KEEP.load(Ordering::SeqCst)
        || std::env::var_os("MCP_HARNESS_KEEP_LOGS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn remove_logs_unless_kept() {
    let Some(dir) = LOG_DIR.get() else { return };
    if !dir.ours {
        return;
    }
    if keep_requested() {
        eprintln!(
            "mcp-harness: server logs kept in {} (a test failed, or MCP_HARNESS_KEEP_LOGS is set)",
            dir.path.display()
        );
        return;
    }
    let _ = std::fs::remove_dir_all(&dir.path);
}

/// The cap for files of servers that do not set their own.
pub(crate) fn default_cap() -> u64 {
    static CAP: OnceLock<u64> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("MCP_HARNESS_LOG_CAP")
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(DEFAULT_LOG_CAP)
    })
}

/// `4096`, `64K`, `8M`, `1G` (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

pub(super) fn log_paths(name: &str) -> (PathBuf, PathBuf) {
    let seq = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = &log_dir().path;
    (
        dir.join(format!("{safe}-{seq}.stdout.log")),
        dir.join(format!("{safe}-{seq}.stderr.log")),
    )
}

/// One log file that never grows past its cap: the head is written as it comes, the tail is
/// kept in memory and written after the head (with a marker saying how much was cut).
pub(crate) struct CappedLog {
    path: PathBuf,
    state: Mutex<CapState>,
}

struct CapState {
    file: Option<std::fs::File>,
    head_cap: u64,
    tail_cap: usize,
    head_len: u64,
    tail: VecDeque<u8>,
    cut: u64,
    /// Tail bytes not yet on disk.
    dirty: bool,
    rewritten: Instant,
}

impl CappedLog {
    /// Creates (truncates) the file at `path`.
    pub(crate) fn create(path: PathBuf, cap: u64) -> std::io::Result<CappedLog> {
        let file = std::fs::File::create(&path)?;
        let cap = cap.max(64);
        Ok(CappedLog {
            path,
            state: Mutex::new(CapState {
                file: Some(file),
                head_cap: cap / 4,
                tail_cap: usize::try_from(cap - cap / 4).unwrap_or(usize::MAX),
                head_len: 0,
                tail: VecDeque::new(),
                cut: 0,
                dirty: false,
                rewritten: Instant::now(),
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CapState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends bytes (writes the head at once; past it, rewrites the tail now and then).
    pub(crate) fn append(&self, mut bytes: &[u8]) {
        let mut st = self.lock();
        if st.head_len < st.head_cap {
            let room = usize::try_from(st.head_cap - st.head_len).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            if let Some(f) = st.file.as_mut()
                && f.write_all(now).is_err()
            {
                st.file = None;
            }
            st.head_len += now.len() as u64;
            bytes = rest;
        }
        if bytes.is_empty() {
            return;
        }
        if bytes.len() >= st.tail_cap {
            st.cut += (st.tail.len() + bytes.len() - st.tail_cap) as u64;
            st.tail.clear();
            let keep = &bytes[bytes.len() - st.tail_cap..];
            st.tail.extend(keep);
        } else {
            let overflow = (st.tail.len() + bytes.len()).saturating_sub(st.tail_cap);
            st.tail.drain(..overflow);
            st.cut += overflow as u64;
            st.tail.extend(bytes);
        }
        st.dirty = true;
        if st.rewritten.elapsed() >= REWRITE_EVERY {
            st.rewrite();
        }
    }

    /// Brings the file on disk up to date.
    pub(crate) fn flush(&self) {
        let mut st = self.lock();
        if st.dirty {
            st.rewrite();
        }
    }
}

impl CapState {
    fn rewrite(&mut self) {
        self.dirty = false;
        self.rewritten = Instant::now();
        let (head_len, cut) = (self.head_len, self.cut);
        let Some(f) = self.file.as_mut() else { return };
        let (a, b) = self.tail.as_slices();
        let ok = (|| -> std::io::Result<()> {
            f.set_len(head_len)?;
            f.seek(SeekFrom::Start(head_len))?;
            if cut > 0 {
                write!(
                    f,
                    "\n[mcp-harness: {cut} bytes cut here; the log keeps its first {head_len} and last {} bytes]\n",
                    a.len() + b.len()
                )?;
            }
            f.write_all(a)?;
            f.write_all(b)
        })();
        if ok.is_err() {
            self.file = None;
        }
    }
}

impl Drop for CappedLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Copies `from` into `log` until end of file; with `lines`, also sends each complete line
/// (for address discovery).
pub(crate) async fn drain(
    mut from: impl AsyncRead + Unpin,
    log: std::sync::Arc<CappedLog>,
    lines: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.append(&buf[..n]);
        if let Some(tx) = &lines {
            for chunk in buf[..n].split_inclusive(|b| *b == b'\n') {
                if partial.len() < MAX_LINE {
                    let room = MAX_LINE - partial.len();
                    partial.extend_from_slice(&chunk[..room.min(chunk.len())]);
                }
                if chunk.ends_with(b"\n") {
                    let line = String::from_utf8_lossy(&partial);
                    let _ = tx.send(line.trim_end_matches(['\n', '\r']).to_owned());
                    partial.clear();
                }
            }
        }
    }
    if let Some(tx) = &lines
        && !partial.is_empty()
    {
        let _ = tx.send(String::from_utf8_lossy(&partial).into_owned());
    }
    log.flush();
}

/// The last `lines` lines of a file (empty when it cannot be read).
pub(super) fn tail_of(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let buf = String::from_utf8_lossy(&bytes);
    let mut tail: VecDeque<&str> = VecDeque::new();
    for line in buf.lines() {
        if tail.len() == lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(log: &CappedLog) -> String {
        log.flush();
        std::fs::read_to_string(log.path()).unwrap()
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("eight"), None);
        assert_eq!(parse_size("8T"), None);
    }

    #[test]
    fn a_log_under_its_cap_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = CappedLog::create(dir.path().join("a.log"), 1000).unwrap();
        log.append(b"one\n");
        log.append(&b"x".repeat(400));
        log.append(b"\ntwo\n");
        assert_eq!(read(&log), format!("one\n{}\ntwo\n", "x".repeat(400)));
    }

    #[test]
    fn a_log_past_its_cap_keeps_head_and_tail_and_says_what_was_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = CappedLog::create(dir.path().join("a.log"), 1000).unwrap();
        log.append(b"HEAD");
        for _ in 0..10_000 {
            log.append(b"0123456789");
        }
        log.append(b"TAIL");
        let text = read(&log);
        assert!(text.starts_with("HEAD"), "{text}");
        assert!(text.ends_with("6789TAIL"), "{text}");
        // 100,008 bytes written: 250 in the head, 750 in the tail, the rest cut.
        assert!(
            text.contains("[mcp-harness: 99008 bytes cut here; the log keeps its first 250 and last 750 bytes]"),
            "{text}"
        );
        assert!(text.len() < 1000 + 120, "{}", text.len());
        // One write larger than the whole tail.
        log.append(&b"y".repeat(5000));
        let text = read(&log);
        assert!(text.contains("104008 bytes cut"), "{text}");
        assert!(text.ends_with(&"y".repeat(750)));
    }
}
