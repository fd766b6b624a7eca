//! Client ID metadata documents (CIMD, MCP 2025-11-25): a client whose id is an `https` url
//! is described by the JSON document at that url. The server fetches it at `/authorize`,
//! checks it and keeps it as the client's registration. Loopback `http` documents are fetched
//! only behind [`OAuthServerConfig::allow_http_client_metadata`](super::OAuthServerConfig).

use std::{sync::OnceLock, time::Duration};

use serde_json::Value;

use super::{config::OAuthClient, provider::Provider};

/// Documents larger than this are refused (the CIMD draft suggests 5 KB).
const MAX_DOCUMENT_BYTES: usize = 5 * 1024;

/// How long fetching a document may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `client_id` is a url this server treats as a metadata document url.
pub(super) fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The url rules of a client ID metadata document url; the error says which one failed.
fn check_url(p: &Provider, raw: &str) -> Result<url::Url, String> {
    let path = raw
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("the client metadata document url has a . or .. path segment".into());
    }
    let url = url::Url::parse(raw)
        .map_err(|e| format!("the client metadata document url is not a url ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) && p.config.allow_http_client_metadata => {}
        "http" if is_loopback(&url) => {
            return Err(
                "the client metadata document url is http: only https documents are fetched \
                 (set allow_http_client_metadata to let tests serve one on a loopback port)"
                    .into(),
            );
        }
        _ => return Err("the client metadata document url must be https".into()),
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err("the client metadata document url has no path".into());
    }
    if url.fragment().is_some() {
        return Err("the client metadata document url has a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the client metadata document url carries credentials".into());
    }
    Ok(url)
}

fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use tokio_rustls::rustls;
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
                .with_no_client_auth();
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(FETCH_TIMEOUT)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Fetches and checks the document at `client_id`; the client it describes, or why not.
pub(super) async fn fetch_client(p: &Provider, client_id: &str) -> Result<OAuthClient, String> {
    let url = check_url(p, client_id)?;
    let response = http_client()?
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("fetching the client metadata document timed out after {FETCH_TIMEOUT:?}")
            } else {
                "the client metadata document could not be fetched (connection failed)".into()
            }
        })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "the client metadata document url answered HTTP {status}: documents are not \
             fetched through redirects"
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "the client metadata document url answered HTTP {status}"
        ));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES)
    {
        return Err(format!(
            "the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the client metadata document could not be read".to_owned())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
    }
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|_| "the client metadata document is not JSON".to_owned())?;
    client_from_document(client_id, &doc)
}

/// The client a fetched document describes, after the document rules.
fn client_from_document(client_id: &str, doc: &Value) -> Result<OAuthClient, String> {
    let Some(obj) = doc.as_object() else {
        return Err("the client metadata document is not a JSON object".into());
    };
    match obj.get("client_id").and_then(Value::as_str) {
        Some(id) if id == client_id => {}
        Some(id) => {
            return Err(format!(
                "the client metadata document names client_id {id:?}, not its own url"
            ));
        }
        None => return Err("the client metadata document has no client_id".into()),
    }
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return Err(
            "the client metadata document holds a client secret: a metadata document client has \
             none"
                .into(),
        );
    }
    let redirect_uris: Vec<String> = obj
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err("the client metadata document lists no redirect_uris".into());
    }
    let method = obj
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let jwks = match method {
        "none" => None,
        "private_key_jwt" => match obj.get("jwks") {
            Some(jwks) if jwks.get("keys").is_some_and(Value::is_array) => Some(jwks.clone()),
            _ => {
                return Err(
                    "the client metadata document uses private_key_jwt without an inline jwks \
                     (jwks_uri is not supported here)"
                        .into(),
                );
            }
        },
        other => {
            return Err(format!(
                "the client metadata document uses token_endpoint_auth_method {other:?}: a \
                 metadata document client has no shared secret (use none or private_key_jwt)"
            ));
        }
    };
    Ok(OAuthClient {
        client_id: client_id.to_owned(),
        client_secret: None,
        token_endpoint_auth_method: method.to_owned(),
        redirect_uris,
        jwks,
    })
}

#[cfg(test)]
mod tests {
    use super::client_from_document;
    use serde_json::json;

    const URL: &str = "https://ci.example.com/client.json";

    #[test]
    fn a_document_must_name_its_own_url_and_hold_no_secret() {
        let good = json!({"client_id": URL, "redirect_uris": ["http://127.0.0.1/callback"]});
        let client = client_from_document(URL, &good).unwrap();
        assert_eq!(client.token_endpoint_auth_method, "none");
        let cases = [
            (
                json!({"client_id": "https://other.example/c.json", "redirect_uris": ["x"]}),
                "not its own url",
            ),
            (json!({"redirect_uris": ["x"]}), "no client_id"),
            (json!({"client_id": URL}), "no redirect_uris"),
            (
                json!({"client_id": URL, "redirect_uris": ["x"], "client_secret": "s"}),
                "client secret",
            ),
            (
                json!({"client_id": URL, "redirect_uris": ["x"], "token_endpoint_auth_method": "client_secret_basic"}),
                "no shared secret",
            ),
            (
                json!({"client_id": URL, "redirect_uris": ["x"], "token_endpoint_auth_method": "private_key_jwt"}),
                "without an inline jwks",
            ),
            (json!([1, 2]), "not a JSON object"),
        ];
        for (doc, says) in cases {
            let err = client_from_document(URL, &doc).unwrap_err();
            assert!(err.contains(says), "{doc}: {err}");
        }
    }
}
