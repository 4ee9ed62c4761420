//! The admin API's bearer token.
//!
//! Every operator call carries `Authorization: Bearer <token>` (`[admin] token` or
//! `GATEWAY_ADMIN_TOKEN`). The gateway keeps only the token's SHA-256 and compares
//! digests in constant time, so neither the comparison's timing nor a memory dump of
//! the state gives the token away. Without a configured token every operator call is
//! refused: the listener then serves only the platform's signed events.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The shortest admin token accepted (a guessable token on a listener is no lock).
pub const MIN_TOKEN_CHARS: usize = 16;

/// The configured token, as its digest.
#[derive(Clone)]
pub struct AdminToken(Option<[u8; 32]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "AdminToken(set)" } else { "AdminToken(none)" })
    }
}

impl AdminToken {
    /// The token operators must present; `None` refuses every operator call.
    pub fn new(token: Option<&str>) -> Self {
        AdminToken(token.map(digest))
    }

    /// Whether `presented` is the token (constant time in the token's content).
    pub fn accepts(&self, presented: &str) -> bool {
        let Some(want) = &self.0 else { return false };
        let got = digest(presented);
        want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Whether a token is configured.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 401 with a JSON error that says what to send (never echoing what was sent).
pub fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"gateway-admin\"")],
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Middleware of every operator route: the request goes on only with the token.
pub async fn require_token(
    State(token): State<Arc<AdminToken>>,
    req: Request,
    next: Next,
) -> Response {
    if !token.is_set() {
        return unauthorized(
            "the admin API has no token configured: set [admin] token or GATEWAY_ADMIN_TOKEN",
        );
    }
    match bearer(&req) {
        Some(t) if token.accepts(t) => next.run(req).await,
        Some(_) => unauthorized("wrong admin token"),
        None => unauthorized("missing admin token: send Authorization: Bearer <token>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_token_is_accepted() {
        let t = AdminToken::new(Some("correct-horse-battery-staple"));
        assert!(t.accepts("correct-horse-battery-staple"));
        assert!(!t.accepts("correct-horse-battery-stapl"));
        assert!(!t.accepts(""));
        let none = AdminToken::new(None);
        assert!(!none.accepts(""), "no token configured accepts nothing");
        assert_eq!(format!("{t:?}"), "AdminToken(set)", "Debug never shows the digest");
    }
}
