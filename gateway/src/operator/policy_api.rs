//! `GET /operator/policy` (the loaded policy's file and SHA-256) and
//! `POST /operator/reload` (compile the file again; swap it in only when valid).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, Ops};
use crate::reload::ReloadOutcome;

/// `GET /operator/policy`.
pub async fn policy(State(ops): State<Ops>) -> Response {
    let Some(reloader) = &ops.reloader else {
        return error(StatusCode::NOT_FOUND, "the gateway runs without a policy file");
    };
    Json(serde_json::json!({
        "file": reloader.path().display().to_string(),
        "sha256": reloader.loaded_digest(),
        "rules": ops.engine.current_policy().rule_names().len(),
    }))
    .into_response()
}

/// `POST /operator/reload`: 200 with the new hash, or 422 with the located errors
/// (the previous policy stays in force).
pub async fn reload(State(ops): State<Ops>) -> Response {
    let Some(reloader) = ops.reloader.clone() else {
        return error(StatusCode::NOT_FOUND, "the gateway runs without a policy file");
    };
    // Compiling reads files: off the admin runtime's only thread.
    let outcome = match tokio::task::spawn_blocking(move || {
        let outcome = reloader.reload("admin API");
        (outcome, reloader.loaded_digest())
    })
    .await
    {
        Ok(o) => o,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed: {e}")),
    };
    match outcome {
        (ReloadOutcome::Loaded { kept, reset }, sha256) => Json(serde_json::json!({
            "loaded": true, "kept": kept, "reset": reset, "sha256": sha256,
        }))
        .into_response(),
        (ReloadOutcome::Rejected(errors), sha256) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "loaded": false,
                "error": "the policy file is invalid; the previous policy stays in force",
                "errors": errors,
                "sha256": sha256,
            })),
        )
            .into_response(),
    }
}
