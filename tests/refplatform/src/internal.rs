//! Reconciliation API for the gateway, and explicit account deletion.
//!
//! Events can be lost (receiver down, network), so the gateway can also
//! ask for an account's state. These routes are authenticated with the
//! status token (`Authorization: Bearer <token>`, `PlatformConfig::status_token`)
//! or, when none is configured, the events secret, compared in constant time;
//! with no events config they are disabled.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::accounts::AccountSnapshot;
use crate::call::AccountRoot;
use crate::envelope::{ok, ApiError, ApiResult, CODE_AUTH};
use crate::platform::{bearer_token, rfc3339};
use crate::Platform;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check(p: &Platform, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(cfg) = &p.config().events else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            CODE_AUTH,
            "internal API disabled: no events secret configured",
        ));
    };
    // A configured status token replaces the events secret here: the two credentials
    // stay apart, so a leaked status token cannot forge events and the reverse.
    let want = p.config().status_token.as_deref().unwrap_or(&cfg.secret);
    match bearer_token(headers) {
        Some(t) if constant_time_eq(t.as_bytes(), want.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthenticated()),
    }
}

fn status_json(p: &Platform, a: &AccountSnapshot) -> Value {
    // For a cleaned-up account, what the cleanup removed: a reconciling gateway
    // charges from this, since `resources` of a tombstone are all zero.
    let removed =
        p.cleanup_log().into_iter().rev().find(|c| c.account_id == a.id).map(|c| c.removed);
    json!({
        "id": a.id,
        "status": a.status,
        "createdAt": rfc3339(a.created_at),
        "expiresAt": rfc3339(a.expires_at),
        "scripts": a.scripts,
        "resources": a.counts,
        "removed": removed,
    })
}

/// `GET /internal/accounts`
pub(crate) async fn list(State(p): State<Arc<Platform>>, headers: HeaderMap) -> ApiResult {
    check(&p, &headers)?;
    Ok(ok(p.accounts().iter().map(|a| status_json(&p, a)).collect::<Vec<_>>()))
}

/// `GET /internal/accounts/{id}`
pub(crate) async fn get(
    State(p): State<Arc<Platform>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    check(&p, &headers)?;
    let a = p.account(&id).ok_or_else(|| ApiError::not_found("no such account"))?;
    Ok(ok(status_json(&p, &a)))
}

/// `DELETE /internal/accounts/{id}`: operator deletion.
pub(crate) async fn delete(
    State(p): State<Arc<Platform>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    check(&p, &headers)?;
    delete_live(&p, &id)
}

/// `DELETE /client/v4/accounts/{id}`: the account holder gives the
/// account up early (not a documented Cloudflare call; lets clients and
/// tests exercise the "deleted" path).
pub(crate) async fn self_delete(call: AccountRoot) -> ApiResult {
    call.authorize()?;
    delete_live(&call.platform, call.account_id())
}

/// Delete a live account and answer with what the cleanup removed. The
/// operator and the holder differ only in how they are authorized.
fn delete_live(p: &Platform, id: &str) -> ApiResult {
    let rec = p.delete_account(id).ok_or_else(|| ApiError::not_found("no such live account"))?;
    Ok(ok(rec))
}
