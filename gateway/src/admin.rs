//! The admin listener: platform events in, numbers out.
//!
//! Bind it to loopback or a management network only. Every call but `POST /events`
//! and the dashboard's static files needs `Authorization: Bearer <admin token>`
//! ([`crate::operator::auth`]); `gateway/openapi.yaml` describes every route.
//! Endpoints:
//! - `POST /events`: claimed/expired/deleted events from the platform, signed with
//!   HMAC-SHA256 of the body under the shared secret (`X-Platform-Signature:
//!   sha256=<hex>`); unsigned or mis-signed events are refused with 401.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//! - `GET /stats`: the same as JSON (plus the held request-body bytes).
//! - `GET /accounts/usage?id=ACCOUNT`: what the gateway counted the account as holding.
//! - `GET /ledger/top?n=10&since_secs=3600`, `GET /ledger/hourly?since_secs=86400`,
//!   `GET /ledger/entries?since_secs=…`: the cleanup-cost ledger.
//! - `/operator/…` and `/dashboard`: see [`crate::operator`].
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
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use policy::Engine;
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::SharedClock;
use crate::operator::routes::{Access, RouteInfo, Routes};
use crate::operator::{self, Ops};
use crate::report;
use crate::tracker::Tracker;
use policy::platform::PlatformEvent;
use policy::platform::StatusAnswer;

/// Admin listener settings (not `Debug`: they hold credentials).
#[derive(Clone)]
pub struct AdminConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Shared secret of platform events; without it `/events` answers 403.
    pub events_secret: Option<String>,
    /// The bearer token of every operator call; `None` refuses them all.
    pub token: Option<String>,
    /// The bearer token of the platform's account-status API (reconciliation).
    pub status_token: Option<String>,
    /// Reloads the policy file (`POST /operator/reload`, `GET /operator/policy`).
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// How long after an account's expiry, with no event, the gateway charges it from
    /// what it saw the account create.
    pub silent_expiry_grace: Duration,
    /// The platform's account-status API (`{url}/{account_id}`, bearer =
    /// `status_token`), asked about accounts whose expiry passed with no event.
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
    status_token: Option<Arc<str>>,
    token: Arc<operator::auth::AdminToken>,
    ops: Ops,
    reconcile_url: Option<Arc<str>>,
    grace: Duration,
    http: reqwest::Client,
    fleet: Option<Arc<crate::fleet::limits::FleetLimits>>,
}

/// Starts the admin listener and the expiry fallback on a thread of their own; returns
/// once the listener is bound (so a taken port is an error at start-up).
/// `clock` is the gateway's clock (the one its request stages read).
pub fn start(
    config: AdminConfig,
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    clock: SharedClock,
    fleet: Option<Arc<crate::fleet::limits::FleetLimits>>,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(config.listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(std::io::Error::other)?;
    let ops = Ops {
        engine: engine.clone(),
        tracker: tracker.clone(),
        clock: clock.clone(),
        reloader: config.reloader,
    };
    let state = AdminState {
        engine,
        tracker,
        clock,
        secret: config.events_secret.map(Arc::from),
        status_token: config.status_token.map(Arc::from),
        token: Arc::new(operator::auth::AdminToken::new(config.token.as_deref())),
        ops,
        reconcile_url: config.reconcile_url.map(|u| Arc::from(u.trim_end_matches('/'))),
        grace: config.silent_expiry_grace,
        http,
        fleet,
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

impl axum::extract::FromRef<AdminState> for Ops {
    fn from_ref(state: &AdminState) -> Ops {
        state.ops.clone()
    }
}

/// Every route, with who may call it (the table `gateway/openapi.yaml` is tested
/// against).
fn routes() -> Routes<AdminState> {
    use Access::{Public, Token};
    Routes::default()
        .post("/events", Public, events)
        .post("/reconcile", Token, reconcile_now)
        .get("/ledger/source", Token, ledger_source)
        .get("/metrics", Token, metrics)
        .get("/stats", Token, stats)
        .get("/ledger/top", Token, ledger_top)
        .get("/ledger/hourly", Token, ledger_hourly)
        .get("/ledger/entries", Token, ledger_entries)
        .get("/accounts/usage", Token, account_usage)
        .get("/operator/summary", Token, operator::top::summary)
        .get("/operator/top", Token, operator::top::top)
        .get("/operator/budgets", Token, operator::top::budgets)
        .get("/operator/inspect", Token, operator::inspect::inspect)
        .get("/operator/blocks", Token, operator::block_api::list)
        .post("/operator/blocks", Token, operator::block_api::create)
        .delete("/operator/blocks", Token, operator::block_api::remove)
        .get("/operator/policy", Token, operator::policy_api::policy)
        .post("/operator/reload", Token, operator::policy_api::reload)
        .get("/dashboard", Public, operator::dashboard::index)
        .get("/dashboard/app.js", Public, operator::dashboard::script)
        .get("/dashboard/app.css", Public, operator::dashboard::style)
}

fn router(state: AdminState) -> Router {
    let (router, _) = routes().finish(state.token.clone());
    router.with_state(state)
}

/// The table of every route the admin router serves.
pub fn served_routes() -> Vec<RouteInfo> {
    routes().finish(Arc::new(operator::auth::AdminToken::new(None))).1
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
    if let (Some(url), Some(token)) = (&state.reconcile_url, &state.status_token) {
        for account in &overdue {
            match platform_status(&state.http, url, token, &account.account_id).await {
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
    token: &str,
    account_id: &str,
) -> Option<StatusAnswer> {
    let resp = http.get(format!("{url}/{account_id}")).bearer_auth(token).send().await.ok()?;
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
        "fleet": state.tracker.fleet().map(|f| serde_json::json!({
            "up": f.redis.health().is_up(), "calls": f.redis.health().calls(),
            "errors": f.redis.health().errors(), "writes_dropped": f.outbox.dropped(),
        })),
        "fair_share": state.engine.fair_share_stats().map(|f| serde_json::json!({
            "networks": f.networks, "admitted_in_window": f.admitted_in_window,
            "ceiling": f.ceiling, "overflowed": f.overflowed, "refused": f.refused,
        })),
        "store": state.fleet.as_deref().map(crate::fleet::health::stats_json),
    }))
    .into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut text = crate::metrics::render(&state.engine, &state.tracker, &state.clock);
    if let Some(fleet) = &state.fleet {
        // The shared limits' own counters, before an end-of-exposition marker if any.
        let at = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(at, &crate::fleet::health::metrics_text(fleet));
    }
    ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response()
}
