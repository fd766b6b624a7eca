//! Where a child's stdout and stderr go: one pair of log files per process, and their tails.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

fn log_dir() -> PathBuf {
    let dir = match std::env::var_os("MCP_HARNESS_LOG_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir()
            .join("mcp-harness-logs")
            .join(std::process::id().to_string()),
    };
    let _ = std::fs::create_dir_all(&dir);
    dir
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
    let dir = log_dir();
    (
        dir.join(format!("{safe}-{seq}.stdout.log")),
        dir.join(format!("{safe}-{seq}.stderr.log")),
    )
}

/// The last `lines` lines of a file (empty when it cannot be read).
pub(super) fn tail_of(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let mut tail: VecDeque<&str> = VecDeque::new();
    for line in buf.lines() {
        if tail.len() == lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}
