//! The bundled test servers, started by re-executing the current binary.
//!
//! Any binary that links `mcp-harness` (a test binary, the CLI) can become a bundled server: a
//! constructor that runs before `main` looks for `MCP_HARNESS_SERVE` and, when set, serves and
//! exits. So a downstream crate needs no extra install step to spawn `fast-test` or `fast-time`.
//!
//! Sits on the process layer (it builds [`ServerSpec`]s); must not import `session` or `pool`.

use std::path::PathBuf;

use crate::process::{AddressSource, Readiness, ServerSpec};
use crate::secret::Secret;
use crate::transport::Transport;

pub use mcp_harness_servers::{
    Bundled, IssMisbehaviour, OAuthClient, OAuthMisbehaviour, OAuthServerConfig,
};

/// Registered with the loader directly: a process started with `MCP_HARNESS_SERVE` becomes
/// that bundled server before `main` runs. [`BundledServer::spec`] refers to it so that every
/// binary that spawns bundled servers links it (a `#[used]` static in a library is only linked
/// when its object file is).
#[used]
#[unsafe(link_section = ".init_array")]
static SERVE_BUNDLED_SERVER: extern "C" fn() = serve_bundled_server_if_requested;

/// Runs before `main` (from `.init_array`): a process started with `MCP_HARNESS_SERVE` becomes
/// that bundled server and exits; any other process returns at once.
extern "C" fn serve_bundled_server_if_requested() {
    if std::env::var_os(mcp_harness_servers::SERVE_ENV).is_some() {
        // Before main, Rust has not yet set SIGPIPE to "ignore": without this, a client that
        // hangs up mid-response would kill the server instead of failing one write.
        // SAFETY: plain syscall, one thread.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
    mcp_harness_servers::serve_from_env_if_requested();
}

/// How a bundled server checks credentials.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum BundledAuth {
    /// No check; `whoami` reports no subject.
    #[default]
    None,
    /// Static bearer tokens, each mapped to a subject.
    Bearer(Vec<(Secret, String)>),
    /// HS256 JWTs signed with this secret; the subject is the `sub` claim.
    Jwt(Secret),
    /// RS256 JWTs verified with this RSA public key (PEM, `-----BEGIN PUBLIC KEY-----`); the
    /// subject is the `sub` claim.
    JwtRs256(String),
    /// OAuth 2.1 through the server's built-in authorization server, which approves its
    /// configured test user without a browser (see [`OAuthServerConfig`]).
    OAuth(Box<OAuthServerConfig>),
}

/// Options for a bundled server; [`spec`](Self::spec) turns them into a [`ServerSpec`].
///
/// ```
/// use mcp_harness::{Bundled, BundledAuth, BundledServer, Transport};
/// let spec = BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
///     .auth(BundledAuth::Jwt("test-secret".into()))
///     .stateless(true)
///     .spec();
/// assert_eq!(spec.name(), "fast-test");
/// ```
#[derive(Clone, Debug)]
pub struct BundledServer {
    kind: Bundled,
    transport: Transport,
    auth: BundledAuth,
    stateless: bool,
    subject: Option<String>,
    event_log: Option<PathBuf>,
    watch_pid: Option<u32>,
    tls: Option<(PathBuf, PathBuf)>,
}

impl BundledServer {
    /// A bundled server of `kind` over `transport` (stdio, streamable HTTP or legacy SSE).
    pub fn new(kind: Bundled, transport: Transport) -> Self {
        BundledServer {
            kind,
            transport,
            auth: BundledAuth::None,
            stateless: false,
            subject: None,
            event_log: None,
            watch_pid: None,
            tls: None,
        }
    }

    /// Sets the credential check (HTTP).
    pub fn auth(mut self, auth: BundledAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Serves streamable HTTP without sessions.
    pub fn stateless(mut self, stateless: bool) -> Self {
        self.stateless = stateless;
        self
    }

    /// The subject `whoami` reports over stdio (there are no headers there).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// A file the server appends lifecycle events to (JSON lines: initialized, cancelled,
    /// session_closed), for tests that observe the server from outside.
    pub fn event_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.event_log = Some(path.into());
        self
    }

    /// Serves https (streamable HTTP or SSE) with this certificate chain and key, PEM files.
    /// Clients trust its CA through [`trust_ca_file`](crate::trust_ca_file).
    ///
    /// ```
    /// use mcp_harness::{Bundled, BundledServer, Transport};
    /// let spec = BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
    ///     .tls("server.pem", "server.key")
    ///     .spec();
    /// # let _ = spec;
    /// ```
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// Makes the server exit when this pid is gone (for servers shared across processes).
    pub fn watch_pid(mut self, pid: u32) -> Self {
        self.watch_pid = Some(pid);
        self
    }

    /// The spec that re-executes the current binary as this server.
    pub fn spec(&self) -> ServerSpec {
        // Whoever builds a bundled spec gets the pre-`main` hook linked into their binary.
        std::hint::black_box(&SERVE_BUNDLED_SERVER);
        let transport = match self.transport {
            Transport::Stdio => mcp_harness_servers::Transport::Stdio,
            Transport::StreamableHttp => mcp_harness_servers::Transport::Http,
            Transport::Sse => mcp_harness_servers::Transport::Sse,
        };
        let mut opts = mcp_harness_servers::ServeOptions::new(self.kind, transport);
        opts.stateless = self.stateless;
        opts.watch_pid = self.watch_pid;
        opts.auth = match self.auth {
            BundledAuth::None => mcp_harness_servers::AuthMode::None,
            BundledAuth::Bearer(_) => mcp_harness_servers::AuthMode::Bearer,
            BundledAuth::Jwt(_) | BundledAuth::JwtRs256(_) => mcp_harness_servers::AuthMode::Jwt,
            BundledAuth::OAuth(_) => mcp_harness_servers::AuthMode::OAuth,
        };
        opts.tls = self
            .tls
            .as_ref()
            .map(|(cert, key)| mcp_harness_servers::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        opts.port = 0;
        // The port goes through `{port}` so that a restart reuses the address it reported.
        let json = serde_json::to_string(&opts)
            .expect("ServeOptions always serializes")
            .replacen("\"port\":0", "\"port\":{port}", 1);
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let mut spec = ServerSpec::new(self.kind.to_string(), exe)
            .transport(self.transport)
            .address(AddressSource::ReadyLine)
            .readiness(Readiness::AddressKnown)
            .env(mcp_harness_servers::SERVE_ENV, json)
            .env_remove(mcp_harness_servers::EVENT_LOG_ENV)
            .env_remove(mcp_harness_servers::JWT_SECRET_ENV)
            .env_remove(mcp_harness_servers::JWT_PUBLIC_KEY_ENV)
            .env_remove(mcp_harness_servers::OAUTH_CONFIG_ENV)
            .env_remove(mcp_harness_servers::BEARER_TOKENS_ENV)
            .env_remove(mcp_harness_servers::SUBJECT_ENV);
        match &self.auth {
            BundledAuth::None => {}
            BundledAuth::Bearer(tokens) => {
                let joined = tokens
                    .iter()
                    .map(|(t, s)| format!("{}={s}", t.expose()))
                    .collect::<Vec<_>>()
                    .join(",");
                spec = spec.env(mcp_harness_servers::BEARER_TOKENS_ENV, joined);
            }
            BundledAuth::Jwt(secret) => {
                spec = spec.env(mcp_harness_servers::JWT_SECRET_ENV, secret.expose());
            }
            BundledAuth::JwtRs256(pem) => {
                spec = spec.env(mcp_harness_servers::JWT_PUBLIC_KEY_ENV, pem);
            }
            BundledAuth::OAuth(config) => {
                let json = serde_json::to_string(config).expect("OAuthServerConfig serializes");
                spec = spec.env(mcp_harness_servers::OAUTH_CONFIG_ENV, json);
            }
        }
        if let Some(s) = &self.subject {
            spec = spec.env(mcp_harness_servers::SUBJECT_ENV, s);
        }
        if let Some(p) = &self.event_log {
            spec = spec.env(mcp_harness_servers::EVENT_LOG_ENV, p);
        }
        spec
    }
}

impl ServerSpec {
    /// The spec of a bundled server (`fast-test`, `fast-time`, `conformance`) over
    /// `transport`, with no auth; see [`BundledServer`] for auth and other options.
    ///
    /// ```
    /// use mcp_harness::{Bundled, ServerSpec, Transport};
    /// let spec = ServerSpec::bundled(Bundled::FastTime, Transport::Stdio);
    /// assert_eq!(spec.name(), "fast-time");
    /// ```
    pub fn bundled(kind: Bundled, transport: Transport) -> ServerSpec {
        BundledServer::new(kind, transport).spec()
    }
}
