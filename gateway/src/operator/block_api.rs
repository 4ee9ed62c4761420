//! `GET`/`POST`/`DELETE /operator/blocks`: list, set and lift operator blocks
//! ([`crate::blocks`]).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{error, Ops};
use crate::blocks::BlockTarget;

/// `GET /operator/blocks`: the blocks in force, soonest to lift first.
pub async fn list(State(ops): State<Ops>) -> Response {
    let now = ops.clock.now();
    Json(serde_json::json!({ "now": now, "blocks": ops.tracker.blocks().list(now) }))
        .into_response()
}

/// The body of `POST /operator/blocks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// `198.51.100.7`, `198.51.100.0/24`, `http_fp:…` or `tls_fp:…`.
    target: String,
    /// Why; the refused client reads it.
    reason: String,
    /// How long, in seconds of the gateway's clock.
    ttl_secs: u64,
}

/// `POST /operator/blocks`: sets a block (replacing one of the same target); 201.
pub async fn create(
    State(ops): State<Ops>,
    body: Result<Json<BlockRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let target: BlockTarget = match req.target.parse() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = ops.clock.now();
    match ops.tracker.blocks().block(target, &req.reason, req.ttl_secs, now) {
        Ok(block) => {
            tracing::info!(target = %block.target, ttl_secs = req.ttl_secs, reason = %block.reason, "operator block set");
            ops.tracker.store_block(&block);
            if let Some(fleet) = ops.tracker.fleet() {
                fleet.blocked(&block);
            }
            let text = block.target.to_string();
            let (kind, value) = text.split_once(':').unwrap_or(("target", text.as_str()));
            crate::audit::log().block(kind, value, Some(block.expires_at), &block.reason);
            (StatusCode::CREATED, Json(block)).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `?target=…` of `DELETE /operator/blocks`.
#[derive(Deserialize)]
pub struct TargetQuery {
    target: String,
}

/// `DELETE /operator/blocks?target=…`: lifts a block at once; 404 if none was in force.
pub async fn remove(State(ops): State<Ops>, Query(q): Query<TargetQuery>) -> Response {
    let target: BlockTarget = match q.target.parse() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if ops.tracker.blocks().unblock(&target, ops.clock.now()) {
        tracing::info!(target = %target, "operator block lifted");
        ops.tracker.store_unblock(&target);
        if let Some(fleet) = ops.tracker.fleet() {
            fleet.unblocked(&target, ops.clock.now());
        }
        let text = target.to_string();
        let (kind, value) = text.split_once(':').unwrap_or(("target", text.as_str()));
        crate::audit::log().unblock(kind, value, "lifted by an operator");
        Json(serde_json::json!({ "lifted": target.to_string() })).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no block of {target} is in force"))
    }
}
