//! The operator side of the admin listener: who may call it, what it shows and what
//! it changes.
//!
//! | module | calls |
//! | --- | --- |
//! | [`auth`] | the bearer token every operator call needs |
//! | [`routes`] | the router's table (tested against `gateway/openapi.yaml`) |
//! | [`top`] | `GET /operator/summary`, `/operator/top`, `/operator/budgets` |
//! | [`inspect`] | `GET /operator/inspect?key=…` |
//! | [`block_api`] | `GET`/`POST`/`DELETE /operator/blocks` |
//! | [`policy_api`] | `GET /operator/policy`, `POST /operator/reload` |
//! | [`dashboard`] | `GET /dashboard` and its script and style, built into the binary |
//!
//! The decision counters it reads are fed by [`crate::stage::tally`].

pub mod auth;
pub mod block_api;
pub mod dashboard;
pub mod inspect;
pub mod policy_api;
pub mod routes;
pub mod top;

use std::sync::Arc;

use policy::Engine;

use crate::clock::SharedClock;
use crate::reload::Reloader;
use crate::tracker::Tracker;

/// What the operator handlers read and change.
#[derive(Clone)]
pub struct Ops {
    /// The rate-limit engine (policy in force, limiter state).
    pub engine: Arc<Engine>,
    /// Accounts, ledger, blocks, decision counters.
    pub tracker: Arc<Tracker>,
    /// The gateway's clock.
    pub clock: SharedClock,
    /// Reloads the policy file, when the gateway runs from one.
    pub reloader: Option<Arc<Reloader>>,
}

/// A JSON error answer: `{"error": message}`.
pub fn error(
    status: axum::http::StatusCode,
    message: impl Into<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}
