//! Counters through the `metrics` facade (feature `metrics`); without the
//! feature every function here compiles to nothing.
//!
//! | metric | labels |
//! |---|---|
//! | `ensure_user_rejections_total` | `code` |
//! | `ensure_user_token_cache_total` | `result` = `hit` / `miss` |
//! | `ensure_user_user_cache_total` | `result` = `hit` / `miss` |
//! | `ensure_user_organization_cache_total` | `result` = `hit` / `miss` |
//! | `ensure_user_membership_cache_total` | `result` = `hit` / `miss` |
//! | `ensure_user_store_calls_total` | `kind` = `user` / `organization` / `membership`; `outcome` = `existing` / `created` / `deleted` / `error` |
//! | `ensure_user_store_call_seconds` (histogram) | `kind` |
//! | `ensure_user_key_fetches_total` | `result` = `ok` / `error` |
//! | `ensure_user_profile_fetches_total` | `result` = `ok` / `api_error` / `not_found` / `store_error` / `timed_out` |
//! | `ensure_user_webhook_deliveries_total` | `outcome` = `applied` / `ignored_*` / `failed` / a refusal code |
//! | `ensure_user_sessions_ended_total` | |
//! | `ensure_user_ban_changes_total` | `state` = `banned` / `unbanned` |
//! | `ensure_user_eviction_notifications_total` | |
//! | `ensure_user_eviction_connections_lost_total` | |
//! | `ensure_user_eviction_listener_deaf` (gauge: 1 while the listener does not hear its own channel, else 0) | |

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    pub(crate) fn rejection(code: &'static str) {
        metrics::counter!("ensure_user_rejections_total", "code" => code).increment(1);
    }

    /// On every request: literal labels make a static key, no allocation.
    pub(crate) fn token_cache(hit: bool) {
        if hit {
            metrics::counter!("ensure_user_token_cache_total", "result" => "hit").increment(1);
        } else {
            metrics::counter!("ensure_user_token_cache_total", "result" => "miss").increment(1);
        }
    }

    /// On every request: literal labels make a static key, no allocation.
    pub(crate) fn user_cache(hit: bool) {
        if hit {
            metrics::counter!("ensure_user_user_cache_total", "result" => "hit").increment(1);
        } else {
            metrics::counter!("ensure_user_user_cache_total", "result" => "miss").increment(1);
        }
    }

    pub(crate) fn organization_cache(hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        metrics::counter!("ensure_user_organization_cache_total", "result" => result).increment(1);
    }

    pub(crate) fn membership_cache(hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        metrics::counter!("ensure_user_membership_cache_total", "result" => result).increment(1);
    }

    pub(crate) fn store_call(kind: &'static str, outcome: &'static str, elapsed: Duration) {
        metrics::counter!("ensure_user_store_calls_total", "kind" => kind, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("ensure_user_store_call_seconds", "kind" => kind)
            .record(elapsed.as_secs_f64());
    }

    #[cfg(feature = "webhooks")]
    pub(crate) fn webhook_delivery(outcome: &'static str) {
        metrics::counter!("ensure_user_webhook_deliveries_total", "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn key_fetch(ok: bool) {
        let result = if ok { "ok" } else { "error" };
        metrics::counter!("ensure_user_key_fetches_total", "result" => result).increment(1);
    }

    #[cfg(feature = "clerk-api")]
    pub(crate) fn profile_fetch(result: &'static str) {
        metrics::counter!("ensure_user_profile_fetches_total", "result" => result).increment(1);
    }

    pub(crate) fn session_ended() {
        metrics::counter!("ensure_user_sessions_ended_total").increment(1);
    }

    pub(crate) fn ban_change(banned: bool) {
        let state = if banned { "banned" } else { "unbanned" };
        metrics::counter!("ensure_user_ban_changes_total", "state" => state).increment(1);
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_notification() {
        metrics::counter!("ensure_user_eviction_notifications_total").increment(1);
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_connection_lost() {
        metrics::counter!("ensure_user_eviction_connections_lost_total").increment(1);
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_listener_deaf(deaf: bool) {
        metrics::gauge!("ensure_user_eviction_listener_deaf").set(f64::from(u8::from(deaf)));
    }
}

#[cfg(not(feature = "metrics"))]
mod enabled {
    use std::time::Duration;

    pub(crate) fn rejection(_code: &'static str) {}
    pub(crate) fn token_cache(_hit: bool) {}
    pub(crate) fn user_cache(_hit: bool) {}
    pub(crate) fn organization_cache(_hit: bool) {}
    pub(crate) fn membership_cache(_hit: bool) {}
    pub(crate) fn store_call(_kind: &'static str, _outcome: &'static str, _elapsed: Duration) {}
    pub(crate) fn key_fetch(_ok: bool) {}
    #[cfg(feature = "clerk-api")]
    pub(crate) fn profile_fetch(_result: &'static str) {}
    #[cfg(feature = "webhooks")]
    pub(crate) fn webhook_delivery(_outcome: &'static str) {}
    pub(crate) fn session_ended() {}
    pub(crate) fn ban_change(_banned: bool) {}
    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_notification() {}
    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_connection_lost() {}
    #[cfg(feature = "postgres")]
    pub(crate) fn eviction_listener_deaf(_deaf: bool) {}
}

pub(crate) use enabled::*;
