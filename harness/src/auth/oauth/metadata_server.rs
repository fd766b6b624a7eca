//! [`ClientMetadataServer`]: a client ID metadata document served from the test itself, on a
//! loopback port, for authorization servers that accept loopback `http` documents (the bundled
//! one does when told to).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::errors::{Error, Result};
use crate::runtime;

/// The path the document is served at.
const PATH: &str = "/client-metadata.json";

/// A client ID metadata document served over `http` on a loopback port until dropped. Its
/// `client_id` is set to its own url ([`url`](Self::url)), which is the client id to give
/// [`OAuth::client_metadata_url`](crate::OAuth::client_metadata_url).
///
/// Only an authorization server that accepts loopback `http` documents can fetch it (the
/// bundled one with `allow_http_client_metadata`); real ones want `https`.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{ClientMetadataServer, OAuth};
/// let doc = ClientMetadataServer::start(ClientMetadataServer::document_for("my tests")).await?;
/// let oauth = OAuth::new().client_metadata_url(doc.url());
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
pub struct ClientMetadataServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ClientMetadataServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadataServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for ClientMetadataServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ClientMetadataServer {
    /// The document the harness's OAuth client needs (without `client_id`, which
    /// [`start`](Self::start) sets): a public native client (`token_endpoint_auth_method`
    /// `none`, `application_type` `native`) whose redirect URI is the loopback callback
    /// `http://127.0.0.1/callback` (any port), for the authorization code grant with refresh.
    ///
    /// ```
    /// let doc = mcp_harness::ClientMetadataServer::document_for("nightly checks");
    /// assert_eq!(doc["client_name"], "nightly checks");
    /// assert_eq!(doc["redirect_uris"][0], "http://127.0.0.1/callback");
    /// ```
    pub fn document_for(client_name: &str) -> Value {
        json!({
            "client_name": client_name,
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
        })
    }

    /// Serves `document` (a JSON object; its `client_id` becomes the url, unless it names one
    /// already, which lets a test serve a wrong one on purpose) at
    /// `http://127.0.0.1:<port>/client-metadata.json`.
    pub async fn start(document: Value) -> Result<ClientMetadataServer> {
        let Value::Object(mut doc) = document else {
            return Err(Error::Invalid {
                what: "client metadata document".into(),
                reason: "it must be a JSON object".into(),
            });
        };
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Invalid {
                what: "client metadata document".into(),
                reason: format!("cannot listen on a loopback port: {e}"),
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let url = format!("http://127.0.0.1:{port}{PATH}");
        doc.entry("client_id").or_insert_with(|| json!(url));
        let body = Value::Object(doc).to_string();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let task = runtime::spawn(async move { serve(listener, body, counted).await });
        Ok(ClientMetadataServer { url, fetches, task })
    }

    /// The document's url: the client id.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many times the document was fetched so far.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve(listener: tokio::net::TcpListener, body: String, fetches: Arc<AtomicUsize>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let body = body.clone();
        let fetches = fetches.clone();
        runtime::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = runtime::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                loop {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 16 * 1024 {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let head = String::from_utf8_lossy(&buf);
            let mut first = head.lines().next().unwrap_or("").split_whitespace();
            let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            let found = method == "GET" && target == PATH;
            if found {
                fetches.fetch_add(1, Ordering::SeqCst);
            }
            let (status, body) = if found {
                ("200 OK", body)
            } else {
                ("404 Not Found", String::from("{\"error\":\"not_found\"}"))
            };
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            let _ = stream.shutdown().await;
        });
    }
}
