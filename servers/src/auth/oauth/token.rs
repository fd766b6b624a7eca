//! `/token`: client authentication, the authorization code grant (PKCE) and rotating
//! refresh tokens; plus the test switch that expires every access token.

use std::{sync::Arc, time::Instant};

use axum::{
    Form, Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;

use super::{
    config::OAuthClient,
    provider::{Provider, oauth_error},
};

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// Decodes one form-urlencoded value (RFC 6749 2.3.1 encodes the Basic credentials so).
fn form_decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (
        ring::digest::digest(&ring::digest::SHA256, a),
        ring::digest::digest(&ring::digest::SHA256, b),
    );
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Authenticates the client at the token endpoint with its registered method.
#[allow(clippy::result_large_err)]
fn authenticate_client(
    p: &Provider,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<OAuthClient, Response> {
    let invalid = |d: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", d);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(id, secret)| (form_decode(id), form_decode(secret)))
        });
    let (client_id, secret, used) = match (&basic, &form.client_id, &form.client_secret) {
        (Some((id, secret)), _, _) => (id.clone(), Some(secret.clone()), "client_secret_basic"),
        (None, Some(id), Some(secret)) => (id.clone(), Some(secret.clone()), "client_secret_post"),
        (None, Some(id), None) => (id.clone(), None, "none"),
        (None, None, _) => return Err(invalid("no client authentication and no client_id")),
    };
    let Some(client) = p.store().clients.get(&client_id).cloned() else {
        return Err(invalid("unknown client_id"));
    };
    if client.token_endpoint_auth_method != used {
        return Err(invalid(&format!(
            "this client authenticates with {}, not {used}",
            client.token_endpoint_auth_method
        )));
    }
    if used != "none" {
        let expected = client.client_secret.as_deref().unwrap_or_default();
        let given = secret.unwrap_or_default();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(invalid("wrong client secret"));
        }
    }
    Ok(client)
}

pub(super) async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = match authenticate_client(&p, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    crate::events::record("oauth_token", |o| {
        o.insert("client_id".to_owned(), client.client_id.clone().into());
        o.insert(
            "grant_type".to_owned(),
            form.grant_type.clone().unwrap_or_default().into(),
        );
    });
    let grant_error = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let body = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(code) = form.code.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is missing",
                );
            };
            let mut store = p.store();
            // Codes are single use, whatever happens next.
            let Some(grant) = store.codes.remove(code) else {
                return grant_error("the authorization code is unknown or already used");
            };
            if Instant::now() >= grant.expires {
                return grant_error("the authorization code has expired");
            }
            if grant.client_id != client.client_id {
                return grant_error("the authorization code was issued to another client");
            }
            if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return grant_error("redirect_uri does not match the authorization request");
            }
            let Some(verifier) = form.code_verifier.as_deref() else {
                return grant_error("code_verifier is missing (PKCE)");
            };
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge {
                return grant_error("code_verifier does not match code_challenge (PKCE)");
            }
            let subject: Arc<str> = Arc::from(p.config.user.as_str());
            p.issue_tokens(&mut store, &client.client_id, subject, grant.scope)
        }
        Some("refresh_token") => {
            let Some(refresh) = form.refresh_token.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            let mut store = p.store();
            // Rotation: a refresh token is used once (OAuth 2.1 for public clients).
            let Some(old) = store.refresh.remove(refresh) else {
                return grant_error("the refresh token is unknown or already used");
            };
            if old.client_id != client.client_id {
                return grant_error("the refresh token was issued to another client");
            }
            let scope = match form.scope.as_deref() {
                Some(s) => {
                    let wanted: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
                    if wanted.iter().any(|w| !old.scope.contains(w)) {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "a refresh cannot widen the scope",
                        );
                    }
                    wanted
                }
                None => old.scope.clone(),
            };
            p.issue_tokens(&mut store, &client.client_id, old.subject, scope)
        }
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            );
        }
    };
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}

/// Test switch: every access token issued so far expires now (refresh tokens stay valid).
pub(super) async fn expire_tokens(State(p): State<Arc<Provider>>) -> Response {
    let now = Instant::now();
    let mut store = p.store();
    let n = store.access.len();
    for t in store.access.values_mut() {
        t.expires = now;
    }
    Json(json!({"expired": n})).into_response()
}
