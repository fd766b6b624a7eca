//! list_changed notifications from real upstream sessions become debounced refreshes per
//! gateway (`harness/docs/pool.md`, "Notifications"), in both protocol eras: the handshake era's
//! GET stream per session, the stateless era's `subscriptions/listen` stream per pooled entry.

use std::sync::Arc;
use std::time::Duration;

use mcp_harness::pool::{AcquireRequest, Catalog, PoolBuilder, RefreshCallback, RefreshFlags};
use mcp_harness::{Bundled, Era, Server, ServerSpec, SessionPool, Transport};
use rstest::rstest;
use serde_json::json;
use tokio::sync::Notify;

use crate::support::eventually;

async fn server() -> Server {
    Server::start(ServerSpec::bundled(
        Bundled::FastTest,
        Transport::StreamableHttp,
    ))
    .await
    .unwrap()
}

/// A pool whose upstreams speak `era`.
fn pool_in(era: Era) -> PoolBuilder {
    SessionPool::builder().protocol(crate::support::pin(era))
}

fn all() -> RefreshFlags {
    RefreshFlags {
        tools: true,
        resources: true,
        prompts: true,
    }
}

/// Waits until no refresh is pending or running for the pool and returns the metrics.
async fn settled(pool: &SessionPool, triggered: u64) -> mcp_harness::pool::NotificationMetrics {
    eventually(
        "the refreshes to settle",
        Duration::from_secs(10),
        || async {
            let m = pool.metrics().notifications;
            (m.refreshes_triggered >= triggered && m.pending_refreshes == 0).then_some(m)
        },
    )
    .await
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn one_tools_list_changed_gives_exactly_one_refresh_of_everything(#[case] era: Era) {
    let server = server().await;
    let catalog = Catalog::default();
    let pool = pool_in(era)
        .debounce(Duration::from_millis(50))
        .catalog(&catalog)
        .build();
    let req = AcquireRequest::http(server.url()).gateway("gw-tools");
    pool.call_tool(req, "notify", json!({"kind": "tools"}))
        .await
        .unwrap();
    let m = settled(&pool, 1).await;
    assert_eq!(
        (
            m.notifications_received,
            m.refreshes_triggered,
            m.refreshes_failed
        ),
        (1, 1, 0)
    );
    let gw = eventually("the catalog", Duration::from_secs(5), || async {
        catalog.gateway("gw-tools")
    })
    .await;
    assert_eq!(gw.refreshes, [all()]);
    assert!(gw.tools.contains(&"echo".to_owned()));
    assert_eq!(gw.resources, ["fast-test://readme"]);
    assert_eq!(gw.prompts, ["greeting"]);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn a_burst_inside_the_window_gives_one_refresh_with_merged_flags(#[case] era: Era) {
    let server = server().await;
    let catalog = Catalog::default();
    // A window wide enough that the 20 calls land in it even on a loaded machine.
    let pool = pool_in(era)
        .debounce(Duration::from_secs(3))
        .catalog(&catalog)
        .build();
    let req = AcquireRequest::http(server.url()).gateway("gw-burst");
    let session = pool.acquire(req).await.unwrap();
    // 19 resources and one prompts notification, sent at once: the refresh re-lists all three.
    let burst = (0..20).map(|i| {
        let kind = if i == 7 { "prompts" } else { "resources" };
        session.call_tool("notify", json!({"kind": kind}))
    });
    for r in futures::future::join_all(burst).await {
        r.unwrap();
    }
    let m = settled(&pool, 1).await;
    assert_eq!(m.notifications_received, 20);
    assert_eq!(m.refreshes_triggered, 1, "{m:?}");
    assert_eq!(m.notifications_debounced, 19);
    let gw = eventually("the catalog", Duration::from_secs(5), || async {
        catalog.gateway("gw-burst")
    })
    .await;
    assert_eq!(gw.refreshes, [all()]);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn resources_and_prompts_variants_refresh_the_right_parts(#[case] era: Era) {
    // A server per gateway: a stateless server announces a change to every listener of its
    // process (see the test after this one), which would merge the two gateways' flags.
    let (server, other) = (server().await, server().await);
    let catalog = Catalog::default();
    let pool = pool_in(era)
        .debounce(Duration::from_millis(30))
        .catalog(&catalog)
        .build();
    let resources = AcquireRequest::http(server.url()).gateway("gw-r");
    let prompts = AcquireRequest::http(other.url()).gateway("gw-p");
    pool.call_tool(resources, "notify", json!({"kind": "resources"}))
        .await
        .unwrap();
    pool.call_tool(prompts, "notify", json!({"kind": "prompts"}))
        .await
        .unwrap();
    settled(&pool, 2).await;
    // The refresh counts when it starts; the catalog fills when it ends.
    let (r, p) = eventually("both catalogs", Duration::from_secs(5), || async {
        catalog.gateway("gw-r").zip(catalog.gateway("gw-p"))
    })
    .await;
    assert_eq!(
        r.refreshes,
        [RefreshFlags {
            tools: true,
            resources: true,
            prompts: false
        }]
    );
    assert_eq!(
        p.refreshes,
        [RefreshFlags {
            tools: true,
            resources: false,
            prompts: true
        }]
    );
    assert!(r.prompts.is_empty() && !r.resources.is_empty());
    assert!(p.resources.is_empty() && !p.prompts.is_empty());
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn a_change_reaches_the_gateways_of_its_own_session_or_of_every_listener(#[case] era: Era) {
    let server = server().await;
    let catalog = Catalog::default();
    let pool = pool_in(era)
        .debounce(Duration::from_millis(30))
        .catalog(&catalog)
        .build();
    let mine = AcquireRequest::http(server.url()).gateway("gw-mine");
    let other = AcquireRequest::http(server.url()).gateway("gw-other");
    // Both gateways have a live upstream entry on the same server process.
    let (a, b) = (
        pool.acquire(mine).await.unwrap(),
        pool.acquire(other).await.unwrap(),
    );
    a.call_tool("notify", json!({"kind": "prompts"}))
        .await
        .unwrap();
    let mine = eventually("gw-mine's refresh", Duration::from_secs(5), || async {
        catalog.gateway("gw-mine")
    })
    .await;
    assert!(mine.refreshes[0].prompts);
    if era == Era::Handshake {
        // The notification travels on the session that caused it: the other gateway's
        // session hears nothing. A later change on b proves b's stream works.
        b.call_tool("notify", json!({"kind": "resources"}))
            .await
            .unwrap();
        let other = eventually("gw-other's refresh", Duration::from_secs(5), || async {
            catalog.gateway("gw-other")
        })
        .await;
        assert_eq!(other.refreshes.len(), 1);
        assert!(other.refreshes[0].resources && !other.refreshes[0].prompts);
    } else {
        // No protocol session: the server announces the change on every listen stream of
        // its process, so the other gateway refreshes too.
        let other = eventually("gw-other's refresh", Duration::from_secs(5), || async {
            catalog.gateway("gw-other")
        })
        .await;
        assert_eq!(other.refreshes.len(), 1);
        assert!(other.refreshes[0].prompts && !other.refreshes[0].resources);
    }
    let m = settled(&pool, 2).await;
    assert_eq!(m.notifications_received, 2);
    drop((a, b));
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_during_a_running_refresh_schedules_one_trailing_refresh(#[case] era: Era) {
    let server = server().await;
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let callback: RefreshCallback = {
        let (started, release, runs) = (started.clone(), release.clone(), runs.clone());
        Arc::new(move |req| {
            let (started, release, runs) = (started.clone(), release.clone(), runs.clone());
            Box::pin(async move {
                let first = {
                    let mut r = runs.lock().unwrap();
                    r.push(req.flags);
                    r.len() == 1
                };
                if first {
                    started.notify_one();
                    release.notified().await;
                }
                Ok(())
            })
        })
    };
    let pool = pool_in(era)
        .debounce(Duration::from_millis(20))
        .on_refresh(callback)
        .build();
    let session = pool
        .acquire(AcquireRequest::http(server.url()).gateway("gw-t"))
        .await
        .unwrap();
    session
        .call_tool("notify", json!({"kind": "resources"}))
        .await
        .unwrap();
    started.notified().await;
    // While the first refresh runs: three more changes make one trailing refresh.
    for kind in ["prompts", "prompts", "resources"] {
        session
            .call_tool("notify", json!({"kind": kind}))
            .await
            .unwrap();
    }
    eventually(
        "the trailing refresh to be pending",
        Duration::from_secs(5),
        || async { (pool.metrics().notifications.notifications_received == 4).then_some(()) },
    )
    .await;
    assert_eq!(pool.metrics().notifications.pending_refreshes, 1);
    release.notify_one();
    let m = settled(&pool, 2).await;
    assert_eq!(m.refreshes_triggered, 2, "{m:?}");
    assert_eq!(
        *runs.lock().unwrap(),
        [
            RefreshFlags {
                tools: true,
                resources: true,
                prompts: false
            },
            all()
        ]
    );
}
