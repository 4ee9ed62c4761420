//! The bridge between Pingora's session and the policy engine.
//!
//! Everything here runs on the hot path, so it gathers request facts without copying
//! more than the policy needs, and keeps secrets (the bearer token) out of every
//! structure that could be logged.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use crate::proxy::RequestCtx;

/// What `request_filter` should do with a request.
pub enum Verdict {
    /// Send it on to the deploy API.
    Forward,
    /// Answer it with this refusal.
    Refuse {
        /// HTTP status (429, 403).
        status: u16,
        /// v4 envelope error code.
        code: u32,
        /// What the user reads in wrangler's output.
        message: String,
        /// Extra headers (Retry-After, RateLimit, RateLimit-Policy).
        headers: Vec<(&'static str, String)>,
    },
}

/// Facts collected while deciding that the response phases need.
#[derive(Default)]
pub struct Accounting {}

/// Applies the policy to requests and accounts for their answers.
#[derive(Default)]
pub struct Enforcer {}

impl Enforcer {
    /// An enforcer that forwards everything (no policy configured).
    pub fn passthrough() -> Self {
        Enforcer {}
    }

    /// Decides a request in `request_filter`.
    pub fn decide(&self, _session: &Session, _ctx: &mut RequestCtx) -> Verdict {
        Verdict::Forward
    }

    /// Adjusts the request sent upstream.
    pub fn prepare_upstream_request(&self, _req: &mut RequestHeader, _ctx: &mut RequestCtx) {}

    /// Sees the upstream's answer header.
    pub fn on_response_header(&self, _resp: &ResponseHeader, _ctx: &mut RequestCtx) {}

    /// Sees chunks of the upstream's answer body.
    pub fn on_response_body(&self, _body: &mut Option<Bytes>, _end: bool, _ctx: &mut RequestCtx) {}

    /// Called once per finished request.
    pub fn on_finished(&self, _status: u16, _ctx: &mut RequestCtx) {}
}
