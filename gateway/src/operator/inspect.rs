//! `GET /operator/inspect?key=…`: everything the gateway holds about one source key.
//!
//! For an address: the state of every limit keyed by the address or its networks, as
//! the engine's `explain` reads it (a probe: nothing is charged), per route class;
//! its refusals; the blocks that cover it. For any key: its ledger (debt now, the
//! budget action in force, entries) and the accounts it created.

use std::net::IpAddr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use policy::accounts::SourceKey;
use serde::{Deserialize, Serialize};

use super::{error, Ops};
use crate::blocks::Subject;
use crate::report;

/// The most accounts listed.
const MAX_ACCOUNTS: usize = 100;

/// One request shape per route class whose limits are read.
const PROBES: &[(&str, &str)] = &[
    ("POST", "/client/v4/provisioning/previews/challenge"),
    ("POST", "/client/v4/provisioning/previews"),
    ("PUT", "/client/v4/accounts/inspect/workers/scripts/inspect"),
    ("GET", "/client/v4/accounts/inspect/workers/scripts"),
    ("GET", "/client/v4/user"),
];

/// `?key=ip:192.0.2.1` (any source key; a bare address is taken as `ip:`).
#[derive(Deserialize)]
pub struct InspectQuery {
    key: String,
}

/// One limit's state for the key.
#[derive(Serialize)]
struct LimitState {
    route: &'static str,
    rule: String,
    key_spec: String,
    key: Option<String>,
    limit: String,
    /// What a request now would get from this limit (`ok …` or `REFUSE, retry in …`).
    state: String,
}

/// One account the key created.
#[derive(Serialize)]
struct AccountRow {
    account_id: String,
    created_at: u64,
    expires_at: u64,
    state: String,
}

/// The handler.
pub async fn inspect(State(ops): State<Ops>, Query(q): Query<InspectQuery>) -> Response {
    let text = q.key.trim();
    let key = match text.parse::<IpAddr>() {
        Ok(ip) => SourceKey::Ip(ip),
        Err(_) => match text.parse::<SourceKey>() {
            Ok(k) => k,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "key must look like ip:192.0.2.1, ipv4/24:192.0.2.0/24, \
                     ipv6/48:2001:db8::/48 or http_fp:hf1_…",
                )
            }
        },
    };
    let now = ops.clock.now();
    let policy = ops.engine.current_policy();
    let ledger = ops.tracker.ledger();
    let (debt_now, action) = report::action_for(ledger, policy.budgets(), &key, now);
    let mut accounts: Vec<AccountRow> = ops
        .tracker
        .book()
        .snapshot()
        .into_iter()
        .filter(|(a, _)| a.source.keys().contains(&key))
        .map(|(a, _)| AccountRow {
            state: format!("{:?}", a.state).to_lowercase(),
            account_id: a.account_id,
            created_at: a.created_at,
            expires_at: a.expires_at,
        })
        .collect();
    let accounts_total = accounts.len();
    accounts.truncate(MAX_ACCOUNTS);
    let (limits, refusals, blocks) = match &key {
        SourceKey::Ip(ip) => {
            let subject = Subject { ip: *ip, http_fp: None, tls_fp: None };
            let blocks: Vec<_> = ops
                .tracker
                .blocks()
                .list(now)
                .into_iter()
                .filter(|b| covers(&b.target, &subject))
                .collect();
            (limit_states(&ops, *ip), ops.tracker.decisions().of(*ip), blocks)
        }
        _ => (Vec::new(), None, Vec::new()),
    };
    Json(serde_json::json!({
        "key": key.to_string(),
        "now": now,
        "limits": limits,
        "refusals": refusals,
        "blocks": blocks,
        "ledger": { "debt_now": debt_now, "action": action, "entries": ledger.by_source(&key) },
        "accounts": accounts,
        "accounts_total": accounts_total,
    }))
    .into_response()
}

/// Whether a block in force covers an address (without counting a refusal).
fn covers(target: &crate::blocks::BlockTarget, s: &Subject<'_>) -> bool {
    match target {
        crate::blocks::BlockTarget::Ip(ip) => *ip == s.ip,
        crate::blocks::BlockTarget::Net(n) => n.contains(s.ip),
        _ => false,
    }
}

/// The limits keyed by the address, its networks, the route or nothing (global),
/// probed per route class. Limits keyed by a fingerprint or an account are left out:
/// an address alone does not say which fingerprint or account a request would carry.
fn limit_states(ops: &Ops, ip: IpAddr) -> Vec<LimitState> {
    let mut out = Vec::new();
    for (method, path) in PROBES {
        let req = policy::Request {
            method,
            path,
            peer: ip,
            http_version: "1.1",
            headers: &[],
            tls_fp: None,
            account: None,
        };
        let trace = ops.engine.explain(&req);
        let route = trace.route.map_or("other", |r| r.as_str());
        for rule in trace.rules {
            for l in rule.limits {
                if l.key_spec.contains("fp") || l.key_spec.contains("account") {
                    continue;
                }
                out.push(LimitState {
                    route,
                    rule: rule.name.clone(),
                    key_spec: l.key_spec,
                    key: l.key,
                    limit: l.limit,
                    state: l.outcome,
                });
            }
        }
    }
    out
}
