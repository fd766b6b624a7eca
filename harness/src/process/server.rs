//! A running network server: [`Server`], its start, restart and signals.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::child::{ChildProcess, ChildState, Spawned};
use super::readiness::{McpProbe, ProbeError, discover_address, probe_until, tcp_probe};
use super::{Readiness, ServerSpec};
use crate::errors::{Error, Result};
use crate::runtime;
use crate::transport::Transport;

/// A running network server process (streamable HTTP or SSE): a cheap, cloneable handle.
///
/// The process is killed when the last handle is dropped, at process exit, and (through
/// `PR_SET_PDEATHSIG`) when the test process is killed.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{Bundled, Server, ServerSpec, Transport};
/// let server = Server::start(ServerSpec::bundled(Bundled::FastTest, Transport::StreamableHttp)).await?;
/// println!("listening at {}", server.url());
/// server.pause()?;      // SIGSTOP: calls now time out
/// server.resume()?;     // SIGCONT
/// server.restart().await?; // same address, new process
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    spec: ServerSpec,
    url: String,
    port: u16,
    current: Mutex<Arc<ChildProcess>>,
    /// The MCP round trip that tells when a (re)started process is ready.
    probe: McpProbe,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.inner.spec.name)
            .field("url", &self.inner.url)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Server {
    /// Starts a network server with `{port}` set to `port` on its first start, probing its
    /// readiness with `probe` (the public `start` functions live in the session layer, which
    /// hands in the MCP probe).
    ///
    /// With `port` `None`, `{port}` is 0 when the server reports its address, else a free port
    /// picked here (picked again, up to three times, when the process exits before it is ready:
    /// another process may have taken the port in between).
    pub(crate) async fn launch(
        spec: ServerSpec,
        port: Option<u16>,
        probe: McpProbe,
    ) -> Result<Server> {
        if spec.transport == Transport::Stdio {
            return Err(Error::Invalid {
                what: format!("server `{}`", spec.name),
                reason: "a stdio server is started by each session; connect with `Session::builder(Target::Stdio(spec))` instead of `Server::start`".into(),
            });
        }
        let (child, url, port) = match port {
            Some(port) => {
                let (child, url) = start_child(&spec, port, probe).await?;
                (child, url, port)
            }
            None if spec.harness_picks_port() => {
                let mut attempt = 1;
                loop {
                    let port = free_port().map_err(|source| Error::Spawn {
                        server: spec.name.clone(),
                        command: spec.command_line(),
                        source,
                    })?;
                    match start_child(&spec, port, probe).await {
                        Ok((child, url)) => break (child, url, port),
                        Err(Error::ExitedEarly { .. }) if attempt < 3 => attempt += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
            None => {
                let (child, url) = start_child(&spec, 0, probe).await?;
                (child, url, 0)
            }
        };
        // A restart binds the port the first start reported, even when the url leaves it
        // implicit (`http://host/mcp` is port 80).
        let port = port_of(&url).unwrap_or(port);
        Ok(Server {
            inner: Arc::new(ServerInner {
                spec,
                url,
                port,
                current: Mutex::new(child),
                probe,
            }),
        })
    }

    /// The url clients connect to (for example `http://127.0.0.1:40123/mcp`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The transport it speaks.
    pub fn transport(&self) -> Transport {
        self.inner.spec.transport
    }

    /// The pid of the current process.
    pub fn pid(&self) -> u32 {
        self.current().pid
    }

    pub(crate) fn current(&self) -> Arc<ChildProcess> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the current process is still running (paused counts as running).
    pub fn is_running(&self) -> bool {
        !matches!(self.current().state(), ChildState::Exited(_))
    }

    /// Everything the current process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.current().logs()
    }

    /// The last `lines` lines of the current process's logs.
    pub fn log_tail(&self, lines: usize) -> String {
        self.current().log_tail(lines)
    }

    /// A description of the process state, for messages.
    pub fn describe(&self) -> String {
        self.current().describe()
    }

    /// Kills the process group with SIGKILL and waits for the exit.
    pub async fn kill(&self) -> Result<()> {
        self.current().kill().await;
        Ok(())
    }

    /// Stops the process: SIGTERM, the spec's grace period, then SIGKILL.
    pub async fn stop(&self) -> Result<()> {
        self.current().stop(self.inner.spec.stop_grace).await;
        Ok(())
    }

    /// Freezes the process group (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) -> Result<()> {
        let c = self.current();
        if matches!(c.state(), ChildState::Exited(_)) {
            return Err(Error::Process {
                server: self.name().to_owned(),
                action: "pause".into(),
                reason: c.describe(),
            });
        }
        c.pause();
        Ok(())
    }

    /// Thaws a paused process group (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.current().resume();
        Ok(())
    }

    /// Stops the current process (if running) and starts a new one on the same address.
    pub async fn restart(&self) -> Result<()> {
        self.current().stop(self.inner.spec.stop_grace).await;
        let (child, url) = start_child(&self.inner.spec, self.inner.port, self.inner.probe).await?;
        if url != self.inner.url {
            child.stop(Duration::from_millis(200)).await;
            return Err(Error::Process {
                server: self.name().to_owned(),
                action: "restart on the same address".into(),
                reason: format!(
                    "it came back at {url} instead of {}; pass `{{port}}` to the server so it can reuse the port",
                    self.inner.url
                ),
            });
        }
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = child;
        Ok(())
    }
}

/// What address discovery waited for, with what to do when a server does not do it.
fn waiting_for_address(spec: &ServerSpec) -> String {
    match &spec.address {
        super::AddressSource::ReadyLine => format!(
            "its address: a `{}{{\"url\": ...}}` line on stdout, which only servers written for \
             mcp-harness print; for any other server say where it listens (`ServerSpec::url(\"http://127.0.0.1:{{port}}/mcp\")` \
             or `url = ...` beside `command` in the config file, with `{{port}}` passed to the server) \
             or where it prints its address (`address_from_output` / `address_from`)",
            super::READY_PREFIX
        ),
        super::AddressSource::StdoutMatch(_) => {
            "its address: a stdout line the url matcher accepts".into()
        }
        super::AddressSource::OutputPattern { pattern, .. } => {
            format!("its address: a line of stdout or stderr matching `{pattern}`")
        }
        super::AddressSource::PortFile { path, .. } => {
            format!("its address: a port in {}", path.display())
        }
        super::AddressSource::Fixed(url) => format!("its address {url}"),
    }
}

/// A port free right now on the loopback interface (bound and released at once: the server
/// binds it next).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The port a url names, explicitly or by its scheme's default (`None` when it names neither,
/// or is not a url).
pub(crate) fn port_of(url: &str) -> Option<u16> {
    url::Url::parse(url).ok()?.port_or_known_default()
}

async fn start_child(
    spec: &ServerSpec,
    port: u16,
    probe: McpProbe,
) -> Result<(Arc<ChildProcess>, String)> {
    let started = Instant::now();
    let Spawned {
        proc: child, lines, ..
    } = ChildProcess::spawn(spec, port, false).await?;
    let deadline = spec.startup_timeout;
    let not_ready = |child: &ChildProcess, waiting_for: &str| Error::NotReady {
        server: spec.name.clone(),
        command: spec.command_line(),
        after: deadline,
        waiting_for: waiting_for.to_owned(),
        log_tail: child.log_tail(20),
    };
    let exited_early = |child: &ChildProcess, status: String| Error::ExitedEarly {
        server: spec.name.clone(),
        command: spec.command_line(),
        status,
        log_tail: child.log_tail(20),
    };
    let address = async { discover_address(spec, port, lines).await };
    let url = tokio::select! {
        url = runtime::timeout(deadline, address) => match url {
            Ok(Some(url)) => url,
            Ok(None) => {
                // stdout closed without an address: the process is exiting.
                let status = runtime::timeout(Duration::from_secs(2), child.exited()).await
                    .unwrap_or_else(|_| "stdout closed without reporting an address".into());
                child.stop(Duration::from_millis(200)).await;
                return Err(exited_early(&child, status));
            }
            Err(_) => {
                child.stop(Duration::from_millis(200)).await;
                return Err(not_ready(&child, &waiting_for_address(spec)));
            }
        },
        status = child.exited() => {
            // Give the stdout drain a moment to flush the last lines into the log.
            return Err(exited_early(&child, status));
        }
    };
    let remaining = deadline.saturating_sub(started.elapsed());
    let ready = async {
        match spec.readiness {
            Readiness::AddressKnown => Ok(()),
            Readiness::TcpConnect => {
                probe_until(remaining, || async {
                    tcp_probe(&url).await.map_err(ProbeError::Retry)
                })
                .await
            }
            Readiness::McpInitialize => {
                probe_until(remaining, || probe(url.clone(), spec.transport)).await
            }
        }
    };
    tokio::select! {
        r = ready => match r {
            Ok(()) => Ok((child, url)),
            Err(last) => {
                child.stop(Duration::from_millis(200)).await;
                Err(not_ready(&child, &format!("a successful {:?} probe at {url} (last: {last})", spec.readiness)))
            }
        },
        status = child.exited() => Err(exited_early(&child, status)),
    }
}
