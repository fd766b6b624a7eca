//! stdio: one MCP session on the process's stdin and stdout.

use std::time::Duration;

use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use crate::{
    events,
    handler::{BundledServer, Handler, Mode, Shared},
    lifecycle,
    options::{ServeError, ServeOptions},
};

/// Serves one MCP session on stdin/stdout until the client closes it, SIGTERM/SIGINT, or
/// the exit of `opts.watch_pid`.
pub(crate) async fn serve(
    opts: ServeOptions,
    server: &'static dyn BundledServer,
) -> Result<(), ServeError> {
    let stop = lifecycle::stop_requested(opts.watch_pid)?;
    tokio::pin!(stop);
    let handler = Handler::new(Shared::new(server, Mode::Stdio));
    let view = handler.clone();
    let ct = CancellationToken::new();
    let transport = rmcp::transport::stdio_pipes();
    let running = tokio::select! {
        started = handler.serve_with_ct(transport, ct.clone()) => match started {
            Ok(running) => running,
            // The client went away before initializing: a normal end.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
            Err(error) => return Err(ServeError::Session(error.to_string())),
        },
        reason = &mut stop => {
            tracing::info!(reason, "stopping before initialization");
            ct.cancel();
            return Ok(());
        }
    };
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        quit = &mut waiting => {
            if matches!(quit, Ok(rmcp::service::QuitReason::Closed)) {
                events::record("session_closed", |o| {
                    o.insert(
                        "client".into(),
                        view.client_name().map_or(serde_json::Value::Null, Into::into),
                    );
                    o.insert("transport".into(), "stdio".into());
                });
            }
        }
        reason = &mut stop => {
            tracing::info!(reason, "stopping");
            ct.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(500), &mut waiting).await;
        }
    }
    Ok(())
}
