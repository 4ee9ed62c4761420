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
use serde_json::{json, Value};

use crate::accounts::AccountSnapshot;
use crate::platform::{rfc3339, ClaimError};
use crate::Platform;

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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

/// Answer a claim call: JSON for clients that ask for it (tests), HTML
/// for people, and a refusal in the same format the success would have.
fn respond(
    headers: &HeaderMap,
    outcome: Result<AccountSnapshot, ClaimError>,
    as_json: impl FnOnce(&AccountSnapshot) -> Value,
    as_html: impl FnOnce(&AccountSnapshot) -> String,
) -> Response {
    let json_wanted = wants_json(headers);
    match outcome {
        Ok(acct) if json_wanted => Json(as_json(&acct)).into_response(),
        Ok(acct) => Html(as_html(&acct)).into_response(),
        Err(e) => refusal(e, json_wanted),
    }
}

fn page_json(acct: &AccountSnapshot) -> Value {
    json!({"account_id": acct.id, "expiresAt": rfc3339(acct.expires_at)})
}

/// The form posts back to this same URL, so the secret never appears in
/// the page body.
fn page_html(acct: &AccountSnapshot) -> String {
    format!(
        "<!doctype html><title>Claim temporary account</title>\
         <h1>Claim {name}</h1>\
         <p>Account <code>{id}</code> expires at {exp} unless claimed.</p>\
         <form method=\"post\"><button type=\"submit\">Claim this account</button></form>",
        name = escape(&acct.name),
        id = escape(&acct.id),
        exp = rfc3339(acct.expires_at),
    )
}

fn claimed_json(acct: &AccountSnapshot) -> Value {
    json!({"claimed": true, "account_id": acct.id, "status": acct.status})
}

fn claimed_html(acct: &AccountSnapshot) -> String {
    format!(
        "<!doctype html><title>Claimed</title><h1>Claimed</h1>\
         <p>Account <code>{}</code> is yours and will not expire.</p>",
        escape(&acct.id)
    )
}

/// `GET /claim/{secret}`
pub(crate) async fn page(
    State(p): State<Arc<Platform>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, p.claimable(&secret), page_json, page_html)
}

/// `POST /claim/{secret}`
pub(crate) async fn submit(
    State(p): State<Arc<Platform>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(&headers, p.claim(&secret), claimed_json, claimed_html)
}
