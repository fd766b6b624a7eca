//! Why the gate refuses a request: shared by the gate and the OAuth server, which checks
//! its own access tokens.

/// Why a request was refused. Never carries the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    Missing,
    Unknown,
    Malformed,
    Expired,
    /// OAuth: the token is valid but lacks a scope the resource requires (403).
    Scope,
}

impl Reject {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Unknown => "unknown",
            Reject::Malformed => "malformed",
            Reject::Expired => "expired",
            Reject::Scope => "insufficient_scope",
        }
    }
}
