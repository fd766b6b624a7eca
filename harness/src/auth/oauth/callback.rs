//! The loopback callback server that catches the code, and the headless walk of redirects to it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use super::OAuth;
use super::discovery::Discovery;
use super::http::{OAUTH_HTTP, describe_oauth_error, json_body, oauth_error, send};
use crate::errors::{OAuthStep, Result};
use crate::runtime;
use crate::secret::Secret;

static LIVE_CALLBACKS: LazyLock<Mutex<HashSet<SocketAddr>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// The addresses of the OAuth callback servers alive in this process right now (their
/// listener open or their task not finished). Empty when no flow is running.
pub fn live_callback_servers() -> Vec<SocketAddr> {
    LIVE_CALLBACKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

/// Held inside the callback task: the address is listed while the task's future exists.
struct Registered(SocketAddr);

impl Drop for Registered {
    fn drop(&mut self) {
        LIVE_CALLBACKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

type CallbackQuery = Vec<(String, String)>;

/// A loopback HTTP listener that takes one authorization response. Dropping it aborts its
/// task (which owns the listener), so it is stopped on every path out of the flow.
pub(super) struct CallbackServer {
    pub(super) addr: SocketAddr,
    received: Option<oneshot::Receiver<CallbackQuery>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl CallbackServer {
    pub(super) async fn start(port: u16) -> std::io::Result<CallbackServer> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        // Listed before the task starts, delisted when its future is dropped.
        LIVE_CALLBACKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr);
        let registered = Registered(addr);
        let task = runtime::spawn(async move {
            let _registered = registered;
            serve_callback(listener, tx).await;
        });
        Ok(CallbackServer {
            addr,
            received: Some(rx),
            task: Some(task),
        })
    }

    pub(super) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.addr.port())
    }

    /// Plays the browser: fetches the authorization url without following redirects, walks
    /// redirects up to the callback, and returns the code the callback server received.
    /// The callback server is stopped (and awaited) before this returns.
    pub(super) async fn run(
        mut self,
        authorize_url: reqwest::Url,
        d: &Discovery,
        state: &str,
        oauth: &OAuth,
    ) -> Result<Secret> {
        let result = self.walk(authorize_url, d, state, oauth).await;
        // Stopped and awaited on every path, an authorization server's refusal included: when
        // this returns, the listener is gone.
        self.stop().await;
        result
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn walk(
        &mut self,
        authorize_url: reqwest::Url,
        d: &Discovery,
        state: &str,
        oauth: &OAuth,
    ) -> Result<Secret> {
        let step = OAuthStep::Authorization;
        let target = d.authorization_endpoint.as_str();
        let mut next = authorize_url;
        let mut delivered = false;
        for _hop in 0..10 {
            let is_callback = matches!(next.host_str(), Some("127.0.0.1" | "localhost"))
                && next.port() == Some(self.addr.port())
                && next.path() == "/callback";
            if is_callback {
                // The listener is on 127.0.0.1; `localhost` might resolve to ::1 first.
                let _ = next.set_host(Some("127.0.0.1"));
            }
            let response = send(
                OAUTH_HTTP.get().get(next.clone()),
                target,
                step,
                oauth.step_timeout,
            )
            .await?;
            if is_callback {
                delivered = true;
                break;
            }
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        oauth_error(target, step, format!("HTTP {status} without a Location"))
                    })?;
                next = next.join(location).map_err(|e| {
                    oauth_error(
                        target,
                        step,
                        format!("the redirect Location is not a url: {e}"),
                    )
                })?;
                continue;
            }
            let body = json_body(response, target, step, oauth.step_timeout)
                .await
                .unwrap_or(Value::Null);
            let error = if body.is_null() {
                format!(
                    "HTTP {status}: the authorization server answered with a page instead of redirecting to the callback (it wants a browser or user interaction)"
                )
            } else {
                describe_oauth_error(status, &body)
            };
            return Err(oauth_error(target, step, error));
        }
        if !delivered {
            return Err(oauth_error(
                target,
                step,
                "more than 10 redirects before the callback",
            ));
        }
        let received = self.received.take().expect("taken once");
        let query = match runtime::timeout(oauth.callback_timeout, received).await {
            Ok(Ok(q)) => q,
            Ok(Err(_)) => {
                return Err(oauth_error(
                    target,
                    step,
                    "the callback server stopped before receiving the code",
                ));
            }
            Err(_) => {
                return Err(oauth_error(
                    target,
                    step,
                    format!(
                        "no authorization response on the callback within {:?}",
                        oauth.callback_timeout
                    ),
                ));
            }
        };
        // The code is in hand: stop the listener and wait for its task to end.
        self.stop().await;
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            let step = if error == "invalid_scope" {
                OAuthStep::Scope
            } else {
                step
            };
            return Err(oauth_error(target, step, format!("{error}: {description}")));
        }
        if get("state") != Some(state) {
            return Err(oauth_error(
                target,
                step,
                "the callback's state does not match the request (possible CSRF); refusing the code",
            ));
        }
        // RFC 9207: `iss` is compared exactly (no normalization), and it must be there when
        // the authorization server says it sends it (a mix-up attack strips it).
        match get("iss") {
            Some(iss) if iss != d.issuer => {
                return Err(oauth_error(
                    target,
                    step,
                    format!(
                        "the authorization response names issuer {iss:?}, expected {:?} (RFC \
                         9207); refusing the code",
                        d.issuer
                    ),
                ));
            }
            None if d.iss_supported => {
                return Err(oauth_error(
                    target,
                    step,
                    format!(
                        "the authorization response has no iss although {:?} advertises \
                         authorization_response_iss_parameter_supported (RFC 9207); refusing \
                         the code",
                        d.issuer
                    ),
                ));
            }
            _ => {}
        }
        get("code")
            .filter(|c| !c.is_empty())
            .map(Secret::new)
            .ok_or_else(|| oauth_error(target, step, "the callback carried no code"))
    }
}

/// Answers requests on the callback listener until one carries an authorization response.
async fn serve_callback(listener: tokio::net::TcpListener, tx: oneshot::Sender<CallbackQuery>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::with_capacity(2048);
        let read = runtime::timeout(Duration::from_secs(5), async {
            let mut chunk = [0u8; 2048];
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
            continue;
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let pairs: CallbackQuery = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let is_response =
            path == "/callback" && pairs.iter().any(|(k, _)| k == "code" || k == "error");
        let body: &[u8] = if is_response {
            b"Authorization complete. You can close this window.\n"
        } else {
            b"Waiting for the authorization response.\n"
        };
        let status = if is_response {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
        if is_response {
            let _ = tx.send(pairs);
            return;
        }
    }
}
