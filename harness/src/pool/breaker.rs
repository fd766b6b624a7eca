//! The per-url circuit breaker: the one place that owns breaker state.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::errors::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_running: bool },
}

#[derive(Debug)]
struct Breaker {
    failures: u32,
    state: State,
}

/// What an acquire may do for a url right now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed: anything goes.
    Free,
    /// Half-open: this acquire holds the one trial creation.
    Trial,
}

/// Breakers for every url, behind the pool's lock.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    by_url: HashMap<String, Breaker>,
}

/// A breaker in the metrics snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CircuitBreakerMetrics {
    /// Consecutive creation failures.
    pub failures: u32,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// When an open circuit allows a trial, in milliseconds since the UNIX epoch.
    pub open_until: Option<u64>,
}

impl Breakers {
    /// Whether an acquire for `url` may go on. `needs_create`: it has no idle session to reuse.
    pub(crate) fn check(&mut self, url: &str, needs_create: bool) -> Result<Permit, Error> {
        let Some(b) = self.by_url.get_mut(url) else {
            return Ok(Permit::Free);
        };
        let now = Instant::now();
        if let State::Open { until } = b.state {
            if now < until {
                return Err(Error::CircuitOpen {
                    url: crate::pool::identity::safe_url(url),
                    state: "open".into(),
                    failures: b.failures,
                    retry_in: until - now,
                });
            }
            b.state = State::HalfOpen {
                trial_running: false,
            };
        }
        match b.state {
            State::HalfOpen { trial_running } if needs_create => {
                if trial_running {
                    Err(Error::CircuitOpen {
                        url: crate::pool::identity::safe_url(url),
                        state: "half-open".into(),
                        failures: b.failures,
                        retry_in: Duration::ZERO,
                    })
                } else {
                    b.state = State::HalfOpen {
                        trial_running: true,
                    };
                    Ok(Permit::Trial)
                }
            }
            _ => Ok(Permit::Free),
        }
    }

    /// A creation for `url` succeeded: the circuit closes.
    pub(crate) fn success(&mut self, url: &str) {
        if let Some(b) = self.by_url.get_mut(url) {
            b.failures = 0;
            b.state = State::Closed;
        }
    }

    /// A creation for `url` failed; true when this failure tripped the circuit.
    pub(crate) fn failure(&mut self, url: &str, threshold: u32, reset: Duration) -> bool {
        let b = self.by_url.entry(url.to_owned()).or_insert(Breaker {
            failures: 0,
            state: State::Closed,
        });
        b.failures = b.failures.saturating_add(1);
        let open = State::Open {
            until: Instant::now() + reset,
        };
        match b.state {
            State::HalfOpen { .. } => {
                b.state = open;
                true
            }
            State::Closed if b.failures >= threshold => {
                b.state = open;
                true
            }
            _ => false,
        }
    }

    /// A trial creation was abandoned (cancelled, or never started): allow another trial.
    pub(crate) fn trial_abandoned(&mut self, url: &str) {
        if let Some(b) = self.by_url.get_mut(url)
            && b.state
                == (State::HalfOpen {
                    trial_running: true,
                })
        {
            b.state = State::HalfOpen {
                trial_running: false,
            };
        }
    }

    pub(crate) fn snapshot(&self) -> std::collections::BTreeMap<String, CircuitBreakerMetrics> {
        let now = Instant::now();
        let wall = SystemTime::now();
        self.by_url
            .iter()
            .map(|(url, b)| {
                let (state, open_until) = match b.state {
                    State::Closed => ("closed", None),
                    State::Open { until } if until > now => {
                        let at = wall + (until - now);
                        (
                            "open",
                            at.duration_since(SystemTime::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_millis() as u64),
                        )
                    }
                    State::Open { .. } | State::HalfOpen { .. } => ("half_open", None),
                };
                (
                    crate::pool::identity::safe_url(url),
                    CircuitBreakerMetrics {
                        failures: b.failures,
                        state: state.into(),
                        open_until,
                    },
                )
            })
            .collect()
    }
}
