//! The lifecycle of each protocol era, one module each, over any transport, and the setting
//! that chooses between them ([`Protocol`]).
//!
//! - `handshake`: the handshake era (MCP 2024-11-05 .. 2025-11-25): `initialize`, then
//!   requests on a protocol session; the server may send requests back (answered by
//!   [`ClientHandler`]).
//! - the stateless era (MCP 2026-07-28): `server/discover`, then self-contained requests that
//!   carry their own `_meta`; run by rmcp's discover lifecycle from `handshake::initialize`.
//!
//! May import the transports' types (from rmcp) and `crate::runtime`; must not import the
//! session's handle, builder or owner task.

pub(super) mod handshake;
mod tap;

use std::fmt;

use rmcp::model::ProtocolVersion;
use rmcp::service::ClientLifecycleMode;

use crate::errors::{Error, Result};

pub(super) use handshake::ClientHandler;

/// The environment variable that sets the [`Protocol`] of every session that does not set its
/// own: `auto`, `stateless`, `handshake`, or a version (`2026-07-28`, `2025-11-25`, ...).
pub const PROTOCOL_ENV: &str = "MCP_HARNESS_PROTOCOL";

/// Which protocol era a session speaks, chosen before it connects.
///
/// The default is the handshake era at `2025-11-25` (unless [`PROTOCOL_ENV`] says otherwise):
/// every MCP server deployed today speaks it, and a test that wants the stateless era says
/// so. `Auto` is what a production client does; a test usually wants to know which era it
/// exercises, so it pins one.
///
/// ```
/// use mcp_harness::Protocol;
/// assert_eq!("auto".parse::<Protocol>().unwrap(), Protocol::Auto);
/// assert_eq!("2026-07-28".parse::<Protocol>().unwrap(), Protocol::Stateless("2026-07-28".into()));
/// assert_eq!("2025-06-18".parse::<Protocol>().unwrap(), Protocol::Handshake("2025-06-18".into()));
/// assert_eq!(Protocol::default(), Protocol::Handshake("2025-11-25".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Ask `server/discover` first and use the stateless era when the server answers it; fall
    /// back to `initialize` (offering `2025-11-25`) when the server answers like a
    /// handshake-era server. A server that ignores `server/discover` is asked `initialize` on
    /// a new connection after the session's
    /// [`discover_timeout`](crate::SessionBuilder::discover_timeout) (3 s by default).
    Auto,
    /// The stateless era at exactly this version (`2026-07-28`): `server/discover`, no
    /// `initialize`. A handshake-era server fails with [`Error::UnsupportedVersion`].
    Stateless(String),
    /// The handshake era at exactly this version: `initialize` offers it.
    Handshake(String),
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol::Handshake(ProtocolVersion::LATEST_WITH_INITIALIZE.to_string())
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Auto => f.write_str("auto"),
            Protocol::Stateless(v) | Protocol::Handshake(v) => f.write_str(v),
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let is_date = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Protocol::Auto),
            "stateless" => Ok(Protocol::Stateless(ProtocolVersion::LATEST.to_string())),
            "handshake" => Ok(Protocol::default()),
            _ if is_date => Ok(if has_initialize(s) {
                Protocol::Handshake(s.to_owned())
            } else {
                Protocol::Stateless(s.to_owned())
            }),
            _ => Err(Error::Invalid {
                what: format!("protocol `{s}`"),
                reason: "expected auto, stateless, handshake or a version such as 2026-07-28 or \
                         2025-11-25"
                    .into(),
            }),
        }
    }
}

impl Protocol {
    /// The setting from [`PROTOCOL_ENV`], or the default when it is unset.
    pub(crate) fn from_env() -> Result<Protocol> {
        match std::env::var(PROTOCOL_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e| match e {
                Error::Invalid { what, reason } => Error::Invalid {
                    what: format!("{what} in {PROTOCOL_ENV}"),
                    reason,
                },
                other => other,
            }),
            _ => Ok(Protocol::default()),
        }
    }

    /// The versions this setting offers, for messages.
    pub(super) fn offered(&self) -> Vec<String> {
        match self {
            Protocol::Auto => vec![
                ProtocolVersion::LATEST.to_string(),
                ProtocolVersion::LATEST_WITH_INITIALIZE.to_string(),
            ],
            Protocol::Stateless(v) | Protocol::Handshake(v) => vec![v.clone()],
        }
    }

    /// rmcp's lifecycle for this setting.
    pub(super) fn lifecycle(&self) -> ClientLifecycleMode {
        match self {
            Protocol::Auto => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::LATEST],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
            Protocol::Stateless(v) => ClientLifecycleMode::Discover {
                preferred_versions: vec![version(v)],
            },
            Protocol::Handshake(_) => ClientLifecycleMode::Initialize,
        }
    }
}

/// Whether `version` (a `YYYY-MM-DD` date) still has `initialize`.
fn has_initialize(version: &str) -> bool {
    version < ProtocolVersion::NO_INITIALIZE.as_str()
}

/// rmcp's version type for any `YYYY-MM-DD` string (known to rmcp or not).
pub(super) fn version(v: &str) -> ProtocolVersion {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .unwrap_or(ProtocolVersion::LATEST)
}

/// The era a connected session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Era {
    /// `initialize` and a protocol session (MCP 2024-11-05 .. 2025-11-25).
    Handshake,
    /// `server/discover` and self-contained requests (MCP 2026-07-28 and later).
    Stateless,
}

impl Era {
    /// The era of a negotiated protocol version.
    pub(crate) fn of(version: &str) -> Era {
        if has_initialize(version) {
            Era::Handshake
        } else {
            Era::Stateless
        }
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Era::Handshake => "handshake",
            Era::Stateless => "stateless",
        })
    }
}
