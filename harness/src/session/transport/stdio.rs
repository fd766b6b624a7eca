//! stdio: the session spawns its own server and speaks JSON-RPC over the child's stdin/stdout.

use std::sync::Arc;

use crate::errors::Error;
use crate::process::{ChildProcess, ServerSpec, Spawned};
use crate::session::builder::SessionBuilder;
use crate::session::connection::Failure;
use crate::session::era::handshake::{self, ClientHandler, Started};

/// Spawns `spec` and initializes over its pipes within the init bound. A child that exits
/// first fails at once with its status and log tail.
pub(in crate::session) async fn connect(
    cfg: &SessionBuilder,
    spec: &ServerSpec,
    handler: ClientHandler,
) -> std::result::Result<(Started, Arc<ChildProcess>), Failure> {
    match ChildProcess::spawn(spec, 0, true).await {
        Ok(Spawned {
            proc,
            pipes: Some(pipes),
            ..
        }) => {
            let initialized = handshake::initialize(
                handler,
                (pipes.stdout, pipes.stdin),
                cfg.init_timeout,
                &cfg.protocol,
            );
            tokio::select! {
                started = initialized => Ok((started, proc)),
                status = proc.exited() => Err(Failure::Fatal(Error::ExitedEarly {
                    server: spec.name.clone(),
                    command: spec.command_line(),
                    status,
                    log_tail: proc.log_tail(20),
                })),
            }
        }
        Ok(_) => unreachable!("stdio spawn always returns pipes"),
        Err(e) => Err(Failure::Fatal(e)),
    }
}
