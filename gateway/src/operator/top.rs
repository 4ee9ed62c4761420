//! What the dashboard draws: decision totals, the worst sources, budgets.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use policy::accounts::SourceKey;
use policy::ledger::BudgetAction;
use serde::{Deserialize, Serialize};

use super::{error, Ops};
use crate::report;

/// The most rows a top list answers.
pub const MAX_ROWS: usize = 100;

/// `GET /operator/summary`: decision totals, blocks, ledger and accounts, with the
/// gateway's time, so a poller can turn two answers into rates.
pub async fn summary(State(ops): State<Ops>) -> Response {
    let now = ops.clock.now();
    let (units, accounts) = ops.tracker.ledger().total(0);
    Json(serde_json::json!({
        "now": now,
        "decisions": ops.tracker.decisions().totals(),
        "blocks": {
            "active": ops.tracker.blocks().list(now).len(),
            "refused": ops.tracker.blocks().refused_total(),
        },
        "ledger": { "units": units, "accounts": accounts },
        "accounts_tracked": ops.tracker.book().len(),
    }))
    .into_response()
}

/// `?by=cost|refusals&n=10&since_secs=3600`.
#[derive(Deserialize)]
pub struct TopQuery {
    by: Option<String>,
    n: Option<usize>,
    since_secs: Option<u64>,
}

/// One row of the refusals list.
#[derive(Serialize)]
struct RefusedSource {
    key: String,
    refused: u64,
    blocked: u64,
    last_refused_at: u64,
}

/// `GET /operator/top`: the sources that cost the most cleanup (`by=cost`, from the
/// ledger, over `since_secs`) or were refused most often (`by=refusals`, since start).
pub async fn top(State(ops): State<Ops>, Query(q): Query<TopQuery>) -> Response {
    let n = q.n.unwrap_or(10).min(MAX_ROWS);
    let now = ops.clock.now();
    match q.by.as_deref().unwrap_or("cost") {
        "cost" => {
            let since = now.saturating_sub(q.since_secs.unwrap_or(3600));
            let policy = ops.engine.current_policy();
            let rows = report::top_sources(ops.tracker.ledger(), policy.budgets(), n, since, now);
            Json(serde_json::json!({ "by": "cost", "since": since, "sources": rows }))
                .into_response()
        }
        "refusals" => {
            let rows: Vec<RefusedSource> = ops
                .tracker
                .decisions()
                .top_refused(n)
                .into_iter()
                .map(|(ip, c)| RefusedSource {
                    key: SourceKey::Ip(ip).to_string(),
                    refused: c.refused,
                    blocked: c.blocked,
                    last_refused_at: c.last_refused_at,
                })
                .collect();
            Json(serde_json::json!({ "by": "refusals", "sources": rows })).into_response()
        }
        other => error(
            StatusCode::BAD_REQUEST,
            format!("by=\"{other}\": expected by=cost or by=refusals"),
        ),
    }
}

/// One budget with where it stands now.
#[derive(Serialize)]
struct BudgetNow {
    /// The key kind it counts by (`ip`, `ipv6/48`, …) or `global`.
    key: String,
    units: u64,
    window_secs: u64,
    action: &'static str,
    /// The key with the largest debt under this budget now, and that debt.
    worst_key: Option<String>,
    worst_debt: u64,
}

fn action_name(a: BudgetAction) -> &'static str {
    match a {
        BudgetAction::HarderPow => "harder_pow",
        BudgetAction::Refuse => "refuse",
    }
}

/// `GET /operator/budgets`: every budget of the policy in force, with the debt of the
/// source closest to it (among the ledger's top sources of its window) and the
/// platform-wide debt for global budgets.
pub async fn budgets(State(ops): State<Ops>) -> Response {
    let now = ops.clock.now();
    let policy = ops.engine.current_policy();
    let ledger = ops.tracker.ledger();
    let mut out = Vec::new();
    for rule in &policy.budgets().rules {
        let since = now.saturating_sub(rule.window_secs);
        let worst = ledger
            .top_sources(MAX_ROWS * 10, since)
            .into_iter()
            .filter(|(k, _, _)| k.kind() == Some(rule.kind))
            .map(|(k, _, _)| {
                let debt = ledger.debt(&k, now, rule.window_secs);
                (k, debt)
            })
            .max_by_key(|(_, d)| *d);
        out.push(BudgetNow {
            key: rule.kind.as_str().to_string(),
            units: rule.units,
            window_secs: rule.window_secs,
            action: action_name(rule.action),
            worst_key: worst.as_ref().map(|(k, _)| k.to_string()),
            worst_debt: worst.map_or(0, |(_, d)| d),
        });
    }
    for g in &policy.budgets().global {
        out.push(BudgetNow {
            key: "global".into(),
            units: g.units,
            window_secs: g.window_secs,
            action: action_name(g.action),
            worst_key: Some("global".into()),
            worst_debt: ledger.debt(&SourceKey::Global, now, g.window_secs),
        });
    }
    Json(serde_json::json!({ "now": now, "budgets": out })).into_response()
}
