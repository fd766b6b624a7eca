//! The pool's pure logic, without processes: identity hashing, key rendering, the circuit
//! breaker's state machine.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::breaker::{Breakers, Permit};
use super::identity::{
    ANONYMOUS, IdentityExtractor, IdentityRules, PoolKey, safe_url, sha256_hex, user_hash,
};
use crate::errors::Error;
use crate::transport::Transport;

/// The rules of a pool built with the defaults.
fn rules() -> IdentityRules {
    super::config::PoolConfig::default().rules
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn sha256_hex_matches_a_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_identity_ignores_header_order_and_name_case_but_not_values() {
    let r = rules();
    let a = r.identity_hash(&headers(&[
        ("authorization", "Bearer t1"),
        ("x-tenant-id", "acme"),
    ]));
    let b = r.identity_hash(&headers(&[
        ("X-Tenant-ID", "acme"),
        ("Authorization", "Bearer t1"),
    ]));
    assert_eq!(a, b);
    assert!(!a.1, "not anonymous");
    let c = r.identity_hash(&headers(&[
        ("authorization", "Bearer t2"),
        ("x-tenant-id", "acme"),
    ]));
    assert_ne!(a.0, c.0);
    let d = r.identity_hash(&headers(&[
        ("authorization", "bearer t1"),
        ("x-tenant-id", "acme"),
    ]));
    assert_ne!(a.0, d.0, "values are compared exactly");
}

#[test]
fn headers_outside_the_identity_set_leave_a_request_anonymous() {
    let r = rules();
    assert_eq!(
        r.identity_hash(&HeaderMap::new()),
        (ANONYMOUS.to_owned(), true)
    );
    assert_eq!(
        r.identity_hash(&headers(&[("accept", "application/json")])),
        (ANONYMOUS.to_owned(), true)
    );
}

#[test]
fn an_extractor_wins_over_headers_and_falls_back_when_it_cannot_tell() {
    struct Tenant;
    impl IdentityExtractor for Tenant {
        fn extract(
            &self,
            headers: &HeaderMap,
        ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
            match headers.get("x-user") {
                Some(v) => Ok(Some(v.to_str()?.to_owned())),
                None => Err("no user header".into()),
            }
        }
    }
    let r = IdentityRules {
        extractor: Some(Arc::new(Tenant)),
        ..rules()
    };
    let one = r.identity_hash(&headers(&[("x-user", "u1"), ("authorization", "Bearer a")]));
    let two = r.identity_hash(&headers(&[("x-user", "u1"), ("authorization", "Bearer b")]));
    assert_eq!(one, two, "the extractor decides");
    assert_eq!(one.0, sha256_hex(b"u1"));
    // The extractor fails: header hashing decides.
    let fallback = r.identity_hash(&headers(&[("authorization", "Bearer a")]));
    assert_eq!(
        fallback,
        rules().identity_hash(&headers(&[("authorization", "Bearer a")]))
    );
}

#[test]
fn with_affinity_the_downstream_session_id_is_the_identity() {
    let r = IdentityRules {
        affinity: true,
        ..rules()
    };
    let a = r.identity_hash(&headers(&[
        ("x-mcp-session-id", "s-1"),
        ("authorization", "Bearer a"),
    ]));
    let b = r.identity_hash(&headers(&[
        ("x-mcp-session-id", "s-1"),
        ("authorization", "Bearer b"),
    ]));
    assert_eq!(a, b);
    assert_eq!(a.0, sha256_hex(b"s-1"));
}

#[test]
fn users_hash_and_empty_users_are_anonymous() {
    assert_eq!(user_hash(None), ANONYMOUS);
    assert_eq!(user_hash(Some("")), ANONYMOUS);
    assert_eq!(user_hash(Some("alice")), sha256_hex(b"alice"));
}

#[test]
fn urls_lose_their_credentials_and_queries_before_they_are_shown() {
    assert_eq!(
        safe_url("http://u:pw@host:1/mcp?token=t#x"),
        "http://host:1/mcp"
    );
    assert_eq!(safe_url("https://host/mcp?api_key=k"), "https://host/mcp");
    assert_eq!(
        safe_url("http://host/path@not-userinfo"),
        "http://host/path@not-userinfo"
    );
    assert_eq!(safe_url("python3 server.py"), "python3 server.py");
}

#[test]
fn a_key_renders_short_hashes_and_a_safe_url() {
    let key = PoolKey {
        user_hash: sha256_hex(b"alice"),
        url: "http://u:secret@host:1/mcp?token=t".into(),
        identity_hash: ANONYMOUS.into(),
        transport: Transport::StreamableHttp,
        gateway_id: "gw".into(),
    };
    let shown = key.to_string();
    assert_eq!(
        shown,
        format!(
            "{}|http://host:1/mcp|anonymous|{}|gw",
            &sha256_hex(b"alice")[..12],
            Transport::StreamableHttp
        )
    );
    assert!(!shown.contains("secret") && !shown.contains("token"));
}

const URL: &str = "http://host/mcp";

#[test]
fn the_breaker_stays_closed_below_its_threshold() {
    let mut b = Breakers::default();
    assert_eq!(b.check(URL, true).unwrap(), Permit::Free);
    assert!(!b.failure(URL, 3, Duration::from_secs(60)));
    assert!(!b.failure(URL, 3, Duration::from_secs(60)));
    assert_eq!(b.check(URL, true).unwrap(), Permit::Free);
    // A success resets the count: two more failures do not trip it.
    b.success(URL);
    assert!(!b.failure(URL, 3, Duration::from_secs(60)));
    assert!(!b.failure(URL, 3, Duration::from_secs(60)));
    assert_eq!(b.snapshot()[URL].state, "closed");
}

#[test]
fn the_breaker_opens_at_its_threshold_and_refuses_until_the_reset() {
    let mut b = Breakers::default();
    assert!(!b.failure(URL, 2, Duration::from_secs(60)));
    assert!(
        b.failure(URL, 2, Duration::from_secs(60)),
        "the second failure trips it"
    );
    match b.check(URL, false) {
        Err(Error::CircuitOpen {
            state,
            failures,
            retry_in,
            ..
        }) => {
            assert_eq!(state, "open");
            assert_eq!(failures, 2);
            assert!(retry_in > Duration::from_secs(59));
        }
        other => panic!("{other:?}"),
    }
    let snap = &b.snapshot()[URL];
    assert_eq!((snap.state.as_str(), snap.failures), ("open", 2));
    assert!(snap.open_until.is_some());
}

#[test]
fn after_the_reset_one_trial_runs_at_a_time_and_reuse_is_free() {
    let mut b = Breakers::default();
    assert!(b.failure(URL, 1, Duration::ZERO));
    assert_eq!(b.check(URL, true).unwrap(), Permit::Trial);
    match b.check(URL, true) {
        Err(Error::CircuitOpen { state, .. }) => assert_eq!(state, "half-open"),
        other => panic!("a second trial: {other:?}"),
    }
    assert_eq!(
        b.check(URL, false).unwrap(),
        Permit::Free,
        "reusing an idle session needs no trial"
    );
    assert_eq!(b.snapshot()[URL].state, "half_open");
    // An abandoned trial lets the next one run.
    b.trial_abandoned(URL);
    assert_eq!(b.check(URL, true).unwrap(), Permit::Trial);
}

#[test]
fn a_trial_success_closes_and_a_trial_failure_reopens_at_once() {
    let mut b = Breakers::default();
    assert!(!b.failure(URL, 5, Duration::ZERO));
    for _ in 0..4 {
        b.failure(URL, 5, Duration::ZERO);
    }
    assert_eq!(b.check(URL, true).unwrap(), Permit::Trial);
    // In half-open, one failure is enough, whatever the threshold.
    assert!(b.failure(URL, 5, Duration::from_secs(60)));
    assert!(matches!(b.check(URL, true), Err(Error::CircuitOpen { .. })));

    let mut b = Breakers::default();
    assert!(b.failure(URL, 1, Duration::ZERO));
    assert_eq!(b.check(URL, true).unwrap(), Permit::Trial);
    b.success(URL);
    assert_eq!(b.check(URL, true).unwrap(), Permit::Free);
    let snap = &b.snapshot()[URL];
    assert_eq!((snap.state.as_str(), snap.failures), ("closed", 0));
}

#[test]
fn breakers_are_per_url() {
    let mut b = Breakers::default();
    assert!(b.failure(URL, 1, Duration::from_secs(60)));
    assert!(b.check(URL, true).is_err());
    assert_eq!(b.check("http://other/mcp", true).unwrap(), Permit::Free);
}
