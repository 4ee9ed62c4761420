//! The admin listener: platform events in, numbers out.
//!
//! Bind it to loopback or a management network only. Endpoints:
//! - `POST /events`: claimed/expired/deleted events from the platform, signed with
//!   HMAC-SHA256 of the body under the shared secret (`X-Platform-Signature:
//!   sha256=<hex>`); unsigned or mis-signed events are refused with 401.
//! - `GET /metrics`: Prometheus text (rule counters, table sizes, ledger totals).
//! - `GET /stats`: the same as JSON (plus the held request-body bytes).
//! - `GET /accounts/usage?id=ACCOUNT`: what the gateway counted the account as holding.
//! - `GET /ledger/top?n=10&since_secs=3600`, `GET /ledger/hourly?since_secs=86400`,
//!   `GET /ledger/entries?since_secs=…`: the cleanup-cost ledger.
//!
//! It runs on a small tokio runtime of its own, apart from Pingora's, so a slow admin
//! client cannot hold up proxying. The same runtime runs the fallback that charges
//! accounts whose expiry passed without any event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use policy::Engine;
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::SharedClock;
use crate::report;
use crate::tracker::Tracker;
use policy::platform::PlatformEvent;
use policy::platform::StatusAnswer;

/// Admin listener settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Shared secret of platform events; without it `/events` answers 403.
    pub events_secret: Option<String>,
    /// How long after an account's expiry, with no event, the gateway charges it from
    /// what it saw the account create.
    pub silent_expiry_grace: Duration,
    /// The platform's account-status API (`{url}/{account_id}`, bearer = events
    /// secret), asked about accounts whose expiry passed with no event.
    pub reconcile_url: Option<String>,
    /// How often the reconciliation pass runs.
    pub reconcile_interval: Duration,
}

#[derive(Clone)]
struct AdminState {
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    clock: SharedClock,
    secret: Option<Arc<str>>,
    reconcile_url: Option<Arc<str>>,
    grace: Duration,
    http: reqwest::Client,
}

/// Starts the admin listener and the expiry fallback on a thread of their own; returns
/// once the listener is bound (so a taken port is an error at start-up).
/// `clock` is the gateway's clock (the one its request stages read).
pub fn start(
    config: AdminConfig,
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    clock: SharedClock,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(config.listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(std::io::Error::other)?;
    let state = AdminState {
        engine,
        tracker,
        clock,
        secret: config.events_secret.map(Arc::from),
        reconcile_url: config.reconcile_url.map(|u| Arc::from(u.trim_end_matches('/'))),
        grace: config.silent_expiry_grace,
        http,
    };
    let interval = config.reconcile_interval;
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "admin runtime failed to start");
                return;
            }
        };
        runtime.block_on(async move {
            let sweeper = tokio::spawn(reconcile_loop(state.clone(), interval));
            match tokio::net::TcpListener::from_std(std_listener) {
                Ok(listener) => {
                    if let Err(e) = axum::serve(listener, router(state)).await {
                        tracing::error!(error = %e, "admin listener stopped");
                    }
                }
                Err(e) => tracing::error!(error = %e, "admin listener failed"),
            }
            sweeper.abort();
        });
    })?;
    tracing::info!(%addr, "admin listening");
    Ok(addr)
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/events", post(events))
        .route("/reconcile", post(reconcile_now))
        .route("/ledger/source", get(ledger_source))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/ledger/top", get(ledger_top))
        .route("/ledger/hourly", get(ledger_hourly))
        .route("/ledger/entries", get(ledger_entries))
        .route("/accounts/usage", get(account_usage))
        .with_state(state)
}

/// Runs [`reconcile`] every `interval`.
async fn reconcile_loop(state: AdminState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = reconcile(&state).await;
        if outcome.settled > 0 || outcome.charged_without_platform > 0 {
            tracing::info!(?outcome, "reconciled accounts that expired without an event");
        }
        let (accounts, entries) =
            state.tracker.forget_old(&state.engine.current_policy(), state.clock.now());
        if accounts + entries > 0 {
            tracing::info!(
                accounts,
                entries,
                "forgot accounts and ledger entries older than the longest budget window"
            );
        }
    }
}

/// What one reconciliation pass did.
#[derive(Debug, Default, serde::Serialize)]
struct ReconcileOutcome {
    /// Accounts past expiry that no event had settled.
    overdue: usize,
    /// Settled from the platform's answer (claimed, expired or deleted).
    settled: usize,
    /// The platform says they are still live (clocks disagree): asked again later.
    still_live: usize,
    /// The platform could not be asked.
    unreachable: usize,
    /// Charged from what the gateway saw, after the grace period.
    charged_without_platform: usize,
}

/// The fallback for lost events: asks the platform about each account whose expiry
/// passed with no event; after the grace period, charges the ones it could not learn
/// about from what the gateway saw them create.
async fn reconcile(state: &AdminState) -> ReconcileOutcome {
    let now = state.clock.now();
    let policy = state.engine.current_policy();
    let overdue = state.tracker.overdue(now);
    let mut outcome = ReconcileOutcome { overdue: overdue.len(), ..ReconcileOutcome::default() };
    if let (Some(url), Some(secret)) = (&state.reconcile_url, &state.secret) {
        for account in &overdue {
            match platform_status(&state.http, url, secret, &account.account_id).await {
                Some(answer) if answer.is_live() => outcome.still_live += 1,
                Some(answer) => {
                    if state
                        .tracker
                        .apply_event(&policy, &answer.into_event(&account.account_id), now)
                        .is_ok()
                    {
                        outcome.settled += 1;
                    }
                }
                None => outcome.unreachable += 1,
            }
        }
    }
    outcome.charged_without_platform =
        state.tracker.charge_silent_expiries(&policy, now, state.grace.as_secs()).len();
    outcome
}

/// Asks the platform's status API about one account; maps its answer to an event.
async fn platform_status(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    account_id: &str,
) -> Option<StatusAnswer> {
    let resp = http.get(format!("{url}/{account_id}")).bearer_auth(secret).send().await.ok()?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Some(StatusAnswer::not_found());
    }
    if !resp.status().is_success() {
        return None;
    }
    StatusAnswer::parse(&resp.bytes().await.ok()?)
}

async fn reconcile_now(State(state): State<AdminState>) -> Response {
    Json(reconcile(&state).await).into_response()
}

#[derive(Deserialize)]
struct SourceQuery {
    key: String,
}

async fn ledger_source(State(state): State<AdminState>, Query(q): Query<SourceQuery>) -> Response {
    let Ok(key) = q.key.parse::<policy::accounts::SourceKey>() else {
        return (
            StatusCode::BAD_REQUEST,
            "key must look like ip:192.0.2.1 or ipv6/48:2001:db8::/48",
        )
            .into_response();
    };
    let policy = state.engine.current_policy();
    let (debt_now, action) =
        report::action_for(state.tracker.ledger(), policy.budgets(), &key, state.clock.now());
    Json(serde_json::json!({
        "key": key.to_string(),
        "debt_now": debt_now,
        "action": action,
        "entries": state.tracker.ledger().by_source(&key),
    }))
    .into_response()
}

fn signature_ok(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else { return false };
    let Ok(sig) = hex::decode(hex_sig.trim()) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn events(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(secret) = &state.secret else {
        return (StatusCode::FORBIDDEN, "events are disabled: set admin.events_secret")
            .into_response();
    };
    let sig = headers.get("x-platform-signature").and_then(|v| v.to_str().ok());
    if !signature_ok(secret, &body, sig) {
        return (StatusCode::UNAUTHORIZED, "bad or missing X-Platform-Signature").into_response();
    }
    let event: PlatformEvent = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an event: {e}")).into_response(),
    };
    let policy = state.engine.current_policy();
    match state.tracker.apply_event(&policy, &event, state.clock.now()) {
        Ok(entry) => {
            Json(serde_json::json!({ "applied": true, "ledger_entry": entry })).into_response()
        }
        // Not committed to the store, so not acknowledged.
        Err(e @ crate::tracker::EventError::Store(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct Window {
    n: Option<usize>,
    since_secs: Option<u64>,
}

async fn ledger_top(State(state): State<AdminState>, Query(q): Query<Window>) -> Response {
    let now = state.clock.now();
    let since = now.saturating_sub(q.since_secs.unwrap_or(3600));
    let policy = state.engine.current_policy();
    Json(report::top_sources(
        state.tracker.ledger(),
        policy.budgets(),
        q.n.unwrap_or(10),
        since,
        now,
    ))
    .into_response()
}

async fn ledger_hourly(State(state): State<AdminState>, Query(q): Query<Window>) -> Response {
    let now = state.clock.now();
    let since = now.saturating_sub(q.since_secs.unwrap_or(86_400));
    Json(report::hourly(state.tracker.ledger(), since, now + 1)).into_response()
}

async fn ledger_entries(State(state): State<AdminState>, Query(q): Query<Window>) -> Response {
    let since = q.since_secs.map_or(0, |s| state.clock.now().saturating_sub(s));
    let entries: Vec<_> =
        state.tracker.ledger().entries().into_iter().filter(|e| e.at >= since).collect();
    Json(entries).into_response()
}

/// `?id=ACCOUNT`.
#[derive(Deserialize)]
struct AccountQuery {
    id: String,
}

/// What the gateway counted an account as holding (what its quotas and its cleanup
/// cost are computed from), to compare with the platform's own count.
async fn account_usage(State(state): State<AdminState>, Query(q): Query<AccountQuery>) -> Response {
    Json(state.tracker.usage_of(&q.id)).into_response()
}

async fn stats(State(state): State<AdminState>) -> Response {
    let s = state.engine.stats();
    let (units, accounts) = state.tracker.ledger().total(0);
    Json(serde_json::json!({
        "rules": s.rules.iter().map(|r| serde_json::json!({
            "name": r.name, "matched": r.matched, "allowed": r.allowed,
            "refused": r.refused, "shadow_refused": r.shadow_refused,
        })).collect::<Vec<_>>(),
        "tables": s.tables.iter().map(|t| serde_json::json!({
            "limit": t.limit, "keys": t.keys, "overflowed": t.overflowed,
        })).collect::<Vec<_>>(),
        "accounts_tracked": state.tracker.book().len(),
        "pow": { "verifies": state.tracker.pow_cost().0, "hashes": state.tracker.pow_cost().1 },
        "held_body_bytes": { "held": state.tracker.held().held(), "limit": state.tracker.held().limit() },
        "upload_sessions": state.tracker.uploads().len(),
        "ledger": { "units": units, "accounts": accounts, "entries": state.tracker.ledger().len() },
        "fair_share": state.engine.fair_share_stats().map(|f| serde_json::json!({
            "networks": f.networks, "admitted_in_window": f.admitted_in_window,
            "ceiling": f.ceiling, "overflowed": f.overflowed, "refused": f.refused,
        })),
    }))
    .into_response()
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let s = state.engine.stats();
    let mut out = String::new();
    out.push_str(
        "# HELP gateway_rule_requests_total Requests a policy rule matched, by outcome.\n",
    );
    out.push_str("# TYPE gateway_rule_requests_total counter\n");
    for r in &s.rules {
        let name = label(&r.name);
        for (outcome, v) in
            [("allowed", r.allowed), ("refused", r.refused), ("shadow_refused", r.shadow_refused)]
        {
            out.push_str(&format!(
                "gateway_rule_requests_total{{rule=\"{name}\",outcome=\"{outcome}\"}} {v}\n"
            ));
        }
    }
    out.push_str("# HELP gateway_limit_keys Keys tracked by a limit's table.\n# TYPE gateway_limit_keys gauge\n");
    for t in &s.tables {
        out.push_str(&format!("gateway_limit_keys{{limit=\"{}\"}} {}\n", label(&t.limit), t.keys));
    }
    out.push_str("# HELP gateway_limit_overflow_total Requests counted in a full table's shared overflow bucket.\n# TYPE gateway_limit_overflow_total counter\n");
    for t in &s.tables {
        out.push_str(&format!(
            "gateway_limit_overflow_total{{limit=\"{}\"}} {}\n",
            label(&t.limit),
            t.overflowed
        ));
    }
    let (units, accounts) = state.tracker.ledger().total(0);
    out.push_str("# HELP gateway_cleanup_units_total Net cleanup-cost units in the ledger.\n# TYPE gateway_cleanup_units_total counter\n");
    out.push_str(&format!("gateway_cleanup_units_total {units}\n"));
    out.push_str("# HELP gateway_cleanup_accounts_total Accounts with a ledger entry.\n# TYPE gateway_cleanup_accounts_total counter\n");
    out.push_str(&format!("gateway_cleanup_accounts_total {accounts}\n"));
    out.push_str("# HELP gateway_accounts_tracked Temporary accounts the gateway knows.\n# TYPE gateway_accounts_tracked gauge\n");
    out.push_str(&format!("gateway_accounts_tracked {}\n", state.tracker.book().len()));
    let (verifies, hashes) = state.tracker.pow_cost();
    out.push_str("# HELP gateway_pow_verifies_total Verifications of extra proof-of-work segments.\n# TYPE gateway_pow_verifies_total counter\n");
    out.push_str(&format!("gateway_pow_verifies_total {verifies}\n"));
    out.push_str("# HELP gateway_pow_verify_hashes_total SHA-256 rounds spent on those verifications.\n# TYPE gateway_pow_verify_hashes_total counter\n");
    out.push_str(&format!("gateway_pow_verify_hashes_total {hashes}\n"));
    if let Some(f) = state.engine.fair_share_stats() {
        out.push_str(&fair_share_metrics(&f));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}

/// The `[fair_share]` ceiling's gauges and counters.
fn fair_share_metrics(f: &policy::FairShareStats) -> String {
    format!(
        "# HELP gateway_fair_share_admitted Admissions counted in the fair-share window now.\n# TYPE gateway_fair_share_admitted gauge\ngateway_fair_share_admitted {:.1}\n\
# HELP gateway_fair_share_ceiling The fair-share ceiling per window.\n# TYPE gateway_fair_share_ceiling gauge\ngateway_fair_share_ceiling {}\n\
# HELP gateway_fair_share_networks Networks active in the fair-share window.\n# TYPE gateway_fair_share_networks gauge\ngateway_fair_share_networks {}\n\
# HELP gateway_fair_share_refused_total Requests the fair-share ceiling refused.\n# TYPE gateway_fair_share_refused_total counter\ngateway_fair_share_refused_total {}\n\
# HELP gateway_fair_share_overflow_total Requests counted in the full network table's shared entry.\n# TYPE gateway_fair_share_overflow_total counter\ngateway_fair_share_overflow_total {}\n",
        f.admitted_in_window, f.ceiling, f.networks, f.refused, f.overflowed
    )
}
