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
}

impl Notifications {
    /// The next notification, or `None` if the session closed.
    pub async fn next(&mut self) -> Option<ServerNotification> {
        loop {
            match self.rx.recv().await {
                Ok(n) => return Some(n),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
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
