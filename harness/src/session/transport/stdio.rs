//! stdio: the session spawns its own server and speaks JSON-RPC over the child's stdin/stdout.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

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
    violation: Arc<Mutex<Option<String>>>,
) -> std::result::Result<(Started, Arc<ChildProcess>), Failure> {
    match ChildProcess::spawn(spec, 0, true).await {
        Ok(Spawned {
            proc,
            pipes: Some(pipes),
            ..
        }) => {
            let stdout = BoundedLines {
                inner: pipes.stdout,
                limit: cfg.max_message_size,
                line: 0,
                violation,
            };
            let initialized = handshake::initialize(
                handler,
                (stdout, pipes.stdin),
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

/// The server's stdout, one JSON-RPC message per line, with a bound on the length of a line:
/// past it the pipe reads as broken (the session closes, memory stays bounded) and the
/// violation is recorded for the error the callers get.
struct BoundedLines<R> {
    inner: R,
    limit: usize,
    /// Bytes since the last newline.
    line: usize,
    violation: Arc<Mutex<Option<String>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for BoundedLines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        let mut line = self.line;
        for &b in read {
            line = if b == b'\n' { 0 } else { line + 1 };
            if line > self.limit {
                let what = format!(
                    "the server wrote a message of more than {} bytes on stdout (the session's \
                     max_message_size); the session was closed",
                    self.limit
                );
                *self.violation.lock().unwrap_or_else(|p| p.into_inner()) = Some(what.clone());
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    what,
                )));
            }
        }
        self.line = line;
        Poll::Ready(Ok(()))
    }
}
