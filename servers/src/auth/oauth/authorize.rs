//! `/authorize`: approves the test user at once and redirects to the client's callback
//! with a code (PKCE S256 required); loopback redirect URIs match on any port.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::provider::{Grant, Provider, oauth_error};

/// How long an authorization code stays valid.
const CODE_TTL: Duration = Duration::from_secs(60);

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1")
}

/// Splits `http://host:port/path?query` into (scheme, host, port, rest).
fn split_url(url: &str) -> Option<(&str, &str, Option<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped.find(']')?;
        let host = &authority[..end + 2];
        let port = authority[end + 2..].strip_prefix(':');
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some((scheme, host, port, path))
}

/// Exact match, or for loopback redirect URIs a match on everything but the port.
fn redirect_allowed(registered: &[String], given: &str) -> bool {
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        match (split_url(r), split_url(given)) {
            (Some((s1, h1, _, p1)), Some((s2, h2, _, p2))) => {
                s1 == "http" && s1 == s2 && is_loopback_host(h1) && h1 == h2 && p1 == p2
            }
            _ => false,
        }
    })
}

#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_urlencoded_value(v));
        sep = '&';
    }
    out
}

fn form_urlencoded_value(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (
                header::LOCATION,
                HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

pub(super) async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    // Problems with the client or its redirect URI are shown here, never redirected.
    let Some(client_id) = q.client_id.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is missing",
        );
    };
    let Some(client) = p.store().clients.get(client_id).cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id is not registered with this server",
        );
    };
    let redirect_uri = match q.redirect_uri.as_deref() {
        Some(r) if redirect_allowed(&client.redirect_uris, r) => r.to_owned(),
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is not one registered for this client",
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is missing",
            );
        }
    };
    let state = q.state.clone().unwrap_or_default();
    let iss = p.issuer().to_owned();
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            params.push(("state", state.as_str()));
        }
        params.push(("iss", iss.as_str()));
        redirect(&with_query(&redirect_uri, &params))
    };
    if q.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(challenge) = q.code_challenge.clone().filter(|c| !c.is_empty()) else {
        return fail("invalid_request", "PKCE is required: send code_challenge");
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if let (Some(resource), Some(ours)) = (q.resource.as_deref(), p.resource.get())
        && resource.trim_end_matches('/') != ours.trim_end_matches('/')
    {
        return fail(
            "invalid_target",
            "resource is not this server's MCP endpoint",
        );
    }
    let scope: Vec<String> = match q.scope.as_deref() {
        Some(s) => s.split_whitespace().map(str::to_owned).collect(),
        None => p.config.required_scopes.clone(),
    };
    if let Some(unknown) = scope
        .iter()
        .find(|s| !p.config.scopes_supported.contains(s))
    {
        return fail("invalid_scope", &format!("unknown scope {unknown:?}"));
    }
    let code = p.random_token("code_");
    p.store().codes.insert(
        code.clone(),
        Grant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope,
            expires: Instant::now() + CODE_TTL,
        },
    );
    tracing::debug!(client_id, "authorization approved for the test user");
    let mut params = vec![("code", code.as_str())];
    if !state.is_empty() {
        params.push(("state", state.as_str()));
    }
    params.push(("iss", iss.as_str()));
    redirect(&with_query(&redirect_uri, &params))
}
