//! The names of the environment variables a bundled server reads (each is read where it
//! is used). A leaf: imports nothing from the crate.

/// Environment variable holding [`ServeOptions`](crate::ServeOptions) as JSON; see
/// [`serve_from_env_if_requested`](crate::serve_from_env_if_requested).
pub const SERVE_ENV: &str = "MCP_HARNESS_SERVE";

/// Optional path of a file the server appends lifecycle events to, one JSON object per
/// line: `initialized` (`client`, `session_id`, `transport`), `cancelled` (`tool`,
/// `request_id`), `session_closed` (`client`, ...); each with `pid` and `t_us`
/// (microseconds since the UNIX epoch). Several processes may share the file.
pub const EVENT_LOG_ENV: &str = "MCP_HARNESS_EVENT_LOG";

/// The HS256 secret for [`AuthMode::Jwt`](crate::AuthMode::Jwt).
pub const JWT_SECRET_ENV: &str = "MCP_HARNESS_JWT_SECRET";

/// The RS256 public key (PEM, `-----BEGIN PUBLIC KEY-----`) for
/// [`AuthMode::Jwt`](crate::AuthMode::Jwt); may be set together with [`JWT_SECRET_ENV`] to accept both algorithms.
pub const JWT_PUBLIC_KEY_ENV: &str = "MCP_HARNESS_JWT_PUBLIC_KEY";

/// [`OAuthServerConfig`](crate::OAuthServerConfig) as JSON for
/// [`AuthMode::OAuth`](crate::AuthMode::OAuth) (unset: the defaults).
pub const OAUTH_CONFIG_ENV: &str = "MCP_HARNESS_OAUTH_CONFIG";

/// The accepted tokens for [`AuthMode::Bearer`](crate::AuthMode::Bearer): `token1=subject1,token2=subject2`.
pub const BEARER_TOKENS_ENV: &str = "MCP_HARNESS_BEARER_TOKENS";

/// stdio only: the subject `whoami` reports (stdio has no headers to authenticate).
pub const SUBJECT_ENV: &str = "MCP_HARNESS_SUBJECT";
