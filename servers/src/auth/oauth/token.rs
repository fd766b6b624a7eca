//! `/token`: client authentication (secrets and RFC 7523 assertions), the authorization code
//! grant (PKCE), rotating refresh tokens and the client credentials grant; plus the test switch that expires every access token.

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
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

/// The `client_assertion_type` of RFC 7523 client authentication.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        return authenticate_assertion(p, form).map_err(|d| invalid(&d));
    }
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

/// `private_key_jwt` (RFC 7523 section 3): the assertion is signed by one of the client's
/// registered keys, names the client as `iss` and `sub`, this server as `aud`, and has not
/// expired. The error says which rule failed.
fn authenticate_assertion(p: &Provider, form: &TokenForm) -> Result<OAuthClient, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
    if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
        return Err(format!("client_assertion_type must be {JWT_BEARER}"));
    }
    let Some(assertion) = form.client_assertion.as_deref() else {
        return Err("client_assertion is missing".into());
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| "client_assertion is not a JWT".to_owned())?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(format!(
            "client_assertion is signed with {:?}; ES256 and RS256 are supported",
            header.alg
        ));
    }
    // The client is who the assertion says (`sub`), read before the signature is checked
    // only to find the key that checks it.
    let claimed = assertion
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| {
            claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .ok_or("client_assertion has no sub claim")?;
    if let Some(id) = &form.client_id
        && *id != claimed
    {
        return Err("client_id and the assertion's sub name different clients".into());
    }
    let Some(client) = p.store().clients.get(&claimed).cloned() else {
        return Err("unknown client_id".into());
    };
    if client.token_endpoint_auth_method != "private_key_jwt" {
        return Err(format!(
            "this client authenticates with {}, not private_key_jwt",
            client.token_endpoint_auth_method
        ));
    }
    let keys: JwkSet = client
        .jwks
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or("the client has no valid jwks to check its assertion with")?;
    let candidates: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err("no registered key of the client matches the assertion's kid".into());
    }
    let issuer = p.issuer();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[issuer.to_owned(), format!("{issuer}/token")]);
    validation.set_issuer(&[claimed.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut why = "the assertion's signature matches none of the client's keys".to_owned();
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation) {
            Ok(_) => return Ok(client),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                why = match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => continue,
                    ErrorKind::ExpiredSignature => "the assertion has expired".into(),
                    ErrorKind::InvalidAudience => {
                        format!("the assertion's aud is not this server ({issuer})")
                    }
                    ErrorKind::InvalidIssuer => "the assertion's iss is not its sub".into(),
                    ErrorKind::MissingRequiredClaim(c) => format!("the assertion has no {c} claim"),
                    _ => "the assertion could not be checked".into(),
                };
                break;
            }
        }
    }
    Err(why)
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
    let grant_error = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    // RFC 8707: a token is only ever for this server's MCP endpoint.
    if let (Some(resource), Some(ours)) = (form.resource.as_deref(), p.resource.get())
        && resource.trim_end_matches('/') != ours.trim_end_matches('/')
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource is not this server's MCP endpoint",
        );
    }
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
            p.issue_tokens(&mut store, &client.client_id, subject, grant.scope, true)
        }
        Some("client_credentials") => {
            // RFC 6749 4.4: confidential clients only; the token is the client's own.
            if client.token_endpoint_auth_method == "none" {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "a public client cannot use the client credentials grant",
                );
            }
            let scope: Vec<String> = match form.scope.as_deref() {
                Some(s) => s.split_whitespace().map(str::to_owned).collect(),
                None => p.config.required_scopes.clone(),
            };
            if let Some(unknown) = scope
                .iter()
                .find(|s| !p.config.scopes_supported.contains(s))
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("unknown scope {unknown:?}"),
                );
            }
            let subject: Arc<str> = Arc::from(client.client_id.as_str());
            let mut store = p.store();
            p.issue_tokens(&mut store, &client.client_id, subject, scope, false)
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
            p.issue_tokens(&mut store, &client.client_id, old.subject, scope, true)
        }
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            );
        }
    };
    // Recorded once a token is issued: a refused request leaves no `oauth_token` event.
    crate::events::record("oauth_token", |o| {
        o.insert("client_id".to_owned(), client.client_id.clone().into());
        o.insert(
            "grant_type".to_owned(),
            form.grant_type.clone().unwrap_or_default().into(),
        );
    });
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

/// The query of the move switch: `revoke=false` leaves the old server's grants alive.
#[derive(Deserialize)]
pub(super) struct MoveQuery {
    revoke: Option<bool>,
}

/// Test switch: the protected resource names the successor authorization server from now on
/// and (unless `?revoke=false`) this one revokes every grant it made.
pub(super) async fn move_authorization_server(
    State(p): State<Arc<Provider>>,
    axum::extract::Query(q): axum::extract::Query<MoveQuery>,
) -> Response {
    let moved = p.move_to_successor(q.revoke.unwrap_or(true));
    crate::events::record("oauth_moved", |o| {
        o.insert("issuer".to_owned(), p.current_issuer().to_owned().into());
    });
    Json(json!({"moved": moved, "issuer": p.current_issuer()})).into_response()
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
