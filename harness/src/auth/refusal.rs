//! Reading a refusal: `WWW-Authenticate` challenge parameters and the reason the server gave.

use serde_json::Value;

/// The reason of a refusal, from a `WWW-Authenticate` challenge and/or a JSON body, as
/// `<kind>: <what the server said>` where kind is `missing`, `unknown`, `malformed`,
/// `expired`, `insufficient_scope`, an RFC 6750 error code, or `refused`. Never carries a
/// token: only the server's words (challenge parameters, `reason`/`message` fields).
pub(crate) fn rejection_reason(
    status: Option<u16>,
    challenge: Option<&str>,
    body: Option<&Value>,
    sent_credentials: bool,
) -> String {
    let param = |name: &str| challenge.and_then(|c| challenge_param(c, name));
    if let Some(reason) = body.and_then(|b| b.get("reason")).and_then(Value::as_str) {
        let message = body
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        return format!("{reason}: {message}");
    }
    if let Some(d) = param("error_description") {
        // The bundled servers start the description with the kind.
        return match param("error") {
            Some(e) if !d.starts_with(|c: char| c.is_ascii_lowercase()) => format!("{e}: {d}"),
            _ => d,
        };
    }
    if let Some(e) = param("error") {
        return format!("{e}: the server refused the token");
    }
    if !sent_credentials {
        return "missing: no credentials were sent and the server requires them (set a bearer token or OAuth)".into();
    }
    match status {
        Some(s) => format!("refused: HTTP {s}"),
        None => "refused: the server refused the credentials".into(),
    }
}

/// Extracts the reason from an rmcp error chain that quotes a `WWW-Authenticate` header.
pub(crate) fn rejection_reason_from_chain(chain: &str, sent_credentials: bool) -> String {
    // The SSE transport's own refusal already carries the reason.
    if let Some(i) = chain.rfind("unauthorized: ") {
        return chain[i + "unauthorized: ".len()..].to_owned();
    }
    let challenge = chain.find("Bearer").map(|i| &chain[i..]);
    let lower = chain.to_ascii_lowercase();
    let status = if lower.contains("insufficient scope") || lower.contains("http 403") {
        Some(403)
    } else {
        Some(401)
    };
    rejection_reason(status, challenge, None, sent_credentials)
}

/// One parameter of a `WWW-Authenticate: Bearer k="v", ...` challenge.
pub(crate) fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c == ' ' || c == ',');
        let after = &rest[i + name.len()..];
        let after_trim = after.trim_start();
        if before_ok && let Some(value) = after_trim.strip_prefix('=') {
            let value = value.trim_start();
            if let Some(quoted) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => return Some(out),
                        c => out.push(c),
                    }
                }
                return Some(out);
            }
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        rest = &rest[i + name.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params_are_parsed() {
        let c = r#"Bearer error="invalid_token", error_description="expired: the \"JWT\" has expired", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", scope="a b""#;
        assert_eq!(
            challenge_param(c, "error").as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            challenge_param(c, "error_description").as_deref(),
            Some("expired: the \"JWT\" has expired")
        );
        assert_eq!(challenge_param(c, "scope").as_deref(), Some("a b"));
        assert_eq!(
            challenge_param(c, "resource_metadata").as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert!(rejection_reason(Some(401), Some(c), None, true).starts_with("expired:"));
        assert_eq!(
            rejection_reason_from_chain(
                "Transport [legacy-sse] error: unauthorized: expired: gone",
                true
            ),
            "expired: gone"
        );
        assert!(
            rejection_reason_from_chain(&format!("authorization required: {c}"), true)
                .starts_with("expired:")
        );
        assert!(
            rejection_reason(
                Some(401),
                Some("Bearer resource_metadata=\"x\""),
                None,
                false
            )
            .starts_with("missing:")
        );
    }
}
