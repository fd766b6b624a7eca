//! The client's credentials: pre-registered, or registered dynamically (RFC 7591).

use serde_json::Value;

use super::assertion::AssertionKey;
use super::discovery::Discovery;
use super::http::{OAUTH_HTTP, describe_oauth_error, json_body, oauth_error, send};
use super::{OAuth, TokenEndpointAuth};
use crate::errors::{OAuthStep, Result};
use crate::secret::Secret;

pub(super) struct ClientCredentials {
    pub(super) id: String,
    pub(super) secret: Option<Secret>,
    pub(super) method: TokenEndpointAuth,
    /// The signing key of `private_key_jwt`.
    pub(super) key: Option<AssertionKey>,
}

pub(super) async fn register(
    d: &Discovery,
    redirect_uri: &str,
    scope: Option<&str>,
    oauth: &OAuth,
) -> Result<ClientCredentials> {
    let step = OAuthStep::Registration;
    if let Some(id) = &oauth.client_id {
        if oauth.auth_method == TokenEndpointAuth::PrivateKeyJwt {
            let Some((pem, alg)) = &oauth.private_key else {
                return Err(oauth_error(
                    &d.issuer,
                    step,
                    format!("client `{id}` uses private_key_jwt but no private key was given"),
                ));
            };
            let key = AssertionKey::from_pem(pem, *alg).map_err(|why| {
                oauth_error(
                    &d.issuer,
                    step,
                    format!("the private key of client `{id}` cannot sign: {why}"),
                )
            })?;
            return Ok(ClientCredentials {
                id: id.clone(),
                secret: None,
                method: TokenEndpointAuth::PrivateKeyJwt,
                key: Some(key),
            });
        }
        if oauth.auth_method != TokenEndpointAuth::None && oauth.client_secret.is_none() {
            return Err(oauth_error(
                &d.issuer,
                step,
                format!(
                    "pre-registered client `{id}` uses {} but no client secret was given",
                    oauth.auth_method.as_str()
                ),
            ));
        }
        return Ok(ClientCredentials {
            id: id.clone(),
            secret: oauth.client_secret.clone(),
            method: oauth.auth_method,
            key: None,
        });
    }
    if let (Some(url), true) = (&oauth.client_metadata_url, d.cimd_supported) {
        check_metadata_url(url).map_err(|why| {
            oauth_error(
                &d.issuer,
                step,
                format!("the client metadata document url {url:?} {why}"),
            )
        })?;
        tracing::debug!(client_id = %url, "using the client ID metadata document url as client id");
        return Ok(ClientCredentials {
            id: url.clone(),
            secret: None,
            method: TokenEndpointAuth::None,
            key: None,
        });
    }
    let Some(endpoint) = &d.registration_endpoint else {
        return Err(oauth_error(
            &d.issuer,
            step,
            "the authorization server offers no dynamic client registration; use OAuth::pre_registered",
        ));
    };
    let wanted = match (&d.auth_methods, oauth.auth_method_chosen) {
        (Some(supported), false) => [
            TokenEndpointAuth::None,
            TokenEndpointAuth::ClientSecretBasic,
            TokenEndpointAuth::ClientSecretPost,
        ]
        .into_iter()
        .find(|m| supported.iter().any(|s| s == m.as_str()))
        .unwrap_or(oauth.auth_method),
        _ => oauth.auth_method,
    };
    let mut body = serde_json::json!({
        "client_name": oauth.client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": wanted.as_str(),
        // SEP-837 (MCP 2026-07-28): a client on a loopback redirect is a native application.
        "application_type": "native",
    });
    if let Some(s) = scope {
        body["scope"] = Value::from(s);
    }
    let response = send(
        OAUTH_HTTP.get().post(endpoint).json(&body),
        endpoint,
        step,
        oauth.step_timeout,
    )
    .await?;
    let status = response.status();
    let doc = json_body(response, endpoint, step, oauth.step_timeout).await?;
    if !status.is_success() {
        return Err(oauth_error(
            endpoint,
            step,
            describe_oauth_error(status, &doc),
        ));
    }
    let id = doc
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or_else(|| oauth_error(endpoint, step, "the registration response has no client_id"))?;
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .map(|m| {
            TokenEndpointAuth::parse(m).ok_or_else(|| {
                oauth_error(
                    endpoint,
                    step,
                    format!("the server registered the client with unsupported token_endpoint_auth_method {m:?}"),
                )
            })
        })
        .transpose()?
        .unwrap_or(wanted);
    let secret = doc
        .get("client_secret")
        .and_then(Value::as_str)
        .map(Secret::new);
    if method != TokenEndpointAuth::None && secret.is_none() {
        return Err(oauth_error(
            endpoint,
            step,
            "the registration response has no client_secret for a confidential client",
        ));
    }
    if method == TokenEndpointAuth::PrivateKeyJwt {
        return Err(oauth_error(
            endpoint,
            step,
            "the server registered the client for private_key_jwt, which needs a key it was never given",
        ));
    }
    Ok(ClientCredentials {
        id: id.to_owned(),
        secret,
        method,
        key: None,
    })
}

/// A client ID metadata document url is `https` (or `http` on a loopback address, for tests)
/// with a path, and without a fragment, credentials or dot segments.
fn check_metadata_url(url: &str) -> std::result::Result<(), String> {
    let raw_path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or("");
    if raw_path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split('/')
        .any(|s| s == "." || s == "..")
    {
        return Err("has a . or .. path segment".into());
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("is not a url ({e})"))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err("must be https (http only on a loopback address, for tests)".into());
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err("has no path (the document must live at a path)".into());
    }
    if u.fragment().is_some() {
        return Err("has a fragment".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("carries credentials".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_metadata_url;

    #[test]
    fn metadata_urls_are_https_with_a_path() {
        assert!(check_metadata_url("https://ci.example.com/client.json").is_ok());
        assert!(check_metadata_url("http://127.0.0.1:8080/client.json").is_ok());
        for bad in [
            "http://ci.example.com/client.json",
            "https://ci.example.com/",
            "https://ci.example.com",
            "https://ci.example.com/client.json#frag",
            "https://user:pw@ci.example.com/client.json",
            "https://ci.example.com/a/../client.json",
            "not a url",
        ] {
            assert!(check_metadata_url(bad).is_err(), "{bad}");
        }
    }
}
