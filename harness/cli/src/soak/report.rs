//! The soak's output: live progress while it runs, and the final report (a table or JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mcp_harness::Transport;
use mcp_harness::pool::PoolMetrics;
use serde_json::{Value, json};

use super::Chaos;
use super::tally::Tally;
use crate::{emit, exit, ms};

/// Live progress: a bar on a terminal, a plain line every `every` otherwise (both on stderr).
pub(super) async fn report_progress(
    tally: Arc<Tally>,
    started: Instant,
    every: Duration,
    sample_server: impl Fn(),
) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = match (tally.total, tally.deadline) {
            (Some(n), _) => indicatif::ProgressBar::new(n),
            (None, Some(d)) => {
                indicatif::ProgressBar::new(d.saturating_duration_since(started).as_secs().max(1))
            }
            (None, None) => indicatif::ProgressBar::no_length(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} {pos}/{len} {msg} [{wide_bar}]",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let tick = if terminal {
        Duration::from_millis(250)
    } else {
        every.max(Duration::from_millis(100))
    };
    let mut last = (Instant::now(), 0u64);
    let mut rate_window: Vec<(Instant, u64)> = Vec::new();
    loop {
        let stop = tally.stop.load(Ordering::Relaxed);
        if !stop {
            // Sleep in short steps so that the end of the run is noticed at once.
            let until = Instant::now() + tick;
            while Instant::now() < until && !tally.stop.load(Ordering::Relaxed) {
                tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
            }
        }
        sample_server();
        let now = Instant::now();
        let done = tally.done();
        rate_window.push((now, done));
        rate_window.retain(|(t, _)| now.duration_since(*t) <= Duration::from_secs(2));
        let (t_first, d_first) = rate_window[0];
        let rate = if now > t_first && done > d_first {
            (done - d_first) as f64 / now.duration_since(t_first).as_secs_f64()
        } else if now > last.0 {
            (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64()
        } else {
            0.0
        };
        last = (now, done);
        let p99 = tally.merged().value_at_quantile(0.99);
        let failed = tally.failed.load(Ordering::Relaxed);
        let unexpected = tally.unexpected.load(Ordering::Relaxed);
        let message = format!(
            "{rate:.0} calls/s, {failed} failures ({unexpected} unexpected), p99 {}",
            ms(Duration::from_micros(p99))
        );
        match &bar {
            Some(bar) => {
                match tally.total {
                    Some(_) => bar.set_position(done),
                    None => bar.set_position(started.elapsed().as_secs()),
                }
                bar.set_message(format!(
                    "{rate:.0}/s, {failed} failed ({unexpected} unexpected), p99 {}",
                    ms(Duration::from_micros(p99))
                ));
            }
            None if !stop => eprintln!(
                "soak: {:>6.1}s {done} calls, {message}",
                started.elapsed().as_secs_f64()
            ),
            None => {}
        }
        if stop {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return;
        }
    }
}

pub(super) struct Report<'a> {
    pub(super) url: String,
    pub(super) transport: Transport,
    /// The negotiated protocol version and era (from the preflight session).
    pub(super) protocol: Option<(String, mcp_harness::Era)>,
    pub(super) spawned: bool,
    pub(super) tool: String,
    pub(super) clients: usize,
    pub(super) pool: bool,
    pub(super) max_sessions: usize,
    pub(super) cancel_rate: f64,
    pub(super) chaos: Option<(Chaos, Duration)>,
    pub(super) chaos_events: usize,
    pub(super) wall: Duration,
    pub(super) tally: &'a Tally,
    pub(super) pool_metrics: Option<PoolMetrics>,
    pub(super) harness_rss: Option<u64>,
    pub(super) server_rss: Option<u64>,
}

impl Report<'_> {
    fn latency_ms(&self) -> (Histogram<u64>, [f64; 5]) {
        let h = self.tally.merged();
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let v = if h.is_empty() {
            [0.0; 5]
        } else {
            [
                q(0.5),
                q(0.9),
                q(0.99),
                h.max() as f64 / 1000.0,
                h.mean() / 1000.0,
            ]
        };
        (h, v)
    }

    fn failures_by_kind(&self, expected: bool) -> BTreeMap<&'static str, u64> {
        self.tally
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((_, e), _)| *e == expected)
            .map(|((k, _), n)| (*k, *n))
            .collect()
    }

    pub(super) fn to_json(&self, code: u8) -> Value {
        let t = self.tally;
        let (_, [p50, p90, p99, max, mean]) = self.latency_ms();
        let calls = t.done();
        let failed = t.failed.load(Ordering::Relaxed);
        let unexpected = t.unexpected.load(Ordering::Relaxed);
        json!({
            "ok": code == exit::OK,
            "exit_code": code,
            "target": {"url": self.url, "transport": self.transport.as_str(), "spawned": self.spawned},
            "protocol_version": self.protocol.as_ref().map(|(v, _)| v),
            "era": self.protocol.as_ref().map(|(_, e)| e.to_string()),
            "tool": self.tool,
            "clients": self.clients,
            "pool": self.pool,
            "max_sessions_per_key": self.pool.then_some(self.max_sessions),
            "cancel_rate": self.cancel_rate,
            "calls": calls,
            "succeeded": t.ok.load(Ordering::Relaxed),
            "cancelled": t.cancelled.load(Ordering::Relaxed),
            "failures": {
                "total": failed,
                "unexpected": unexpected,
                "expected": failed - unexpected,
                "by_kind": self.failures_by_kind(false),
                "expected_by_kind": self.failures_by_kind(true),
                "first_unexpected": *t.first_unexpected.lock().unwrap_or_else(|p| p.into_inner()),
            },
            "wall_time_s": self.wall.as_secs_f64(),
            "calls_per_s": calls as f64 / self.wall.as_secs_f64().max(1e-9),
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean},
            "pool_metrics": self.pool_metrics.as_ref().map(|m| serde_json::to_value(m).unwrap_or(Value::Null)),
            "peak_rss_kb": {"harness": self.harness_rss, "server": self.server_rss},
            "chaos": self.chaos.map(|(mode, every)| json!({
                "mode": match mode { Chaos::Kill => "kill", Chaos::Pause => "pause" },
                "every_s": every.as_secs_f64(),
                "events": self.chaos_events,
            })),
        })
    }

    pub(super) fn print(&self, code: u8) {
        let mut out = String::new();
        let t = self.tally;
        let (_, [p50, p90, p99, max, mean]) = self.latency_ms();
        let calls = t.done();
        let failed = t.failed.load(Ordering::Relaxed);
        let unexpected = t.unexpected.load(Ordering::Relaxed);
        let mb = |kib: Option<u64>| {
            kib.map_or("n/a".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0))
        };
        let _ = writeln!(
            out,
            "soak of `{}` on {} ({}{})",
            self.tool,
            self.url,
            self.transport,
            if self.spawned { ", spawned" } else { "" }
        );
        let _ = writeln!(
            out,
            "  clients          {} {}",
            self.clients,
            if self.pool {
                format!(
                    "through the pool (max {} sessions per key)",
                    self.max_sessions
                )
            } else {
                "with one raw session each".to_owned()
            }
        );
        if let Some((version, era)) = &self.protocol {
            let _ = writeln!(out, "  protocol         {version} ({era} era)");
        }
        let _ = writeln!(out, "  wall time        {:.1} s", self.wall.as_secs_f64());
        let _ = writeln!(
            out,
            "  calls            {calls} (succeeded {}, cancelled {})",
            t.ok.load(Ordering::Relaxed),
            t.cancelled.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "  calls/s          {:.0}",
            calls as f64 / self.wall.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            out,
            "  failures         {unexpected} unexpected, {} expected (chaos)",
            failed - unexpected
        );
        for (expected, label) in [(false, "unexpected"), (true, "expected")] {
            for (kind, n) in self.failures_by_kind(expected) {
                let _ = writeln!(out, "    {label:<12} {kind:<18} {n}");
            }
        }
        let _ = writeln!(
            out,
            "  latency          p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, mean {mean:.2} ms"
        );
        if let Some(m) = &self.pool_metrics {
            let _ = writeln!(
                out,
                "  pool             hits {}, misses {}, hit rate {:.2}%, evictions {}, live sessions {}, breaker trips {}, health-check failures {}",
                m.hits,
                m.misses,
                m.hit_rate * 100.0,
                m.evictions,
                m.total_active_sessions,
                m.circuit_breaker_trips,
                m.health_check_failures
            );
        }
        if let Some((mode, every)) = self.chaos {
            let _ = writeln!(
                out,
                "  chaos            {} every {every:?}: {} event(s)",
                match mode {
                    Chaos::Kill => "kill",
                    Chaos::Pause => "pause",
                },
                self.chaos_events
            );
        }
        let _ = writeln!(
            out,
            "  peak RSS         harness {}, server {}",
            mb(self.harness_rss),
            mb(self.server_rss)
        );
        let first = t.first_unexpected.lock().unwrap_or_else(|p| p.into_inner());
        for m in first.iter() {
            let _ = writeln!(out, "  first failures   {m}");
        }
        let _ = writeln!(
            out,
            "result           {}",
            if code == exit::OK {
                "ok"
            } else {
                "FAILED: unexpected failures"
            }
        );
        emit(&out);
    }
}
