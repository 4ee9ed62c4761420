//! The bridge between Pingora's session and the policy engine.
//!
//! Everything here runs on the hot path: it borrows the request's parts instead of
//! copying them, and keeps secrets out of everything it builds. The bearer token is
//! turned into a keyed hash ([`TokenHasher`]) the moment it is read, and only that
//! hash reaches the policy engine as the `account` key.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use policy::{Decision, Engine, Outcome, Request};

use crate::envelope::codes;
use crate::proxy::RequestCtx;
use crate::token::TokenHasher;

/// Most headers a request carries; requests with more still work (one allocation).
const INLINE_HEADERS: usize = 24;

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
        /// What the user reads.
        message: String,
        /// Extra headers (Retry-After, RateLimit, RateLimit-Policy).
        headers: Vec<(&'static str, String)>,
    },
}

/// Facts collected while deciding that the response phases need.
#[derive(Default)]
pub struct Accounting {
    /// Route class of the request, for logs.
    pub route: Option<&'static str>,
}

/// Applies the policy to requests and accounts for their answers.
pub struct Enforcer {
    engine: Option<Arc<Engine>>,
    policy_file: Option<PathBuf>,
    tokens: TokenHasher,
}

impl Enforcer {
    /// An enforcer that forwards everything (no policy configured).
    pub fn passthrough() -> Self {
        Enforcer { engine: None, policy_file: None, tokens: TokenHasher::random() }
    }

    /// Loads and compiles the policy file; errors are located (`FILE:LINE:COL: ...`).
    pub fn from_policy_file(path: PathBuf) -> Result<Self, policy::PolicyErrors> {
        let compiled = policy::compile_file(&path)?;
        Ok(Enforcer { engine: Some(Arc::new(Engine::new(compiled))), policy_file: Some(path), tokens: TokenHasher::random() })
    }

    /// The engine, when a policy is loaded.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    /// The policy file, when one is loaded.
    pub fn policy_file(&self) -> Option<&PathBuf> {
        self.policy_file.as_ref()
    }

    /// Decides a request in `request_filter`.
    pub fn decide(&self, session: &Session, ctx: &mut RequestCtx) -> Verdict {
        let Some(engine) = &self.engine else { return Verdict::Forward };
        let req = session.req_header();
        let Some(peer) = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()) else {
            // Unix-socket or unknown peers are not served by this gateway's listeners;
            // forwarding without a decision would bypass the policy, so refuse.
            return refusal(403, codes::DENIED, "The gateway could not tell where this request came from.".into(), Vec::new());
        };
        let mut headers: smallvec::SmallVec<[(&str, &str); INLINE_HEADERS]> = smallvec::SmallVec::new();
        for (name, value) in req.headers.iter() {
            if let Ok(value) = value.to_str() {
                headers.push((name.as_str(), value));
            }
        }
        let account_hash = bearer_token(req).map(|t| self.tokens.hash(t));
        let request = Request {
            method: req.method.as_str(),
            path: req.uri.path(),
            peer,
            http_version: version_str(req.version),
            headers: &headers,
            tls_fp: None,
            account: account_hash.as_deref(),
        };
        let decision = engine.decide(&request);
        ctx.accounting.route = Some(decision.route.as_str());
        if !decision.shadow.is_empty() {
            tracing::info!(
                client = %decision.client_ip,
                route = decision.route.as_str(),
                rules = ?decision.shadow,
                "shadow rules would have refused this request"
            );
        }
        into_verdict(decision, ctx)
    }

    /// Adjusts the request sent upstream: nothing to do today; identity headers from
    /// untrusted peers are ignored by the policy, not rewritten.
    pub fn prepare_upstream_request(&self, _req: &mut RequestHeader, _ctx: &mut RequestCtx) {}

    /// Sees the upstream's answer header.
    pub fn on_response_header(&self, _resp: &ResponseHeader, _ctx: &mut RequestCtx) {}

    /// Sees chunks of the upstream's answer body.
    pub fn on_response_body(&self, _body: &mut Option<Bytes>, _end: bool, _ctx: &mut RequestCtx) {}

    /// Called once per finished request.
    pub fn on_finished(&self, _status: u16, _ctx: &mut RequestCtx) {}
}

fn refusal(status: u16, code: u32, message: String, headers: Vec<(&'static str, String)>) -> Verdict {
    Verdict::Refuse { status, code, message, headers }
}

fn into_verdict(decision: Decision, ctx: &mut RequestCtx) -> Verdict {
    let headers = decision.ratelimit_headers();
    match decision.outcome {
        Outcome::Allow => {
            ctx.response_headers = headers;
            Verdict::Forward
        }
        Outcome::Refuse { status } => {
            let code = if status == 403 { codes::DENIED } else { codes::RATE_LIMITED };
            tracing::debug!(client = %decision.client_ip, rule = ?decision.rule, status, "refused");
            refusal(status, code, decision.message, headers)
        }
    }
}

/// The bearer token of the request, if any. Never logged, never stored.
pub fn bearer_token(req: &RequestHeader) -> Option<&str> {
    let value = req.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// `HTTP/1.1` and friends without allocating.
pub fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}
