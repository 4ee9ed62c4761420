//! Cloudflare v4 response envelopes.
//!
//! Every API answer, success or failure, has the shape
//! `{"success", "errors", "messages", "result"}`. wrangler reads the first
//! error's numeric `code` to decide what happened (10007 = "not found,
//! create it", 10000 = "authentication"), so the codes matter as much as
//! the HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

/// v4 code for authentication/authorization failures.
pub const CODE_AUTH: u32 = 10000;
/// v4 code for "script/service not found" (wrangler treats it as "create").
pub const CODE_NOT_FOUND: u32 = 10007;
/// v4 code for a malformed request.
pub const CODE_BAD_REQUEST: u32 = 10001;
/// v4 code used for routes this emulator does not implement.
pub const CODE_NO_ROUTE: u32 = 7003;
/// v4 code for "resource already exists".
pub const CODE_CONFLICT: u32 = 10014;
/// A limit of temporary accounts refused the request.
pub const CODE_LIMIT: u32 = 10037;

/// A create refused by one of the account's limits (`what` and `limit` name it).
pub fn limit_reached(what: &str, limit: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        CODE_LIMIT,
        format!("A temporary account may have at most {limit} {what}; claim the account to lift the limit."),
    )
}

/// A successful envelope around `result`.
pub fn ok<T: Serialize>(result: T) -> Response {
    Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": result,
    }))
    .into_response()
}

/// A successful envelope with list pagination info, as list endpoints
/// return.
pub fn ok_list<T: Serialize>(items: Vec<T>) -> Response {
    let count = items.len();
    Json(json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": items,
        "result_info": {"page": 1, "per_page": count.max(20), "count": count, "total_count": count, "total_pages": 1},
    }))
    .into_response()
}

/// A failed API call: HTTP status plus one v4 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status to answer with.
    pub status: StatusCode,
    /// v4 error code.
    pub code: u32,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// Build an error.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 with code 10001.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, CODE_BAD_REQUEST, message)
    }

    /// 404 with code 10007.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, CODE_NOT_FOUND, message)
    }

    /// 401 with code 10000: no usable credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            CODE_AUTH,
            "Authentication error: missing, invalid or expired API token",
        )
    }

    /// 403 with code 10000: valid token, wrong account.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            CODE_AUTH,
            "Authentication error: token is not valid for this account",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": null,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Result type of API handlers.
pub type ApiResult = Result<Response, ApiError>;
