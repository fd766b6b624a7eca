//! The flow's HTTP client (never follows redirects): bounded sends, JSON bodies, OAuth errors.

use std::time::Duration;

use serde_json::Value;

use crate::errors::{Error, OAuthStep, Result};
use crate::runtime;
use crate::tls::SharedClient;

/// A client that never follows redirects: the authorization response is read, not followed.
pub(super) static OAUTH_HTTP: SharedClient = SharedClient::new(|b| {
    b.redirect(reqwest::redirect::Policy::none())
        // No idle connections (and their driver tasks) outlive a flow.
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
});

pub(super) fn oauth_error(target: &str, step: OAuthStep, reason: impl Into<String>) -> Error {
    Error::OAuth {
        target: target.to_owned(),
        step,
        reason: reason.into(),
    }
}

/// Sends one request of the flow within `bound`; network failures become `step` errors.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    target: &str,
    step: OAuthStep,
    bound: Duration,
) -> Result<reqwest::Response> {
    match runtime::timeout(bound, request.send()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(oauth_error(
            target,
            step,
            format!("request failed: {}", without_url_query(&e)),
        )),
        Err(_) => Err(oauth_error(
            target,
            step,
            format!("no answer within {bound:?}"),
        )),
    }
}

/// A reqwest error's message without the url's query string (which may hold a code).
fn without_url_query(e: &reqwest::Error) -> String {
    let mut e2 = e.to_string();
    if let Some(url) = e.url()
        && let Some(q) = url.query()
    {
        e2 = e2.replace(q, "<query>");
    }
    e2
}

pub(super) async fn json_body(
    response: reqwest::Response,
    target: &str,
    step: OAuthStep,
    bound: Duration,
) -> Result<Value> {
    let bytes = match runtime::timeout(bound, response.bytes()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(oauth_error(
                target,
                step,
                format!("cannot read the body: {}", without_url_query(&e)),
            ));
        }
        Err(_) => return Err(oauth_error(target, step, "the body did not arrive in time")),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| oauth_error(target, step, format!("the answer is not JSON: {e}")))
}

/// The `error` and `error_description` of an OAuth error body, for messages.
pub(super) fn describe_oauth_error(status: reqwest::StatusCode, body: &Value) -> String {
    let error = body.get("error").and_then(Value::as_str).unwrap_or("error");
    match body.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("HTTP {status} {error}: {d}"),
        None => format!("HTTP {status} {error}"),
    }
}
