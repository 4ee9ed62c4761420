//! The store's health as `/stats` and `/metrics` show it: up, errors, calls, latency,
//! and what the shared limits did without it. Every `gateway_store_*` metric is
//! written in [`metrics_text`], so a metrics library can take them over in one place.

use std::sync::atomic::Ordering;

use super::limits::FleetLimits;

/// `"store"` of `/stats`.
pub fn stats_json(limits: &FleetLimits) -> serde_json::Value {
    let health = limits.redis().health();
    let s = limits.stats();
    let calls = s.script_calls.load(Ordering::Relaxed);
    let sum = s.latency_us_sum.load(Ordering::Relaxed);
    serde_json::json!({
        "target": limits.redis().target().urls(),
        "up": health.is_up(),
        "errors": health.errors(),
        "calls": health.calls(),
        "latency_ms": {
            "mean": if calls == 0 { 0.0 } else { sum as f64 / calls as f64 / 1000.0 },
            "max": s.latency_us_max.load(Ordering::Relaxed) as f64 / 1000.0,
        },
        "limits": {
            "script_calls": calls,
            "cached_refusals": s.cached_refusals.load(Ordering::Relaxed),
            "cached_keys": limits.cached_keys(),
            "local_fallbacks": s.local_fallbacks.load(Ordering::Relaxed),
            "closed_refusals": s.closed_refusals.load(Ordering::Relaxed),
        },
    })
}

/// The shared limits' `gateway_store_*` metrics, Prometheus text (the connection's
/// `gateway_store_up`, `_calls_total` and `_errors_total` are in [`crate::metrics`]).
pub fn metrics_text(limits: &FleetLimits) -> String {
    let s = limits.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, String); 3] = [
        ("gateway_store_cached_refusals_total", "counter", "Refusals answered from the over-limit cache without the store.", load(&s.cached_refusals).to_string()),
        ("gateway_store_local_fallbacks_total", "counter", "Decisions the local limiter made because the store did not answer (on_store_error = open).", load(&s.local_fallbacks).to_string()),
        ("gateway_store_closed_refusals_total", "counter", "Requests refused with 503 because the store did not answer (on_store_error = closed).", load(&s.closed_refusals).to_string()),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    out.push_str(&format!(
        "# HELP gateway_store_latency_seconds Latency of rate-limit script calls.\n# TYPE gateway_store_latency_seconds summary\ngateway_store_latency_seconds_sum {:.6}\ngateway_store_latency_seconds_count {}\n",
        load(&s.latency_us_sum) as f64 / 1e6,
        load(&s.script_calls)
    ));
    out
}
