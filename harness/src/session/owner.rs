//! The owner task: connect, initialize, serve and close a session's connection, all in one
//! task on the shared runtime.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::Implementation;
use tokio::sync::{mpsc, oneshot};

use super::builder::SessionBuilder;
use super::connection::{CloseReply, Command, Failure, ProcessRef, Shared};
use super::era::{ClientHandler, Era, Protocol};
use super::failure::{error_chain, is_auth_failure};
use super::listen::Listener;
use super::target::Target;
use super::transport::{HTTP_CLIENT, sse, stdio, streamable_http};
use crate::errors::Error;
use crate::process::ChildProcess;
use crate::runtime;
use crate::transport::Transport;

/// What the owner tells the connecting caller once the session is ready (or why it is not).
pub(super) type Ready = std::result::Result<Opened, Failure>;

/// What the owner learned while opening the session.
pub(super) struct Opened {
    pub(super) server_info: Option<Implementation>,
    pub(super) capabilities: rmcp::model::ServerCapabilities,
    pub(super) process: Option<ProcessRef>,
    /// The negotiated protocol version.
    pub(super) protocol_version: String,
}

pub(super) async fn owner_task(
    cfg: Arc<SessionBuilder>,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Ready>,
) {
    let handler = ClientHandler::new(
        &cfg.name,
        shared
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .expect("the owner is the only one that takes the sender, at its end"),
        cfg.answers.clone(),
        shared.asked.clone(),
    );
    let target = cfg.target.describe();
    let mut child: Option<Arc<ChildProcess>> = None;
    let connected = match &cfg.target {
        Target::Stdio(spec) => stdio::connect(&cfg, spec, handler, shared.violation.clone())
            .await
            .map(|(started, proc)| {
                child = Some(proc);
                started
            }),
        // Legacy HTTP+SSE: `Target::Sse`, or a started server that speaks it.
        _ if cfg.target.transport() == Transport::Sse => sse::connect(&cfg, handler).await,
        _ => streamable_http::connect(&cfg, handler, shared.oversized.clone()).await,
    };
    let started = match connected {
        Ok(started) => started,
        Err(failure) => {
            let _ = ready.send(Err(failure));
            return;
        }
    };
    let process = match (&child, &cfg.target) {
        (Some(c), _) => Some(ProcessRef::Child(c.clone())),
        (None, Target::Server(s)) => Some(ProcessRef::Server(s.clone())),
        _ => None,
    };
    let running = match started {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            let reason = error_chain(&e);
            if let Some(c) = &child {
                c.stop(Duration::from_millis(200)).await;
            }
            // The url an HTTP target answers on, to ask it what went wrong.
            let url = match &cfg.target {
                Target::Http(url) => Some(url.as_str()),
                Target::Server(s) => Some(s.url()),
                _ => None,
            };
            let refused_certificate = match url {
                Some(url) if reason.contains("error sending request") => {
                    crate::tls::certificate_refusal(&HTTP_CLIENT.get(), url).await
                }
                _ => None,
            };
            let failure = if let Some(mismatch) = version_mismatch(&cfg, &target, &e) {
                Failure::Fatal(mismatch)
            } else if let Some(refusal) = refused_certificate {
                // Trying again changes nothing: the certificate is what it is.
                Failure::Fatal(Error::Connect {
                    target,
                    attempts: 1,
                    reason: refusal,
                    server_state: None,
                    log_tail: String::new(),
                })
            } else if is_auth_failure(&reason) {
                let diagnosed = match url {
                    Some(url) => {
                        crate::auth::diagnose_refusal(
                            &HTTP_CLIENT.get(),
                            url,
                            &cfg.headers,
                            &cfg.credentials(),
                        )
                        .await
                    }
                    None => None,
                };
                Failure::Fatal(Error::Unauthorized {
                    target,
                    session: cfg.name.clone(),
                    reason: diagnosed.unwrap_or_else(|| {
                        crate::auth::rejection_reason_from_chain(
                            &reason,
                            !cfg.credentials().is_none(),
                        )
                    }),
                })
            } else {
                // A streamable HTTP endpoint that answered something other than MCP: say what
                // it answered.
                let looks_like_http =
                    reason.contains("the server answered") || reason.contains("rate limited");
                let reason = match url {
                    Some(url)
                        if looks_like_http
                            && cfg.target.transport() == Transport::StreamableHttp =>
                    {
                        super::failure::diagnose_http(
                            &HTTP_CLIENT.get(),
                            url,
                            &cfg.headers,
                            &cfg.credentials(),
                        )
                        .await
                        .unwrap_or(reason)
                    }
                    _ => reason,
                };
                Failure::Retryable {
                    reason,
                    server_state: process.as_ref().map(ProcessRef::describe),
                    log_tail: child.as_ref().map(|c| c.log_tail(20)).unwrap_or_default(),
                }
            };
            let _ = ready.send(Err(failure));
            return;
        }
        Err(_) => {
            if let Some(c) = &child {
                c.stop(Duration::from_millis(200)).await;
            }
            let asked = match &cfg.protocol {
                Protocol::Handshake(_) => "`initialize`",
                Protocol::Stateless(_) => "`server/discover`",
                _ => "`server/discover`",
            };
            let _ = ready.send(Err(Failure::Silent {
                reason: format!("no answer to {asked} within {:?}", cfg.init_timeout),
                server_state: process.as_ref().map(ProcessRef::describe),
                log_tail: child.as_ref().map(|c| c.log_tail(20)).unwrap_or_default(),
            }));
            return;
        }
    };
    let peer = running.peer().clone();
    let server_info = peer.peer_info().and_then(|i| i.server_info.clone());
    let capabilities = peer
        .peer_info()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    let protocol_version = peer
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    *shared.peer.write().unwrap_or_else(|p| p.into_inner()) = Some(peer.clone());
    let cancel = running.cancellation_token();
    let mut waiting = Box::pin(running.waiting());
    // The stateless era's notifications arrive on `subscriptions/listen`, opened before the
    // session is handed out so that nothing sent after `connect` returns is missed.
    let mut listener = Listener::new(peer, capabilities.clone(), cfg.init_timeout);
    if cfg.listen && Era::of(&protocol_version) == Era::Stateless {
        if let Err(e) = listener.open().await {
            tracing::warn!("not listening for notifications: {e}");
        }
        *shared.listen_id.write().unwrap_or_else(|p| p.into_inner()) = listener.id();
    }
    let opened = Opened {
        server_info,
        capabilities,
        process,
        protocol_version,
    };
    if ready.send(Ok(opened)).is_err() {
        // The caller gave up while we connected: close at once.
        listener.close().await;
        cancel.cancel();
        let _ = runtime::timeout(cfg.close_timeout, &mut waiting).await;
        finish_child(&cfg, child.as_deref()).await;
        return;
    }
    tracing::debug!("session open");
    let mut replies: Vec<CloseReply> = Vec::new();
    let reason = loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Listen { uri, on, reply }) => {
                    let done = listener.subscribe(uri, on).await;
                    *shared.listen_id.write().unwrap_or_else(|p| p.into_inner()) = listener.id();
                    let _ = reply.send(done);
                }
                close => {
                    if let Some(Command::Close(reply)) = close {
                        replies.push(reply);
                    }
                    // A caller's cancellation sent just before the close reaches the server.
                    if runtime::timeout(cfg.close_timeout, shared.pending_cancels.flushed())
                        .await
                        .is_err()
                    {
                        tracing::warn!("cancellations still unsent after {:?}; closing anyway", cfg.close_timeout);
                    }
                    listener.close().await;
                    cancel.cancel();
                    if runtime::timeout(cfg.close_timeout, &mut waiting).await.is_err() {
                        tracing::warn!("close did not finish within {:?}; abandoning the transport", cfg.close_timeout);
                    }
                    break "the session was shut down".to_owned();
                }
            },
            n = listener.next() => match n {
                Some(n) => {
                    if let Some(tx) = &*shared.notifications.lock().unwrap_or_else(|p| p.into_inner()) {
                        let _ = tx.send(n);
                    }
                }
                None => {
                    listener.reopen().await;
                    *shared.listen_id.write().unwrap_or_else(|p| p.into_inner()) = listener.id();
                }
            },
            _ = &mut waiting => break "the transport closed (the server went away or closed the connection)".to_owned(),
        }
    };
    *shared.closed.write().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    *shared.listen_id.write().unwrap_or_else(|p| p.into_inner()) = None;
    shared
        .notifications
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    finish_child(&cfg, child.as_deref()).await;
    tracing::debug!("session closed");
    for reply in replies {
        reply();
    }
    // Late requests are answered at once; the channel ends when every handle is gone.
    commands.close();
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Close(reply) => reply(),
            Command::Listen { reply, .. } => {
                let _ = reply.send(Err("the session is closed".into()));
            }
        }
    }
}

async fn finish_child(cfg: &SessionBuilder, child: Option<&ChildProcess>) {
    if let Some(c) = child
        && !c.wait_exit(cfg.stdio_exit_grace).await
    {
        c.stop(Duration::from_millis(500)).await;
    }
}

/// A failed start that is a protocol-version mismatch, as a typed error naming both sides.
fn version_mismatch(
    cfg: &SessionBuilder,
    target: &str,
    e: &rmcp::service::ClientInitializeError,
) -> Option<Error> {
    use rmcp::service::ClientInitializeError as Init;
    let mismatch = |supported: Vec<String>, hint: String| Error::UnsupportedVersion {
        session: cfg.name.clone(),
        target: target.to_owned(),
        offered: cfg.protocol.offered(),
        supported,
        hint,
    };
    match (e, &cfg.protocol) {
        (
            Init::NoCompatibleProtocolVersion {
                server_supported, ..
            },
            _,
        ) => Some(mismatch(
            server_supported.iter().map(|v| v.to_string()).collect(),
            "pin one of the server's versions with the session's protocol setting".into(),
        )),
        // A pinned stateless session whose `server/discover` got a JSON-RPC error: a
        // handshake-era server (rmcp classifies exactly this answer as legacy).
        (Init::JsonRpcError(data), Protocol::Stateless(_)) => Some(mismatch(
            Vec::new(),
            format!(
                "the server answered `server/discover` with error {} ({}): it speaks the \
                 handshake era; use `auto` or pin a handshake-era version",
                data.code.0, data.message
            ),
        )),
        _ => None,
    }
}
