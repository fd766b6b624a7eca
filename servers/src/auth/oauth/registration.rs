//! `/register`: dynamic client registration (RFC 7591).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    config::OAuthClient,
    provider::{Provider, oauth_error},
};

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    application_type: Option<String>,
}

pub(super) async fn register(State(p): State<Arc<Provider>>, body: axum::body::Bytes) -> Response {
    if !p.config.allow_registration {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "dynamic client registration is disabled on this server",
        );
    }
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                format!("the registration request is not valid JSON client metadata: {e}"),
            );
        }
    };
    if reg.redirect_uris.is_empty()
        || reg
            .redirect_uris
            .iter()
            .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris must list at least one http(s) URI",
        );
    }
    let application_type = match reg.application_type.as_deref() {
        Some(t @ ("native" | "web")) => t.to_owned(),
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                format!("application_type {other:?} is not one of \"native\" or \"web\""),
            );
        }
        None if p.config.require_application_type => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "application_type is missing: MCP 2026-07-28 clients send \"native\" or \"web\" \
                 (SEP-837); a server for earlier clients sets require_application_type to false",
            );
        }
        None => "web".to_owned(),
    };
    let method = reg
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            format!("token_endpoint_auth_method {method:?} is not supported"),
        );
    }
    let client_id = p.random_token("client_");
    let client_secret = (method != "none").then(|| p.random_token("secret_"));
    let client = OAuthClient {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        token_endpoint_auth_method: method.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        jwks: None,
    };
    p.store().clients.insert(client_id.clone(), client);
    crate::events::record("oauth_registration", |o| {
        o.insert("client_id".to_owned(), client_id.clone().into());
        o.insert(
            "application_type".to_owned(),
            application_type.clone().into(),
        );
    });
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doc = json!({
        "client_id": client_id,
        "client_id_issued_at": issued_at,
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": reg.grant_types.unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]),
        "response_types": ["code"],
        "application_type": application_type,
    });
    if let Some(secret) = client_secret {
        doc["client_secret"] = json!(secret);
        doc["client_secret_expires_at"] = json!(0);
    }
    if let Some(name) = reg.client_name {
        doc["client_name"] = json!(name);
    }
    if let Some(scope) = reg.scope {
        doc["scope"] = json!(scope);
    }
    (StatusCode::CREATED, Json(doc)).into_response()
}
