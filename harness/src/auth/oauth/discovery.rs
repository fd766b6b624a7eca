//! Discovery: protected resource metadata (RFC 9728), authorization server metadata (RFC 8414).

use std::time::Duration;

use serde_json::Value;

use super::OAuth;
use super::http::{OAUTH_HTTP, json_body, oauth_error, send};
use crate::auth::refusal::challenge_param;
use crate::errors::{OAuthStep, Result};
use crate::secret::Secret;

#[derive(Clone)]
pub(super) struct Discovery {
    pub(super) resource: String,
    pub(super) issuer: String,
    pub(super) authorization_endpoint: String,
    pub(super) token_endpoint: String,
    pub(super) registration_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`, if the metadata says.
    pub(super) auth_methods: Option<Vec<String>>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207): the authorization
    /// response must then carry `iss`.
    pub(super) iss_supported: bool,
    /// `client_id_metadata_document_supported`: the server takes a client ID metadata
    /// document url as a client id.
    pub(super) cimd_supported: bool,
    pub(super) scope: Option<String>,
}

fn well_known(base: &reqwest::Url, name: &str, path_suffix: bool) -> Option<String> {
    let mut u = base.clone();
    let path = base.path().trim_end_matches('/').to_owned();
    u.set_query(None);
    u.set_fragment(None);
    if path_suffix && !path.is_empty() {
        u.set_path(&format!("/.well-known/{name}{path}"));
    } else {
        u.set_path(&format!("/.well-known/{name}"));
    }
    Some(u.to_string())
}

async fn fetch_json(url: &str, step: OAuthStep, bound: Duration) -> Result<Option<Value>> {
    let response = send(
        OAUTH_HTTP
            .get()
            .get(url)
            .header(http::header::ACCEPT, "application/json"),
        url,
        step,
        bound,
    )
    .await?;
    if !response.status().is_success() {
        return Ok(None);
    }
    json_body(response, url, step, bound).await.map(Some)
}

pub(super) async fn discover(
    resource_url: &str,
    sse: bool,
    headers: &[(String, Secret)],
    oauth: &OAuth,
) -> Result<Discovery> {
    let step = OAuthStep::Discovery;
    let bound = oauth.step_timeout;
    let url = reqwest::Url::parse(resource_url)
        .map_err(|e| oauth_error(resource_url, step, format!("not a url: {e}")))?;
    // 1. The unauthenticated request and its 401 challenge.
    let mut probe = if sse {
        OAUTH_HTTP
            .get()
            .get(url.clone())
            .header(http::header::ACCEPT, "text/event-stream")
    } else {
        OAUTH_HTTP
            .get()
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
    };
    for (k, v) in headers {
        probe = probe.header(k.as_str(), v.expose());
    }
    let response = send(probe, resource_url, step, bound).await?;
    let challenge = (response.status() == reqwest::StatusCode::UNAUTHORIZED)
        .then(|| {
            response
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .flatten();
    drop(response);
    let challenge_scope = challenge
        .as_deref()
        .and_then(|c| challenge_param(c, "scope"));
    // 2. Protected resource metadata: from the challenge, else the well-known urls.
    let mut candidates = Vec::new();
    if let Some(u) = challenge
        .as_deref()
        .and_then(|c| challenge_param(c, "resource_metadata"))
    {
        candidates.push(u);
    }
    candidates.extend(well_known(&url, "oauth-protected-resource", true));
    candidates.extend(well_known(&url, "oauth-protected-resource", false));
    candidates.dedup();
    let mut prm = None;
    for c in &candidates {
        if let Some(doc) = fetch_json(c, step, bound).await? {
            prm = Some(doc);
            break;
        }
    }
    let Some(prm) = prm else {
        if challenge.is_some() {
            // A 401 without protected resource metadata: an MCP 2025-03-26 server.
            return discover_at_origin(&url, resource_url, challenge_scope, bound).await;
        }
        return Err(oauth_error(
            resource_url,
            step,
            format!(
                "no protected resource metadata (RFC 9728) at {}; is OAuth enabled on this server?",
                candidates.join(", ")
            ),
        ));
    };
    let issuer = prm
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| {
            oauth_error(
                resource_url,
                step,
                "the protected resource metadata lists no authorization_servers",
            )
        })?
        .to_owned();
    let resource = prm
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or(resource_url)
        .to_owned();
    if !covers(&resource, &url) {
        return Err(oauth_error(
            resource_url,
            step,
            format!(
                "the protected resource metadata is for {resource:?}, not for this server \
                 ({resource_url}); refusing to ask for a token for another resource \
                 (RFC 9728 section 3.3)"
            ),
        ));
    }
    let scope = challenge_scope.or_else(|| {
        prm.get("scopes_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty())
    });
    // 3. Authorization server metadata: RFC 8414, then OIDC discovery.
    let issuer_url = reqwest::Url::parse(&issuer)
        .map_err(|e| oauth_error(&issuer, step, format!("the issuer is not a url: {e}")))?;
    let mut as_candidates = Vec::new();
    let has_path = !issuer_url.path().trim_matches('/').is_empty();
    as_candidates.extend(well_known(&issuer_url, "oauth-authorization-server", true));
    as_candidates.extend(well_known(&issuer_url, "openid-configuration", true));
    if has_path {
        as_candidates.push(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ));
    }
    let mut meta = None;
    for c in &as_candidates {
        if let Some(doc) = fetch_json(c, step, bound).await? {
            meta = Some(doc);
            break;
        }
    }
    let Some(meta) = meta else {
        return Err(oauth_error(
            &issuer,
            step,
            format!(
                "no authorization server metadata at {}",
                as_candidates.join(", ")
            ),
        ));
    };
    // RFC 8414 section 3.3: the metadata's issuer is exactly the one its url was built from
    // (no normalization), or its endpoints may be an attacker's.
    let named = meta.get("issuer").and_then(Value::as_str);
    if named != Some(issuer.as_str()) {
        return Err(oauth_error(
            &issuer,
            step,
            match named {
                Some(named) => format!(
                    "the authorization server's metadata names issuer {named:?}, expected \
                     {issuer:?} (the issuer the protected resource names); refusing its endpoints"
                ),
                None => format!(
                    "the authorization server's metadata has no issuer, expected {issuer:?}; \
                     refusing its endpoints"
                ),
            },
        ));
    }
    discovery_from_metadata(&meta, issuer, resource, scope)
}

/// Whether the resource identifier `resource` (from protected resource metadata) covers the
/// server at `server`: the same origin, and a path that is the server's or one of its parents
/// (a server's metadata at the origin names the origin).
fn covers(resource: &str, server: &reqwest::Url) -> bool {
    let Ok(resource) = reqwest::Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server.origin() || resource.fragment().is_some() {
        return false;
    }
    let parent = resource.path().trim_end_matches('/');
    let path = server.path().trim_end_matches('/');
    path == parent || path.starts_with(&format!("{parent}/"))
}

/// MCP 2025-03-26 discovery, for a server that answers 401 but publishes no protected
/// resource metadata: the authorization server is the MCP server's origin, described by its
/// RFC 8414 metadata or, without any, by the default endpoints `/authorize`, `/token` and
/// `/register`.
async fn discover_at_origin(
    url: &reqwest::Url,
    resource_url: &str,
    scope: Option<String>,
    bound: Duration,
) -> Result<Discovery> {
    let origin = url.origin().ascii_serialization();
    let metadata = format!("{origin}/.well-known/oauth-authorization-server");
    tracing::debug!(%origin, "no protected resource metadata: MCP 2025-03-26 discovery");
    match fetch_json(&metadata, OAuthStep::Discovery, bound).await? {
        Some(meta) => discovery_from_metadata(&meta, origin, resource_url.to_owned(), scope),
        None => Ok(Discovery {
            resource: resource_url.to_owned(),
            authorization_endpoint: format!("{origin}/authorize"),
            token_endpoint: format!("{origin}/token"),
            registration_endpoint: Some(format!("{origin}/register")),
            auth_methods: None,
            iss_supported: false,
            cimd_supported: false,
            issuer: origin,
            scope,
        }),
    }
}

/// The endpoints of an authorization server from its metadata (RFC 8414 or OIDC), refusing
/// one that does not support PKCE with S256.
fn discovery_from_metadata(
    meta: &Value,
    issuer: String,
    resource: String,
    scope: Option<String>,
) -> Result<Discovery> {
    let step = OAuthStep::Discovery;
    let field = |name: &str| meta.get(name).and_then(Value::as_str).map(str::to_owned);
    let s256 = meta
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("S256")));
    if !s256 {
        return Err(oauth_error(
            &issuer,
            step,
            "the authorization server does not list S256 in code_challenge_methods_supported; MCP clients must refuse it (PKCE is required)",
        ));
    }
    Ok(Discovery {
        resource,
        authorization_endpoint: field("authorization_endpoint").ok_or_else(|| {
            oauth_error(&issuer, step, "the metadata has no authorization_endpoint")
        })?,
        token_endpoint: field("token_endpoint")
            .ok_or_else(|| oauth_error(&issuer, step, "the metadata has no token_endpoint"))?,
        registration_endpoint: field("registration_endpoint"),
        auth_methods: meta
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
        iss_supported: meta
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        cimd_supported: meta
            .get("client_id_metadata_document_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        issuer,
        scope,
    })
}
