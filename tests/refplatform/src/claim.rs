//! The claim page: what a human opens from the claim URL.
//!
//! On the real platform this is a dashboard flow behind a login; here a GET
//! shows a one-button form and the POST claims. Answers are HTML unless the
//! client asks for JSON (`Accept: application/json`), which tests use.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::platform::{rfc3339, ClaimError};
use crate::Platform;

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn refusal(e: ClaimError, json_wanted: bool) -> Response {
    let status = match e {
        ClaimError::Unknown => StatusCode::NOT_FOUND,
        ClaimError::Expired => StatusCode::GONE,
    };
    if json_wanted {
        (status, Json(json!({"claimed": false, "error": e.to_string()}))).into_response()
    } else {
        (
            status,
            Html(format!(
                "<!doctype html><title>Claim</title><h1>Cannot claim</h1><p>{}</p>",
                escape(&e.to_string())
            )),
        )
            .into_response()
    }
}

/// `GET /claim/{secret}`
pub(crate) async fn page(
    State(p): State<Arc<Platform>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    match p.claimable(&secret) {
        Ok(acct) => {
            if wants_json(&headers) {
                return Json(json!({"account_id": acct.id, "expiresAt": rfc3339(acct.expires_at)}))
                    .into_response();
            }
            // The form posts back to this same URL, so the secret never
            // appears in the page body.
            Html(format!(
                "<!doctype html><title>Claim temporary account</title>\
                 <h1>Claim {name}</h1>\
                 <p>Account <code>{id}</code> expires at {exp} unless claimed.</p>\
                 <form method=\"post\"><button type=\"submit\">Claim this account</button></form>",
                name = escape(&acct.name),
                id = escape(&acct.id),
                exp = rfc3339(acct.expires_at),
            ))
            .into_response()
        }
        Err(e) => refusal(e, wants_json(&headers)),
    }
}

/// `POST /claim/{secret}`
pub(crate) async fn submit(
    State(p): State<Arc<Platform>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    match p.claim(&secret) {
        Ok(acct) => {
            if wants_json(&headers) {
                Json(json!({"claimed": true, "account_id": acct.id, "status": acct.status}))
                    .into_response()
            } else {
                Html(format!(
                    "<!doctype html><title>Claimed</title><h1>Claimed</h1>\
                     <p>Account <code>{}</code> is yours and will not expire.</p>",
                    escape(&acct.id)
                ))
                .into_response()
            }
        }
        Err(e) => refusal(e, wants_json(&headers)),
    }
}
