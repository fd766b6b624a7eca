//! What the soak counts: successes and failures per kind, latency histograms, sharded per
//! worker so that clients never contend on one lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mcp_harness::Error;

use super::SHARDS;

/// Everything the clients, the progress reporter and the chaos task share.
pub(super) struct Tally {
    pub(super) total: Option<u64>,
    pub(super) deadline: Option<Instant>,
    pub(super) issued: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) cancelled: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) unexpected: AtomicU64,
    pub(super) failures: Mutex<BTreeMap<(&'static str, bool), u64>>,
    pub(super) first_unexpected: Mutex<Vec<String>>,
    pub(super) shards: Vec<Mutex<Histogram<u64>>>,
    pub(super) chaos_windows: Mutex<Vec<(Instant, Option<Instant>)>>,
    pub(super) stop: AtomicBool,
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    pub(super) fn next_call(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            return false;
        }
        match self.total {
            Some(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
            None => {
                self.issued.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    pub(super) fn record_ok(&self, worker: usize, took: Duration) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut h = self.shards[worker % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us);
    }

    /// Whether a call running from `t0` to `t1` overlapped a chaos event (plus its grace).
    pub(super) fn during_chaos(&self, t0: Instant, t1: Instant) -> bool {
        let windows = self.chaos_windows.lock().unwrap_or_else(|p| p.into_inner());
        windows
            .iter()
            .any(|(start, end)| t1 >= *start && end.is_none_or(|e| t0 <= e))
    }

    pub(super) fn record_failure(
        &self,
        kind: &'static str,
        message: String,
        t0: Instant,
        t1: Instant,
    ) {
        let expected = self.during_chaos(t0, t1);
        self.failed.fetch_add(1, Ordering::Relaxed);
        if !expected {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            let mut first = self
                .first_unexpected
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if first.len() < 5 {
                first.push(message);
            }
        }
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, expected))
            .or_default() += 1;
    }

    pub(super) fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&*h);
        }
        all
    }

    pub(super) fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.cancelled.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

/// What one call came to.
pub(super) enum CallOutcome {
    Ok,
    ToolError(String),
    Failed(Error),
    Cancelled,
}

/// The peak resident set size (`VmHWM`) of a process, in KiB.
pub(super) fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `call`, or with probability `rate` abandons it after a random delay under 1 ms.
pub(super) async fn maybe_cancel(
    rate: f64,
    call: impl std::future::Future<Output = CallOutcome>,
) -> CallOutcome {
    if rate > 0.0 && fastrand::f64() < rate {
        let after = Duration::from_micros(fastrand::u64(0..1000));
        tokio::time::timeout(after, call)
            .await
            .unwrap_or(CallOutcome::Cancelled)
    } else {
        call.await
    }
}

/// How long a client waits after a failure before its next call, like a real client: an open
/// circuit or a refused connection fails in microseconds, and retrying at once would only spin.
pub(super) fn backoff(outcome: &CallOutcome) -> Option<Duration> {
    match outcome {
        CallOutcome::Failed(Error::CircuitOpen { retry_in, .. }) => {
            Some((*retry_in).clamp(Duration::from_millis(10), Duration::from_millis(100)))
        }
        CallOutcome::Failed(_) => Some(Duration::from_millis(20)),
        _ => None,
    }
}

pub(super) fn account(tally: &Tally, worker: usize, tool: &str, outcome: CallOutcome, t0: Instant) {
    let t1 = Instant::now();
    match outcome {
        CallOutcome::Ok => tally.record_ok(worker, t1 - t0),
        CallOutcome::Cancelled => {
            tally.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        CallOutcome::ToolError(text) => tally.record_failure(
            "tool_error",
            format!("tool `{tool}` returned isError: {text}"),
            t0,
            t1,
        ),
        CallOutcome::Failed(e) => tally.record_failure(e.kind(), e.to_string(), t0, t1),
    }
}
