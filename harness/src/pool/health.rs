//! The health-check chain run before reusing a session that was idle for a while. Its `ping`
//! step is a `server/discover` round trip for a stateless upstream (MCP 2026-07-28 has no
//! `ping`), so the default chain never fails a healthy server of either era.

use super::{HealthCheck, SessionPool};
use crate::runtime;
use crate::session::{Era, Session};

impl SessionPool {
    pub(super) async fn health_check(&self, s: &Session) -> std::result::Result<(), String> {
        let cfg = &self.inner.cfg;
        let bound = cfg.health_check_timeout;
        let mut verdict = Err("every health check answered \"method not found\"".to_owned());
        for method in &cfg.health_checks {
            let result = match method {
                HealthCheck::Skip => {
                    verdict = Ok(());
                    break;
                }
                // A stateless upstream has no `ping`: the session sends `server/discover`.
                HealthCheck::Ping => runtime::timeout(bound, s.ping()).await,
                HealthCheck::ListTools => {
                    runtime::timeout(bound, async { s.list_tools().await.map(drop) }).await
                }
                HealthCheck::ListPrompts => {
                    runtime::timeout(bound, async { s.list_prompts().await.map(drop) }).await
                }
                HealthCheck::ListResources => {
                    runtime::timeout(bound, async { s.list_resources().await.map(drop) }).await
                }
            };
            match result {
                Ok(Ok(())) => {
                    verdict = Ok(());
                    break;
                }
                // Every stateless-era server answers `server/discover`: one that says "method
                // not found" no longer speaks the era this session speaks.
                Ok(Err(e))
                    if e.mcp_code() == Some(-32601)
                        && !(*method == HealthCheck::Ping && s.era() == Era::Stateless) =>
                {
                    continue;
                }
                Ok(Err(e)) => return Err(format!("{} failed: {e}", label(*method, s))),
                // Unlike the reference, a health check that times out is unhealthy.
                Err(_) => {
                    return Err(format!(
                        "{} got no answer within {bound:?}",
                        label(*method, s)
                    ));
                }
            }
        }
        verdict?;
        if cfg.list_tools_probe {
            match runtime::timeout(bound, s.list_tools()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("list_tools probe failed: {e}")),
                Err(_) => return Err(format!("list_tools probe got no answer within {bound:?}")),
            }
        }
        Ok(())
    }
}

/// The method a health-check step sends to `s`, for messages.
fn label(method: HealthCheck, s: &Session) -> &'static str {
    match method {
        HealthCheck::Ping if s.era() == Era::Stateless => "server/discover",
        HealthCheck::Ping => "ping",
        HealthCheck::ListTools => "tools/list",
        HealthCheck::ListPrompts => "prompts/list",
        HealthCheck::ListResources => "resources/list",
        HealthCheck::Skip => "skip",
    }
}
