//! [`Notifications`]: what the server sent a session, in order, with deadlines.

use std::time::Duration;

use rmcp::model::ServerNotification;
use tokio::sync::broadcast;

use crate::runtime;

/// Server notifications seen by one session, in order.
///
/// ```no_run
/// # mcp_harness::run(async {
/// # let session: mcp_harness::Session = todo!();
/// use std::time::Duration;
/// let mut seen = session.notifications();
/// session.call_tool("notify", serde_json::json!({"kind": "tools"})).await?;
/// let n = seen.next_within(Duration::from_secs(5)).await.expect("a notification");
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Debug)]
pub struct Notifications {
    pub(super) rx: broadcast::Receiver<ServerNotification>,
    pub(super) missed: u64,
}

impl Notifications {
    /// The next notification, or `None` if the session closed.
    ///
    /// A receiver that falls more than the session's
    /// [`notification_buffer`](crate::SessionBuilder::notification_buffer) behind skips the
    /// oldest ones; [`missed`](Self::missed) counts them (and a warning is logged).
    pub async fn next(&mut self) -> Option<ServerNotification> {
        loop {
            match self.rx.recv().await {
                Ok(n) => return Some(n),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.missed += n;
                    tracing::warn!(
                        "a notifications() receiver fell behind and skipped {n} notification(s): \
                         read them while the calls run, or raise \
                         SessionBuilder::notification_buffer"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// How many notifications this receiver skipped because it fell too far behind (0 for a
    /// receiver that kept up).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The next notification within `within`; `None` at the deadline or if the session closed.
    pub async fn next_within(&mut self, within: Duration) -> Option<ServerNotification> {
        runtime::timeout(within, self.next()).await.ok().flatten()
    }

    /// Waits until a notification matches `pred`, within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&ServerNotification) -> bool,
    ) -> Option<ServerNotification> {
        runtime::timeout(within, async {
            while let Some(n) = self.next().await {
                if pred(&n) {
                    return Some(n);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

/// The level of the log messages (`notifications/message`) a session wants from the server.
///
/// Set for a whole session with [`Session::set_log_level`](crate::Session::set_log_level), or
/// per request in the stateless era with
/// [`Session::with_log_level`](crate::Session::with_log_level).
///
/// ```
/// use mcp_harness::LogLevel;
/// assert_eq!(LogLevel::Warning.as_str(), "warning");
/// assert_eq!("debug".parse::<LogLevel>().unwrap(), LogLevel::Debug);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `notice`
    Notice,
    /// `warning`
    Warning,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `alert`
    Alert,
    /// `emergency`
    Emergency,
}

const LEVELS: [(LogLevel, &str); 8] = [
    (LogLevel::Debug, "debug"),
    (LogLevel::Info, "info"),
    (LogLevel::Notice, "notice"),
    (LogLevel::Warning, "warning"),
    (LogLevel::Error, "error"),
    (LogLevel::Critical, "critical"),
    (LogLevel::Alert, "alert"),
    (LogLevel::Emergency, "emergency"),
];

impl LogLevel {
    /// The level as MCP spells it.
    pub fn as_str(self) -> &'static str {
        LEVELS
            .iter()
            .find(|(l, _)| *l == self)
            .map(|(_, s)| *s)
            .unwrap_or("info")
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        LEVELS
            .iter()
            .find(|(_, name)| *name == wanted)
            .map(|(l, _)| *l)
            .ok_or_else(|| crate::Error::Invalid {
                what: format!("log level `{s}`"),
                reason: "expected debug, info, notice, warning, error, critical, alert or \
                         emergency"
                    .into(),
            })
    }
}
