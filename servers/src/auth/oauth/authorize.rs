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

use super::client_metadata::{fetch_client, is_metadata_url};
use super::config::IssMisbehaviour;
use super::provider::{Grant, Provider, oauth_error};

/// How long an authorization code stays valid.
const CODE_TTL: Duration = Duration::from_secs(60);

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Exact match, or for loopback `http` redirect URIs a match on everything but the port
/// (RFC 8252 7.3: native clients listen on whatever port they got).
fn redirect_allowed(registered: &[String], given: &str) -> bool {
    let Ok(given_url) = url::Url::parse(given) else {
        return false;
    };
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        let Ok(mut r) = url::Url::parse(r) else {
            return false;
        };
        if r.scheme() != "http" || given_url.scheme() != "http" || !is_loopback(&r) {
            return false;
        }
        // Compare with the registered port replaced by the given one.
        r.set_port(given_url.port()).is_ok() && r == given_url
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

/// `base` with `params` appended to its query (form-urlencoded), keeping what it has.
fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            u.into()
        }
        // Registered redirect URIs were parsed at registration; keep the old behaviour anyway.
        Err(_) => base.to_owned(),
    }
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
    let known = p.store().clients.get(client_id).cloned();
    let client = match known {
        // A metadata document is fetched at every authorization: the client may change it.
        _ if p.config.client_id_metadata_documents && is_metadata_url(client_id) => {
            match fetch_client(&p, client_id).await {
                Ok(client) => {
                    crate::events::record("oauth_client_metadata", |o| {
                        o.insert("client_id".to_owned(), client_id.into());
                    });
                    p.store()
                        .clients
                        .insert(client_id.to_owned(), client.clone());
                    client
                }
                Err(why) => {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", why);
                }
            }
        }
        Some(client) => client,
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "client_id is not registered with this server",
            );
        }
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
    let iss = match p.config.misbehave.iss {
        None => Some(p.issuer().to_owned()),
        Some(IssMisbehaviour::Wrong) => Some("https://another-issuer.example".to_owned()),
        Some(IssMisbehaviour::Missing) => None,
        Some(IssMisbehaviour::Normalized) => Some(format!("{}/", p.issuer())),
    };
    crate::events::record("oauth_authorize", |o| {
        o.insert("client_id".to_owned(), client_id.into());
    });
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            params.push(("state", state.as_str()));
        }
        if let Some(iss) = &iss {
            params.push(("iss", iss.as_str()));
        }
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
    if let Some(iss) = &iss {
        params.push(("iss", iss.as_str()));
    }
    redirect(&with_query(&redirect_uri, &params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(registered: &str, given: &str) -> bool {
        redirect_allowed(&[registered.to_owned()], given)
    }

    #[test]
    fn an_exact_redirect_uri_is_allowed() {
        assert!(allowed(
            "https://app.example/cb?x=1",
            "https://app.example/cb?x=1"
        ));
    }

    #[test]
    fn a_loopback_redirect_uri_matches_on_any_port() {
        assert!(allowed(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:4711/callback"
        ));
        assert!(allowed(
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:4711/callback"
        ));
        assert!(allowed(
            "http://[::1]/callback",
            "http://[::1]:4711/callback"
        ));
        assert!(allowed("http://localhost:80/cb", "http://localhost:9/cb"));
    }

    #[test]
    fn anything_but_the_loopback_port_must_match() {
        // Another path, query, host or scheme.
        assert!(!allowed(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:4711/other"
        ));
        assert!(!allowed(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:4711/cb?a=2"
        ));
        assert!(!allowed(
            "http://127.0.0.1/cb",
            "http://127.0.0.2.evil.example:4711/cb"
        ));
        assert!(!allowed("http://127.0.0.1/cb", "https://127.0.0.1:4711/cb"));
        // Not loopback: the port is part of the match.
        assert!(!allowed(
            "http://app.example/cb",
            "http://app.example:8080/cb"
        ));
        // Userinfo cannot smuggle another host past the check.
        assert!(!allowed(
            "http://127.0.0.1/cb",
            "http://127.0.0.1@evil.example:80/cb"
        ));
        assert!(!allowed("http://127.0.0.1/cb", "not a url"));
    }

    #[test]
    fn parameters_are_appended_form_urlencoded() {
        assert_eq!(
            with_query(
                "http://127.0.0.1:9/cb",
                &[("code", "a b&c"), ("state", "s=1")]
            ),
            "http://127.0.0.1:9/cb?code=a+b%26c&state=s%3D1"
        );
        assert_eq!(
            with_query("http://127.0.0.1:9/cb?keep=1", &[("code", "x")]),
            "http://127.0.0.1:9/cb?keep=1&code=x"
        );
    }
}
