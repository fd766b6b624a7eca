//! How to start a server: [`ServerSpec`], where its address comes from, when it is ready.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::Transport;

/// Finds a server's url in one line of its stdout.
pub type UrlMatcher = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the harness learns a network server's address.
#[derive(Clone)]
#[non_exhaustive]
pub enum AddressSource {
    /// The server prints `MCP_HARNESS_READY {"url": ...}` on stdout (the bundled servers do).
    ReadyLine,
    /// A function over each stdout line returns the url once it sees it.
    StdoutMatch(UrlMatcher),
    /// The server writes its port to a file; the url is `template` with `{port}` replaced.
    PortFile {
        /// The file the server writes the port to.
        path: PathBuf,
        /// For example `http://127.0.0.1:{port}/mcp`.
        url_template: String,
    },
    /// The address is known in advance. `{port}` in it (and in the arguments and environment)
    /// is a free port the harness picks before the first start, the same one on restarts:
    /// `http://127.0.0.1:{port}/mcp`.
    Fixed(String),
    /// A line of the server's stdout or stderr that matches `pattern` gives the address.
    /// The pattern is literal text with one placeholder: `{url}` takes the url as printed
    /// (up to the next space or the text after the placeholder), `{port}` takes a port, put
    /// into `url_template` (default `http://127.0.0.1:{port}/mcp`, `/sse` for SSE).
    OutputPattern {
        /// For example `listening on port {port}` or `Uvicorn running on {url}`.
        pattern: String,
        /// Where a matched port goes.
        url_template: Option<String>,
    },
}

impl fmt::Debug for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressSource::ReadyLine => f.write_str("ReadyLine"),
            AddressSource::StdoutMatch(_) => f.write_str("StdoutMatch(..)"),
            AddressSource::PortFile { path, url_template } => f
                .debug_struct("PortFile")
                .field("path", path)
                .field("url_template", url_template)
                .finish(),
            AddressSource::Fixed(u) => f.debug_tuple("Fixed").field(u).finish(),
            AddressSource::OutputPattern {
                pattern,
                url_template,
            } => f
                .debug_struct("OutputPattern")
                .field("pattern", pattern)
                .field("url_template", url_template)
                .finish(),
        }
    }
}

/// When a network server counts as ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// As soon as its address is known.
    AddressKnown,
    /// When a TCP connection to its address succeeds.
    TcpConnect,
    /// When an MCP `initialize` round trip succeeds (the default for servers not written here).
    McpInitialize,
}

/// How to start a server: any program, in any language.
///
/// `{port}` in arguments, environment values and the url is replaced by the port to use. When
/// the server reports its own address (the `MCP_HARNESS_READY` line of the bundled servers, a
/// stdout match, a port file) it is `0` on the first start, so the server picks one; when the
/// harness must know the address in advance ([`ServerSpec::url`]) or reads only a port from the
/// output ([`ServerSpec::address_from_output`]), it is a free port the harness picks. A restart
/// uses the port of the first start, so the address stays the same.
///
/// ```
/// use mcp_harness::{ServerSpec, Transport};
/// let spec = ServerSpec::new("my-python-server", "python3")
///     .args(["-m", "my_server", "--port", "{port}"])
///     .transport(Transport::StreamableHttp)
///     .url_from_stdout(|line| line.strip_prefix("listening on ").map(str::to_owned));
/// assert_eq!(spec.name(), "my-python-server");
/// ```
#[derive(Clone)]
pub struct ServerSpec {
    pub(crate) name: String,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) env_remove: Vec<OsString>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) transport: Transport,
    pub(crate) address: AddressSource,
    pub(crate) readiness: Readiness,
    pub(crate) startup_timeout: Duration,
    pub(crate) stop_grace: Duration,
    pub(crate) log_cap: Option<u64>,
}

/// Environment values are never shown: they carry secrets (JWT keys, bearer tokens, OAuth
/// client secrets).
impl fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpec")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field(
                "env",
                &self
                    .env
                    .iter()
                    .map(|(k, _)| (k, "<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("env_remove", &self.env_remove)
            .field("cwd", &self.cwd)
            .field("transport", &self.transport)
            .field("address", &self.address)
            .field("readiness", &self.readiness)
            .field("startup_timeout", &self.startup_timeout)
            .field("stop_grace", &self.stop_grace)
            .field("log_cap", &self.log_cap)
            .finish()
    }
}

impl ServerSpec {
    /// A server named `name` (used in logs and errors) started by running `program`.
    pub fn new(name: impl Into<String>, program: impl Into<OsString>) -> Self {
        ServerSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            transport: Transport::Stdio,
            address: AddressSource::ReadyLine,
            readiness: Readiness::McpInitialize,
            startup_timeout: Duration::from_secs(15),
            stop_grace: Duration::from_secs(2),
            log_cap: None,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (the value may hold a secret: it is never
    /// logged).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the transport (default: stdio).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets where the address comes from (default: the `MCP_HARNESS_READY` line).
    pub fn address(mut self, source: AddressSource) -> Self {
        self.address = source;
        self
    }

    /// The server will listen at `url`; `{port}` in it (and in the arguments and environment)
    /// is a free port the harness picks.
    ///
    /// ```
    /// use mcp_harness::{ServerSpec, Transport};
    /// let spec = ServerSpec::new("everything", "node")
    ///     .args(["dist/index.js", "streamableHttp"])
    ///     .env("PORT", "{port}")
    ///     .transport(Transport::StreamableHttp)
    ///     .url("http://127.0.0.1:{port}/mcp");
    /// # let _ = spec;
    /// ```
    pub fn url(self, url: impl Into<String>) -> Self {
        self.address(AddressSource::Fixed(url.into()))
    }

    /// Learns the address from the first line of stdout or stderr matching `pattern`: literal
    /// text with `{url}` (the url as printed) or `{port}` (the url is then
    /// `http://127.0.0.1:{port}/mcp`, `/sse` for SSE) in it. See [`AddressSource::OutputPattern`].
    ///
    /// ```
    /// use mcp_harness::{ServerSpec, Transport};
    /// let spec = ServerSpec::new("uvicorn-app", "python3")
    ///     .args(["-m", "my_app"])
    ///     .transport(Transport::StreamableHttp)
    ///     .address_from_output("Uvicorn running on {url}");
    /// # let _ = spec;
    /// ```
    pub fn address_from_output(self, pattern: impl Into<String>) -> Self {
        self.address(AddressSource::OutputPattern {
            pattern: pattern.into(),
            url_template: None,
        })
    }

    /// Whether the harness picks `{port}` before the first start (the address is not reported
    /// by the server as a whole url).
    pub(crate) fn harness_picks_port(&self) -> bool {
        match &self.address {
            AddressSource::Fixed(url) => url.contains("{port}"),
            AddressSource::OutputPattern { pattern, .. } => pattern.contains("{port}"),
            _ => false,
        }
    }

    /// Whether stderr lines count for address discovery too.
    pub(crate) fn reads_address_from_stderr(&self) -> bool {
        matches!(self.address, AddressSource::OutputPattern { .. })
    }

    /// Learns the url from the first stdout line for which `f` returns `Some`.
    pub fn url_from_stdout(
        self,
        f: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.address(AddressSource::StdoutMatch(Arc::new(f)))
    }

    /// Sets the readiness check (default: an MCP initialize round trip).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Sets the startup deadline (default 15 s).
    pub fn startup_timeout(mut self, d: Duration) -> Self {
        self.startup_timeout = d;
        self
    }

    /// Sets how long a stop waits after SIGTERM before SIGKILL (default 2 s).
    pub fn stop_grace(mut self, d: Duration) -> Self {
        self.stop_grace = d;
        self
    }

    /// Caps each of its log files (stdout, stderr) at `bytes`: the first quarter and the last
    /// three quarters are kept, a marker line says how much was cut between them. Default:
    /// `MCP_HARNESS_LOG_CAP` (`4096`, `64K`, `8M`, ...), else 8 MiB.
    ///
    /// ```
    /// let spec = mcp_harness::ServerSpec::new("chatty", "my-server").log_cap(1 << 20);
    /// # let _ = spec;
    /// ```
    pub fn log_cap(mut self, bytes: u64) -> Self {
        self.log_cap = Some(bytes);
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The transport.
    pub fn transport_kind(&self) -> Transport {
        self.transport
    }

    /// The command line for messages: program and arguments, never environment values.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(super) fn command(&self, port: u16) -> std::process::Command {
        let subst = |s: &OsString| -> OsString {
            match s.to_str() {
                Some(t) if t.contains("{port}") => t.replace("{port}", &port.to_string()).into(),
                _ => s.clone(),
            }
        };
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(self.args.iter().map(subst));
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, subst(v));
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}
