//! The two unauthenticated provisioning calls: the proof-of-work challenge
//! and temporary-account creation.
//!
//! wrangler never retries these and treats any non-2xx as fatal, so every
//! refusal carries a distinct code and a message saying what to do next.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::envelope::{ok, ApiError, ApiResult};
use crate::platform::rfc3339;
use crate::pow::{decode_checkpoints, PowError};
use crate::Platform;

/// v4 code: terms of service not accepted.
pub const CODE_TERMS_NOT_ACCEPTED: u32 = 1010;

impl From<PowError> for ApiError {
    fn from(e: PowError) -> Self {
        let status = match e {
            PowError::Malformed(_) | PowError::UnknownToken => StatusCode::BAD_REQUEST,
            PowError::WrongSolution => StatusCode::FORBIDDEN,
            PowError::Reused => StatusCode::CONFLICT,
            PowError::Expired => StatusCode::GONE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// `POST /client/v4/provisioning/previews/challenge`
pub(crate) async fn challenge(State(p): State<Arc<Platform>>) -> Response {
    let now = p.now();
    let c = p.challenges.lock().issue(now);
    ok(c)
}

/// `POST /client/v4/provisioning/previews`
pub(crate) async fn create(State(p): State<Arc<Platform>>, body: Option<Json<Value>>) -> ApiResult {
    let Some(Json(body)) = body else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    if body.get("acceptTermsOfService").and_then(Value::as_str) != Some("yes") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            CODE_TERMS_NOT_ACCEPTED,
            "acceptTermsOfService must be \"yes\": accept the Terms of Service and Privacy Policy to create a temporary account",
        ));
    }
    let token = body
        .get("challengeToken")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::from(PowError::Malformed("missing challengeToken".into())))?;
    let cps_value = body.get("solution").and_then(|s| s.get("checkpoints")).ok_or_else(|| {
        ApiError::from(PowError::Malformed("missing solution.checkpoints".into()))
    })?;
    let checkpoints = decode_checkpoints(cps_value)?;
    let now = p.now();
    p.challenges.lock().redeem(token, &checkpoints, now)?;

    let acct = p.provision_account();
    let mut result = json!({
        "account": {
            "id": acct.account_id,
            "name": acct.name,
            "apiToken": acct.api_token,
            "expiresAt": rfc3339(acct.expires_at),
        },
        "claim": {
            "url": acct.claim_url,
            "expiresAt": rfc3339(acct.claim_expires_at),
        },
    });
    // This emulator knows no events; it acknowledges any event code so
    // wrangler's `--event-code` path can be exercised.
    if body.get("eventCode").and_then(Value::as_str).is_some() {
        result["eventCodeAccepted"] = json!(true);
    }
    Ok(ok(result))
}
