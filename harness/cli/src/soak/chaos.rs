//! Chaos during a soak: the upstream killed, restarted or paused every so often.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcp_harness::Server;

use super::tally::Tally;
use super::{CHAOS_GRACE, Chaos};

pub(super) async fn run_chaos(
    server: Server,
    mode: Chaos,
    every: Duration,
    pause_for: Duration,
    tally: Arc<Tally>,
    sample_server: impl Fn(),
) {
    loop {
        // Wake often enough to notice the end of the run.
        let next = Instant::now() + every;
        while Instant::now() < next {
            if tally.stop.load(Ordering::Relaxed)
                || tally.deadline.is_some_and(|d| Instant::now() >= d)
            {
                return;
            }
            tokio::time::sleep((next - Instant::now()).min(Duration::from_millis(50))).await;
        }
        if tally.stop.load(Ordering::Relaxed) {
            return;
        }
        sample_server();
        let index = {
            let mut w = tally
                .chaos_windows
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            w.push((Instant::now(), None));
            w.len() - 1
        };
        let recovered = match mode {
            Chaos::Kill => {
                let _ = server.kill().await;
                let mut result = server.restart().await;
                for _ in 0..3 {
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    result = server.restart().await;
                }
                result
            }
            Chaos::Pause => {
                let paused = server.pause();
                tokio::time::sleep(pause_for).await;
                let resumed = server.resume();
                paused.and(resumed)
            }
        };
        tally
            .chaos_windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())[index]
            .1 = Some(Instant::now() + CHAOS_GRACE);
        if let Err(e) = recovered {
            eprintln!("mcp-harness soak: chaos could not bring the server back: {e}");
            let now = Instant::now();
            tally.record_failure("chaos_recovery", e.to_string(), now, now);
            tally.stop.store(true, Ordering::Relaxed);
            return;
        }
    }
}
