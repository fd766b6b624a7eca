//! How a transport's error reads: the cause chain in one line, and refusals told apart.

/// An error and its sources in one line, each cause once.
pub(in crate::session) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// Whether an error chain is a refusal of the credentials. Matches rmcp's and reqwest's
/// wording, never a bare `401`/`403`: those digits also occur in ports and urls
/// (`127.0.0.1:40123`), which used to turn a dead server into a refusal.
pub(super) fn is_auth_failure(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    c.contains("auth required")
        || c.contains("authorization required")
        || c.contains("insufficient scope")
        || c.contains("http 401")
        || c.contains("http 403")
        || c.contains("unauthorized")
        || c.contains("forbidden")
}

#[cfg(test)]
mod tests {
    use super::is_auth_failure;

    #[test]
    fn refusals_are_told_apart_from_ports_that_contain_401() {
        for refusal in [
            "Transport error: authorization required: Bearer resource_metadata=\"x\"",
            "Auth required",
            "insufficient scope: Bearer error=\"insufficient_scope\"",
            "HTTP status client error (401 Unauthorized) for url (http://h/mcp)",
            "HTTP 403",
            "legacy-sse: unauthorized: expired: the JWT has expired",
        ] {
            assert!(is_auth_failure(refusal), "{refusal}");
        }
        for other in [
            "error sending request for url (http://127.0.0.1:40123/mcp): connection refused",
            "error sending request for url (http://127.0.0.1:34031/mcp)",
            "the transport closed (http://127.0.0.1:14030/sse)",
        ] {
            assert!(!is_auth_failure(other), "{other}");
        }
    }
}
