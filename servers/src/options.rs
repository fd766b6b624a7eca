//! What to serve and how: [`ServeOptions`] and its enums, and [`ServeError`].

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr};

use serde::{Deserialize, Serialize};

/// Which bundled server to run.
///
/// ```
/// use mcp_harness_servers::Bundled;
/// let server: Bundled = "fast-time".parse().unwrap();
/// assert_eq!(server, Bundled::FastTime);
/// assert_eq!(server.to_string(), "fast-time");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bundled {
    /// `fast-test`: echo, add, sleep, fail, error, big, counter, whoami, notify,
    /// progress, log and stats tools, a resource and a prompt.
    FastTest,
    /// `fast-time`: `get_system_time` and `convert_time` (same shape as the
    /// reference Python `mcp-server-time`), plus `stats` and `whoami`.
    FastTime,
    /// `conformance`: the tools, resources, prompts and completions the official MCP
    /// conformance suite's server scenarios expect (`test_simple_text`,
    /// `test://static-text`, `test_simple_prompt`, sampling and elicitation requests to
    /// the client, ...): a spec-complete server to test clients and gateways against.
    Conformance,
}

impl Bundled {
    /// Every bundled server.
    pub const ALL: [Bundled; 3] = [Bundled::FastTest, Bundled::FastTime, Bundled::Conformance];

    /// The name used on the command line and in JSON (`fast-test`, `fast-time`,
    /// `conformance`).
    pub fn as_str(self) -> &'static str {
        match self {
            Bundled::FastTest => "fast-test",
            Bundled::FastTime => "fast-time",
            Bundled::Conformance => "conformance",
        }
    }
}

/// How the server talks to its client.
///
/// ```
/// use mcp_harness_servers::Transport;
/// assert_eq!("http".parse::<Transport>().unwrap(), Transport::Http);
/// assert_eq!(Transport::Stdio.to_string(), "stdio");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Newline-delimited JSON-RPC on stdin/stdout.
    Stdio,
    /// MCP streamable HTTP (POST/GET/DELETE on one path).
    Http,
    /// The legacy HTTP+SSE transport (2024-11-05): `GET /sse` opens an event stream whose
    /// first `endpoint` event names the URL to POST messages to (`/message?sessionId=...`).
    /// `path` does not apply.
    Sse,
}

impl Transport {
    /// The name used on the command line and in JSON (`stdio`, `http`, `sse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

/// How HTTP requests are authenticated. Ignored on stdio (see
/// [`SUBJECT_ENV`](crate::SUBJECT_ENV)).
///
/// ```
/// use mcp_harness_servers::AuthMode;
/// assert_eq!("jwt".parse::<AuthMode>().unwrap(), AuthMode::Jwt);
/// assert_eq!(AuthMode::default(), AuthMode::None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every request is allowed; the subject is `null`.
    #[default]
    None,
    /// `Authorization: Bearer <token>` must name a token listed in
    /// [`BEARER_TOKENS_ENV`](crate::BEARER_TOKENS_ENV); the subject is the one mapped to it.
    Bearer,
    /// `Authorization: Bearer <jwt>` must be an HS256 JWT signed with
    /// [`JWT_SECRET_ENV`](crate::JWT_SECRET_ENV), or an RS256 JWT verified with the public key
    /// in [`JWT_PUBLIC_KEY_ENV`](crate::JWT_PUBLIC_KEY_ENV) (either or both may be set);
    /// `exp` is checked if present, `sub` is the subject.
    Jwt,
    /// OAuth 2.1 access tokens issued by the server's built-in authorization server
    /// (configured by [`OAUTH_CONFIG_ENV`](crate::OAUTH_CONFIG_ENV)); the subject is its
    /// test user.
    #[serde(rename = "oauth")]
    OAuth,
}

impl AuthMode {
    /// The name used on the command line and in JSON (`none`, `bearer`, `jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Bearer => "bearer",
            AuthMode::Jwt => "jwt",
            AuthMode::OAuth => "oauth",
        }
    }
}

/// The error returned when parsing [`Bundled`], [`Transport`] or [`AuthMode`] from a string fails.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown {kind} {value:?}: expected one of {expected}")]
pub struct ParseNameError {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

macro_rules! name_enum {
    ($ty:ident, $kind:literal, $expected:literal, [$($variant:ident),*]) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseNameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(
                    if s.eq_ignore_ascii_case($ty::$variant.as_str()) {
                        return Ok($ty::$variant);
                    }
                )*
                Err(ParseNameError { kind: $kind, value: s.to_owned(), expected: $expected })
            }
        }
    };
}

name_enum!(
    Bundled,
    "bundled server",
    "fast-test, fast-time, conformance",
    [FastTest, FastTime, Conformance]
);
name_enum!(
    Transport,
    "transport",
    "stdio, http, sse",
    [Stdio, Http, Sse]
);
name_enum!(
    AuthMode,
    "auth mode",
    "none, bearer, jwt, oauth",
    [None, Bearer, Jwt, OAuth]
);

/// Everything [`serve`](crate::serve) needs. Serialized as JSON into
/// [`SERVE_ENV`](crate::SERVE_ENV) to re-execute a binary as a bundled server.
///
/// Every field has a default (`fast-test` on `stdio`), so `{}` is valid JSON for it and
/// `{"server":"fast-time","transport":"http"}` is a typical one.
///
/// ```
/// use mcp_harness_servers::{Bundled, ServeOptions, Transport};
/// let opts = ServeOptions::new(Bundled::FastTest, Transport::Http);
/// assert_eq!(opts.path, "/mcp");
/// assert_eq!(opts.port, 0);
/// let json = serde_json::to_string(&opts).unwrap();
/// let back: ServeOptions = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.transport, Transport::Http);
/// let small: ServeOptions =
///     serde_json::from_str(r#"{"server":"fast-time","transport":"stdio"}"#).unwrap();
/// assert!(!small.stateless);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeOptions {
    /// Which server to run.
    pub server: Bundled,
    /// Which transport to serve it on.
    pub transport: Transport,
    /// HTTP: the address to bind (default `127.0.0.1`).
    pub host: IpAddr,
    /// HTTP: the port to bind; `0` lets the OS pick one (reported on the READY line
    /// and in `port_file`).
    pub port: u16,
    /// HTTP: the path of the MCP endpoint (default `/mcp`).
    pub path: String,
    /// HTTP: serve statelessly (no `Mcp-Session-Id`, one handler per request)
    /// instead of with sessions.
    pub stateless: bool,
    /// HTTP: how requests are authenticated.
    pub auth: AuthMode,
    /// Exit once the process with this pid no longer exists.
    pub watch_pid: Option<u32>,
    /// HTTP: once listening, write the bound port (decimal, newline) to this file
    /// atomically (write a temporary file, then rename).
    pub port_file: Option<PathBuf>,
    /// HTTP: serve https with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, in PEM files, for serving https.
///
/// ```
/// use mcp_harness_servers::TlsFiles;
/// let tls = TlsFiles { cert: "server.pem".into(), key: "server.key".into() };
/// assert_eq!(tls.cert.to_str(), Some("server.pem"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// The server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            server: Bundled::FastTest,
            transport: Transport::Stdio,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            path: "/mcp".to_owned(),
            stateless: false,
            auth: AuthMode::None,
            watch_pid: None,
            port_file: None,
            tls: None,
        }
    }
}

impl ServeOptions {
    /// Options for `server` on `transport`, everything else at its default.
    pub fn new(server: Bundled, transport: Transport) -> Self {
        Self {
            server,
            transport,
            ..Self::default()
        }
    }
}

/// Why a bundled server could not start or stopped with an error.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The JSON in an environment variable is not valid [`ServeOptions`].
    #[error(
        "{var} does not hold valid ServeOptions JSON ({source}); expected e.g. \
         {{\"server\":\"fast-test\",\"transport\":\"stdio\"}}"
    )]
    BadOptions {
        /// The environment variable read.
        var: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The options ask for something not implemented (yet).
    #[error("{what} is not supported yet; use {instead}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// What to use instead.
        instead: &'static str,
    },
    /// The options are inconsistent.
    #[error("invalid serve options: {0}")]
    InvalidOptions(String),
    /// A secret the chosen auth mode needs is not in the environment, or is malformed.
    #[error(
        "auth mode {mode} needs {var} in the server's environment: {problem} \
         (secrets are never read from argv)"
    )]
    Secret {
        /// The auth mode.
        mode: AuthMode,
        /// The environment variable.
        var: &'static str,
        /// What is wrong with it (never its value).
        problem: String,
    },
    /// Binding the HTTP listener failed.
    #[error("cannot listen on {addr}: {source}; pick another port or use port 0 for a free one")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the port file failed.
    #[error("cannot write the port file {}: {source}; check that its directory exists and is writable", path.display())]
    PortFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Some other I/O failure (building the runtime, installing signal handlers,
    /// accepting connections...).
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The MCP session on stdio could not start (e.g. the first message was not `initialize`).
    #[error("the MCP session on stdio did not start: {0}")]
    Session(String),
}

impl ServeError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ServeError {
        move |source| ServeError::Io { what, source }
    }
}
