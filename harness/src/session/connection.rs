//! One connection of a session: its owner task, the state the handles share with it, and how
//! its failures read.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{Implementation, ServerNotification};
use rmcp::service::{Peer, RoleClient, ServiceError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument as _;

use super::answers::Asked;
use super::builder::SessionBuilder;
use super::failure::{error_chain, is_auth_failure};
use super::owner::{Opened, owner_task};
use crate::errors::{Error, Result};
use crate::process::{ChildProcess, Server};
use crate::runtime;

// ---------------------------------------------------------------------------------------------
// The owner task and its connection

pub(super) enum ProcessRef {
    Child(Arc<ChildProcess>),
    Server(Server),
}

impl ProcessRef {
    pub(super) fn describe(&self) -> String {
        match self {
            ProcessRef::Child(c) => c.describe(),
            ProcessRef::Server(s) => s.describe(),
        }
    }
}

/// State shared between the owner task and the handles of one connection.
pub(super) struct Shared {
    pub(super) peer: RwLock<Option<Peer<RoleClient>>>,
    pub(super) closed: RwLock<Option<String>>,
    /// Taken (dropped) when the owner finishes, so that subscribers see the end.
    pub(super) notifications: Mutex<Option<broadcast::Sender<ServerNotification>>>,
    /// What the server asked the client side, in order.
    pub(super) asked: Asked,
    /// The id of the open `subscriptions/listen` stream (stateless era).
    pub(super) listen_id: RwLock<Option<String>>,
    /// `notifications/cancelled` still being sent (flushed before the transport closes).
    pub(super) pending_cancels: Arc<PendingCancels>,
    /// Why the transport was closed by the harness itself (a message over the size bound).
    pub(super) violation: Arc<Mutex<Option<String>>>,
    /// An HTTP answer over the size bound (the bound, in bytes): only that request failed.
    pub(super) oversized: Arc<Mutex<Option<usize>>>,
}

/// Cancellations on their way to the server: the owner waits for them (within a bound) before
/// it closes the transport, so that a caller's cancellation reaches the server even when the
/// session, or the whole process, ends right after it.
#[derive(Default)]
pub(super) struct PendingCancels {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl PendingCancels {
    pub(super) fn start(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn finish(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.done.notify_waiters();
        }
    }

    /// Waits until none is pending.
    pub(super) async fn flushed(&self) {
        loop {
            let notified = self.done.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub(super) type CloseReply = Box<dyn FnOnce() + Send>;

pub(super) enum Command {
    Close(CloseReply),
    /// Subscribe to (`on`) or unsubscribe from a resource's updates on the listen stream
    /// (stateless era); answered once the server acknowledged the new filter.
    Listen {
        uri: String,
        on: bool,
        reply: oneshot::Sender<std::result::Result<(), String>>,
    },
}

/// One connection: an owner task and what handles need to reach it.
pub(super) struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) owner: tokio::task::AbortHandle,
    pub(super) server_info: Option<Implementation>,
    /// What the server advertised (initialize or discover result).
    pub(super) capabilities: rmcp::model::ServerCapabilities,
    /// The negotiated protocol version.
    pub(super) protocol_version: String,
    pub(super) process: Option<ProcessRef>,
}

pub(super) enum Failure {
    Retryable {
        reason: String,
        server_state: Option<String>,
        log_tail: String,
    },
    /// The server answered nothing within the bound (retryable; under `auto`, the sign of a
    /// server that ignores `server/discover`).
    Silent {
        reason: String,
        server_state: Option<String>,
        log_tail: String,
    },
    Fatal(Error),
}

impl Connection {
    pub(super) async fn open(
        cfg: Arc<SessionBuilder>,
    ) -> std::result::Result<Arc<Connection>, Failure> {
        // Small by default: every pooled session carries one; a slow subscriber skips ahead
        // and counts what it missed.
        let (notifications, _) = broadcast::channel(cfg.notification_buffer);
        let shared = Arc::new(Shared {
            peer: RwLock::new(None),
            closed: RwLock::new(None),
            notifications: Mutex::new(Some(notifications)),
            asked: Asked::default(),
            listen_id: RwLock::new(None),
            pending_cancels: Arc::default(),
            violation: Arc::default(),
            oversized: Arc::default(),
        });
        let (commands, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let span = tracing::info_span!("mcp_session", session = %cfg.name, transport = %cfg.target.transport());
        let owner = runtime::spawn(
            owner_task(cfg.clone(), shared.clone(), cmd_rx, ready_tx).instrument(span),
        );
        match ready_rx.await {
            Ok(Ok(Opened {
                server_info,
                capabilities,
                process,
                protocol_version,
            })) => Ok(Arc::new(Connection {
                shared,
                commands,
                owner: owner.abort_handle(),
                server_info,
                capabilities,
                process,
                protocol_version,
            })),
            Ok(Err(f)) => Err(f),
            Err(_) => Err(Failure::Fatal(Error::Closed {
                session: cfg.name.clone(),
                method: "connect".into(),
                reason: "the owner task ended before the session was ready".into(),
                server_state: None,
            })),
        }
    }

    pub(super) fn peer(&self, session: &str, method: &str) -> Result<Peer<RoleClient>> {
        if let Some(reason) = self
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(Error::Closed {
                session: session.to_owned(),
                method: method.to_owned(),
                reason,
                server_state: self.server_state(),
            });
        }
        self.shared
            .peer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::Closed {
                session: session.to_owned(),
                method: method.to_owned(),
                reason: "the session is not connected".into(),
                server_state: self.server_state(),
            })
    }

    pub(super) fn is_closed(&self) -> bool {
        if self
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return true;
        }
        match &*self.shared.peer.read().unwrap_or_else(|p| p.into_inner()) {
            Some(peer) => peer.is_transport_closed(),
            None => true,
        }
    }

    pub(super) fn server_state(&self) -> Option<String> {
        self.process.as_ref().map(ProcessRef::describe)
    }

    /// `e` once the server process it may be about has settled: a stdio server whose pipe
    /// closed is usually exiting at that very moment, and "is running" would be a lie. Waits a
    /// moment for the exit, then names it with the end of the server's stderr.
    pub(super) async fn settled(&self, e: Error) -> Error {
        let Error::Closed {
            session,
            method,
            mut reason,
            mut server_state,
        } = e
        else {
            return e;
        };
        let oversized = self
            .shared
            .oversized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(bound) = oversized {
            // rmcp reports the refused body as a closed transport; the session goes on.
            return Error::Protocol {
                session,
                method,
                detail: format!(
                    "the answer was larger than the session's max_message_size ({bound} bytes); \
                     raise it with SessionBuilder::max_message_size if such answers are expected"
                ),
            };
        }
        let violation = self
            .shared
            .violation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(violation) = violation {
            reason = violation;
            server_state = self.server_state();
        } else if let Some(ProcessRef::Child(child)) = &self.process {
            if child.wait_exit(Duration::from_millis(500)).await {
                let tail = child.log_tail(10);
                if !tail.trim().is_empty() {
                    reason = format!("{reason}; last log lines:\n{}", tail.trim_end());
                }
            }
            server_state = Some(child.describe());
        }
        Error::Closed {
            session,
            method,
            reason,
            server_state,
        }
    }

    pub(super) fn map_error(
        &self,
        session: &str,
        method: &str,
        e: ServiceError,
        timeout: Duration,
    ) -> Error {
        match e {
            ServiceError::McpError(e) => Error::Mcp {
                session: session.to_owned(),
                method: method.to_owned(),
                code: e.code.0,
                message: e.message.into_owned(),
                data: e.data,
            },
            ServiceError::Timeout { timeout } => Error::Timeout {
                session: session.to_owned(),
                method: method.to_owned(),
                after: timeout,
                server_state: self.server_state(),
            },
            ServiceError::UnexpectedResponse => Error::Protocol {
                session: session.to_owned(),
                method: method.to_owned(),
                detail: "the response did not match the request".into(),
            },
            other => {
                let reason = error_chain(&other);
                if is_auth_failure(&reason) {
                    return Error::Unauthorized {
                        target: session.to_owned(),
                        session: session.to_owned(),
                        reason: crate::auth::rejection_reason_from_chain(&reason, true),
                    };
                }
                let _ = timeout;
                Error::Closed {
                    session: session.to_owned(),
                    method: method.to_owned(),
                    reason,
                    server_state: self.server_state(),
                }
            }
        }
    }

    /// Asks the owner to close; the future completes when it has.
    pub(super) fn request_close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel::<()>();
        let sent = self
            .commands
            .send(Command::Close(Box::new(move || {
                let _ = tx.send(());
            })))
            .is_ok();
        async move {
            if sent {
                let _ = rx.await;
            }
        }
    }

    pub(super) fn close_in_background(&self) {
        let _ = self.commands.send(Command::Close(Box::new(|| {})));
    }

    /// Closes and waits on a plain thread (process exit), with a bound.
    pub(super) fn close_blocking(&self, within: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        if self
            .commands
            .send(Command::Close(Box::new(move || {
                let _ = tx.send(());
            })))
            .is_err()
        {
            return true;
        }
        rx.recv_timeout(within).is_ok()
    }
}
