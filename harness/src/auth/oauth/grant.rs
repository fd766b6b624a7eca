//! The authorization code grant with PKCE S256, and token endpoint requests (exchange, refresh).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::callback::CallbackServer;
use super::discovery::Discovery;
use super::http::{OAUTH_HTTP, describe_oauth_error, json_body, oauth_error, send};
use super::registration::ClientCredentials;
use super::{OAuth, TokenEndpointAuth};
use crate::errors::{OAuthStep, Result};

/// POSTs a token request with the client's authentication; returns the JSON answer.
/// `issuer` is the audience of a client assertion.
pub(super) async fn token_request(
    endpoint: &str,
    issuer: &str,
    client: &ClientCredentials,
    form: &mut Vec<(&'static str, String)>,
    step: OAuthStep,
    bound: Duration,
) -> Result<Value> {
    let mut request = OAUTH_HTTP
        .get()
        .post(endpoint)
        .header(http::header::ACCEPT, "application/json");
    match client.method {
        TokenEndpointAuth::None => form.push(("client_id", client.id.clone())),
        TokenEndpointAuth::ClientSecretPost => {
            form.push(("client_id", client.id.clone()));
            form.push((
                "client_secret",
                client
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
            ));
        }
        TokenEndpointAuth::PrivateKeyJwt => {
            let key = client.key.as_ref().ok_or_else(|| {
                oauth_error(endpoint, step, "private_key_jwt without a private key")
            })?;
            let assertion = key.sign(&client.id, issuer).map_err(|why| {
                oauth_error(
                    endpoint,
                    step,
                    format!("cannot sign the client assertion: {why}"),
                )
            })?;
            form.push(("client_id", client.id.clone()));
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ));
            form.push(("client_assertion", assertion));
        }
        TokenEndpointAuth::ClientSecretBasic => {
            // Also in the body: RFC 6749 allows it, and some servers (the Python SDK's)
            // require it.
            form.push(("client_id", client.id.clone()));
            // RFC 6749 2.3.1: both parts form-urlencoded before Basic encoding.
            let id: String = url::form_urlencoded::byte_serialize(client.id.as_bytes()).collect();
            let secret: String = url::form_urlencoded::byte_serialize(
                client
                    .secret
                    .as_ref()
                    .map(|s| s.expose().as_bytes())
                    .unwrap_or_default(),
            )
            .collect();
            let mut value = http::HeaderValue::from_str(&format!(
                "Basic {}",
                STANDARD.encode(format!("{id}:{secret}"))
            ))
            .map_err(|_| oauth_error(endpoint, step, "the client credentials are not ASCII"))?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
    }
    let body = {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in form.iter() {
            body.append_pair(k, v);
        }
        body.finish()
    };
    let request = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    let response = send(request, endpoint, step, bound).await?;
    let status = response.status();
    let doc = json_body(response, endpoint, step, bound).await?;
    if !status.is_success() {
        let step = if doc.get("error").and_then(Value::as_str) == Some("invalid_scope") {
            OAuthStep::Scope
        } else {
            step
        };
        return Err(oauth_error(
            endpoint,
            step,
            describe_oauth_error(status, &doc),
        ));
    }
    Ok(doc)
}

/// The authorization code grant with PKCE: the authorization request fetched headless, the
/// code caught on `callback` (stopped before this returns), the token exchange. Returns the
/// token response.
pub(super) async fn authorization_code_grant(
    d: &Discovery,
    client: &ClientCredentials,
    callback: CallbackServer,
    scope: Option<&str>,
    oauth: &OAuth,
) -> Result<Value> {
    let redirect_uri = callback.redirect_uri();
    oauth.emit(OAuthStep::Authorization, Some(callback.addr));
    let verifier = random_url_safe(32);
    // Base64url without padding (RFC 7636 for PKCE).
    let challenge = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let state = random_url_safe(16);
    let mut url = reqwest::Url::parse(&d.authorization_endpoint).map_err(|e| {
        oauth_error(
            &d.issuer,
            OAuthStep::Authorization,
            format!("the authorization_endpoint is not a url: {e}"),
        )
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", &d.resource);
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
    }
    let code = callback.run(url, d, &state, oauth).await?;
    oauth.emit(OAuthStep::Token, None);
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.expose().to_owned()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("resource", d.resource.clone()),
    ];
    token_request(
        &d.token_endpoint,
        &d.issuer,
        client,
        &mut form,
        OAuthStep::Token,
        oauth.step_timeout,
    )
    .await
}

/// The client credentials grant (machine to machine): one token request, no browser.
/// Returns the token response.
pub(super) async fn client_credentials_grant(
    d: &Discovery,
    client: &ClientCredentials,
    scope: Option<&str>,
    oauth: &OAuth,
) -> Result<Value> {
    oauth.emit(OAuthStep::Token, None);
    let mut form = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("resource", d.resource.clone()),
    ];
    if let Some(s) = scope {
        form.push(("scope", s.to_owned()));
    }
    token_request(
        &d.token_endpoint,
        &d.issuer,
        client,
        &mut form,
        OAuthStep::Token,
        oauth.step_timeout,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Small encoders

fn random_url_safe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(STANDARD.encode(input.as_bytes()), expected);
        }
        // The last two letters of each alphabet, and padding only where the Basic header
        // wants it: what the hand-written encoder produced before the base64 crate did.
        assert_eq!(STANDARD.encode([0xfb, 0xff]), "+/8=");
        assert_eq!(URL_SAFE_NO_PAD.encode([0xfb, 0xff]), "-_8");
        assert_eq!(URL_SAFE_NO_PAD.encode(b"f"), "Zg");
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
