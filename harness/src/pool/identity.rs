//! Pool keys and identity hashing: one function decides who a caller is.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::transport::Transport;

/// The identity headers hashed by default (names compare case-insensitively).
pub const DEFAULT_IDENTITY_HEADERS: [&str; 6] = [
    "authorization",
    "x-tenant-id",
    "x-user-id",
    "x-api-key",
    "cookie",
    "x-mcp-session-id",
];

/// The value of the anonymous user and identity hashes.
pub const ANONYMOUS: &str = "anonymous";

/// The header that carries a downstream session id (affinity), never sent upstream.
pub const SESSION_ID_HEADER: &str = "x-mcp-session-id";

/// Turns request headers into a stable identity string (a user id, a tenant, ...).
///
/// Returning `Err` or `Ok(None)` (or an empty string) falls through to header hashing; an
/// extractor can never fail an acquire.
///
/// ```
/// use mcp_harness::pool::IdentityExtractor;
/// struct Tenant;
/// impl IdentityExtractor for Tenant {
///     fn extract(&self, headers: &http::HeaderMap) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
///         Ok(headers.get("x-tenant-id").and_then(|v| v.to_str().ok()).map(str::to_owned))
///     }
/// }
/// ```
pub trait IdentityExtractor: Send + Sync + 'static {
    /// The identity behind these headers, if this extractor can tell.
    fn extract(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Reads a bearer JWT's `sub` (else `email`, else `user_id`) **without verifying it**, so two
/// tokens of the same user share sessions and different users never do. Verification is the
/// upstream server's job; this only decides pooling.
///
/// ```
/// use mcp_harness::pool::{IdentityExtractor, JwtSubjectExtractor};
/// let mut h = http::HeaderMap::new();
/// // header {"alg":"none"}, payload {"sub":"alice"}
/// h.insert("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.".parse().unwrap());
/// assert_eq!(JwtSubjectExtractor.extract(&h).unwrap().as_deref(), Some("alice"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JwtSubjectExtractor;

impl IdentityExtractor for JwtSubjectExtractor {
    fn extract(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let auth = auth.to_str()?;
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .ok_or("not a bearer token")?;
        let payload = token.split('.').nth(1).ok_or("not a JWT")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes)?;
        Ok(["sub", "email", "user_id"]
            .iter()
            .find_map(|k| {
                claims
                    .get(*k)
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_owned))
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        out.push(char::from_digit((b & 0xf) as u32, 16).unwrap_or('0'));
    }
    out
}

/// How identities are hashed: the configured headers, extractor and affinity switch.
#[derive(Clone)]
pub(crate) struct IdentityRules {
    /// Parsed once (lower case), not on every acquire.
    pub(crate) headers: Vec<http::HeaderName>,
    pub(crate) extractor: Option<Arc<dyn IdentityExtractor>>,
    pub(crate) affinity: bool,
}

impl fmt::Debug for IdentityRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRules")
            .field("headers", &self.headers)
            .field("extractor", &self.extractor.is_some())
            .field("affinity", &self.affinity)
            .finish()
    }
}

impl IdentityRules {
    /// The identity hash of a request; `(hash, anonymous)`. Computed once per acquire.
    pub(crate) fn identity_hash(&self, headers: &HeaderMap) -> (String, bool) {
        if headers.is_empty() {
            return (ANONYMOUS.to_owned(), true);
        }
        if let Some(extractor) = &self.extractor
            && let Ok(Some(id)) = extractor.extract(headers)
            && !id.is_empty()
        {
            return (sha256_hex(id.as_bytes()), false);
        }
        if self.affinity
            && let Some(id) = headers.get(SESSION_ID_HEADER).and_then(|v| v.to_str().ok())
        {
            return (sha256_hex(id.as_bytes()), false);
        }
        // Sorted `name:value` pairs fed straight into the hasher: no string per pair.
        let mut pairs: Vec<(&str, &[u8])> = Vec::new();
        for name in &self.headers {
            for value in headers.get_all(name) {
                pairs.push((name.as_str(), value.as_bytes()));
            }
        }
        if pairs.is_empty() {
            return (ANONYMOUS.to_owned(), true);
        }
        pairs.sort_unstable();
        let mut hasher = Sha256::new();
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                hasher.update(b"\n");
            }
            hasher.update(name.as_bytes());
            hasher.update(b":");
            hasher.update(value);
        }
        (hex(&hasher.finalize()), false)
    }
}

/// The user part of a pool key: `anonymous` or sha256 of the user identity.
pub(crate) fn user_hash(user: Option<&str>) -> String {
    match user {
        Some(u) if !u.is_empty() => sha256_hex(u.as_bytes()),
        _ => ANONYMOUS.to_owned(),
    }
}

/// Which pool a session belongs to: `(user_hash, url, identity_hash, transport, gateway_id)`.
///
/// `Display` shows hashes shortened and the url without its query, so keys can be logged and
/// put in metrics without exposing a credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    /// `anonymous` or sha256 of the caller's user identity.
    pub user_hash: String,
    /// The upstream url (for stdio: the command line), as given.
    pub url: String,
    /// `anonymous` or sha256 of the identity (see [`IdentityExtractor`]).
    pub identity_hash: String,
    /// The transport.
    pub transport: Transport,
    /// The gateway id, `""` when absent.
    pub gateway_id: String,
}

fn short(h: &str) -> &str {
    if h == ANONYMOUS {
        h
    } else {
        &h[..h.len().min(12)]
    }
}

/// A url with its query, fragment and userinfo removed (they may carry credentials); anything
/// that is not a url (a stdio command line) loses what follows a `?` or `#`.
pub(crate) fn safe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.has_host() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.into()
        }
        _ => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}|{}",
            short(&self.user_hash),
            safe_url(&self.url),
            short(&self.identity_hash),
            self.transport,
            self.gateway_id
        )
    }
}
