//! The Pingora `ProxyHttp` service: the request path through the gateway.
//!
//! Phases, in the order Pingora runs them for one request:
//! - [`ProxyHttp::request_filter`]: decide. The policy runs here, before any upstream
//!   work; a refusal is written by [`crate::respond`] (keep-alive, length-delimited) and
//!   `Ok(true)` tells Pingora the response is complete.
//! - [`ProxyHttp::upstream_peer`]: hand out a clone of the peer built at start-up.
//! - [`ProxyHttp::upstream_request_filter`]: rewrite Host, append X-Forwarded-For.
//! - [`ProxyHttp::response_filter`]: add the RateLimit headers to forwarded answers.
//! - [`ProxyHttp::fail_to_proxy`]: upstream down or slow becomes a 502/504 v4 envelope.
//! - [`ProxyHttp::logging`]: account the finished request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::config::UpstreamConfig;
use crate::enforce::{Enforcer, Verdict};
use crate::envelope::{self, codes};
use crate::respond;

/// Per-request state carried between phases.
#[derive(Default)]
pub struct RequestCtx {
    /// Headers to add to the forwarded answer (RateLimit, RateLimit-Policy).
    pub response_headers: Vec<(&'static str, String)>,
    /// Set when the request entered `request_filter`, to count it as in flight.
    in_flight: Option<InFlightGuard>,
    /// When the request started, for the access log.
    started: Option<Instant>,
    /// Accounting facts gathered while deciding, used in `response_filter`/`logging`.
    pub accounting: crate::enforce::Accounting,
}

/// Counts requests in flight so that shutdown can wait for them (see [`crate::shutdown`]).
#[derive(Clone, Default)]
pub struct InFlight(Arc<InFlightInner>);

#[derive(Default)]
struct InFlightInner {
    count: AtomicU64,
    /// Woken when the count drops to zero.
    idle: tokio::sync::Notify,
}

impl InFlight {
    /// Requests currently being handled.
    pub fn current(&self) -> u64 {
        self.0.count.load(Ordering::Acquire)
    }

    /// Waits until no request is in flight.
    pub async fn idle(&self) {
        loop {
            // Register before looking, so a drop to zero in between is not missed.
            let woken = self.0.idle.notified();
            if self.current() == 0 {
                return;
            }
            woken.await;
        }
    }

    fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

struct InFlightGuard(Arc<InFlightInner>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The gateway proxy.
pub struct DeployGateway {
    peer: HttpPeer,
    host_header: String,
    enforcer: Arc<Enforcer>,
    in_flight: InFlight,
}

impl DeployGateway {
    /// Builds the proxy; the upstream peer is built once here and cloned per request.
    pub fn new(upstream: &UpstreamConfig, enforcer: Arc<Enforcer>, in_flight: InFlight) -> Self {
        let mut peer = HttpPeer::new(upstream.addr, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.total_connection_timeout = Some(upstream.connect_timeout);
        peer.options.read_timeout = Some(upstream.read_timeout);
        peer.options.write_timeout = Some(upstream.write_timeout);
        peer.options.verify_cert = upstream.verify_cert;
        // Drop pooled connections before a typical server closes them for idleness
        // (hyper's default is 30 s), which would otherwise fail the next request sent
        // on them.
        peer.options.idle_timeout = Some(upstream.pool_idle_timeout);
        peer.options.verify_hostname = upstream.verify_cert;
        DeployGateway { peer, host_header: upstream.host_header.clone(), enforcer, in_flight }
    }
}

#[async_trait]
impl ProxyHttp for DeployGateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    /// Runs once the request header is read. Returns `Ok(true)` when the gateway has
    /// answered itself (a refusal), `Ok(false)` to forward.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.in_flight = Some(self.in_flight.enter());
        ctx.started = Some(Instant::now());
        let verdict = self.enforcer.decide(session, ctx);
        if ctx.accounting.route == Some(policy::RouteClass::ProvisionChallenge) {
            // Keep a copy of the (tiny) body so a challenge request that meets a pooled
            // upstream connection the platform just closed can be sent again.
            session.as_downstream_mut().enable_retry_buffering();
        }
        match verdict {
            Verdict::Forward => Ok(false),
            Verdict::Refuse(refusal) => {
                respond::write_refusal(session, &refusal).await?;
                Ok(true)
            }
        }
    }

    /// Holds and checks bodies the policy must see whole (asset manifests, proof-of-work
    /// solutions); an error here aborts the request and `fail_to_proxy` writes the
    /// refusal recorded in the context.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.enforcer.on_request_body(body, end_of_stream, ctx)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request.insert_header("host", self.host_header.as_str())?;
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let client = addr.ip().to_string();
            let value = match upstream_request.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prior) if !prior.is_empty() => format!("{prior}, {client}"),
                _ => client,
            };
            upstream_request.insert_header("x-forwarded-for", value)?;
        }
        self.enforcer.prepare_upstream_request(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        for (name, value) in ctx.response_headers.drain(..) {
            upstream_response.insert_header(name, value)?;
        }
        let http2 = session.as_downstream().is_http2();
        self.enforcer.on_response_header(upstream_response, http2, ctx)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<std::time::Duration>> {
        self.enforcer.on_response_body(body, end_of_stream, ctx);
        Ok(None)
    }

    /// Decides whether a failed upstream attempt is retried. Pingora retries only
    /// idempotent methods on reused connections; a challenge request is also safe to
    /// resend (asking for another challenge changes nothing), and it is what most often
    /// meets a pooled connection the platform closed while it was idle.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let safe_to_resend = session.req_header().method.is_idempotent()
            || ctx.accounting.route == Some(policy::RouteClass::ProvisionChallenge);
        if !safe_to_resend || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Self::CTX) -> FailToProxy {
        if let Some(refusal) = ctx.accounting.refusal.take() {
            // A check on the request body refused it; the upstream request was aborted.
            session.set_keepalive(None);
            let written = respond::write_refusal(session, &refusal).await;
            return FailToProxy { error_code: if written.is_ok() { refusal.status } else { 0 }, can_reuse_downstream: false };
        }
        let (status, code, message) = classify_failure(e);
        if status == 0 {
            // The client is gone; nothing to write.
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        let body = envelope::error_body(code, message);
        // Pingora does not reuse a downstream connection after an upstream failure
        // (whatever `can_reuse_downstream` says), so say so honestly: a client that
        // saw `Connection: keep-alive` would send its next request into a closed
        // socket. Failures are rare; refusals, the common case, keep the connection.
        session.set_keepalive(None);
        if let Err(write_err) = respond::write_json(session, status, None, &[], body).await {
            tracing::debug!(error = %write_err, "could not write the error answer");
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    /// What Pingora puts in its own error logs about a request: method and path, with
    /// claim secrets redacted and no query string (the default prints the whole URI).
    fn request_summary(&self, session: &Session, ctx: &Self::CTX) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, loggable_path(req.uri.path(), ctx.accounting.route))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if tracing::enabled!(tracing::Level::DEBUG) {
            let elapsed_us = ctx.started.map_or(0, |s| s.elapsed().as_micros());
            // Tokens travel in the Authorization header, which is not logged; a claim
            // path carries the claim secret, which is redacted.
            let req = session.req_header();
            tracing::debug!(
                method = %req.method,
                path = %loggable_path(req.uri.path(), ctx.accounting.route),
                status,
                elapsed_us,
                route = ctx.accounting.route.map(|r| r.as_str()),
                account = ctx.accounting.account.as_deref(),
                pow_hashes = ctx.accounting.pow_hashes,
                error = e.map(|e| e.etype().as_str()),
                "request"
            );
        }
        ctx.in_flight.take();
    }
}

/// The request path as it may be logged: claim paths (`/claim/{secret}`) hold the
/// secret that owns an account, so everything after the claim prefix is replaced.
pub fn loggable_path(path: &str, route: Option<policy::RouteClass>) -> std::borrow::Cow<'_, str> {
    let claim_at = path.find("/claim/");
    match (route, claim_at) {
        (_, Some(at)) => format!("{}/claim/{{redacted}}", &path[..at]).into(),
        (Some(policy::RouteClass::Claim), None) => "{claim path redacted}".into(),
        _ => path.into(),
    }
}

/// Maps a proxy failure to (status, envelope code, message). Status 0: the client left.
pub fn classify_failure(e: &Error) -> (u16, u32, &'static str) {
    const UNREACHABLE: &str = "The deploy API is unreachable from the gateway right now; nothing was changed. Retry in a few seconds.";
    const TIMEOUT: &str = "The deploy API did not answer the gateway in time; the request may or may not have been applied. Check before retrying.";
    match e.etype() {
        ErrorType::HTTPStatus(code) => (*code, codes::BAD_REQUEST, "The request could not be handled."),
        ErrorType::ConnectTimedout => (504, codes::UPSTREAM_TIMEOUT, UNREACHABLE),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => (504, codes::UPSTREAM_TIMEOUT, TIMEOUT),
        _ => match e.esource() {
            ErrorSource::Upstream => (502, codes::UPSTREAM_UNREACHABLE, UNREACHABLE),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => (0, 0, ""),
                _ => (400, codes::BAD_REQUEST, "The gateway could not read this request."),
            },
            ErrorSource::Internal | ErrorSource::Unset => {
                (502, codes::UPSTREAM_UNREACHABLE, UNREACHABLE)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{loggable_path, InFlight};
    use policy::RouteClass;

    #[test]
    fn claim_secrets_never_reach_the_log() {
        assert_eq!(loggable_path("/claim/s3cr3t", Some(RouteClass::Claim)), "/claim/{redacted}");
        assert_eq!(loggable_path("/x/claim/s3cr3t/confirm", None), "/x/claim/{redacted}");
        assert_eq!(loggable_path("/custom-claim-route/s3cr3t", Some(RouteClass::Claim)), "{claim path redacted}");
        assert_eq!(loggable_path("/client/v4/accounts/a/queues", Some(RouteClass::DeployWrite)), "/client/v4/accounts/a/queues");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_wakes_when_the_last_request_finishes() {
        let in_flight = InFlight::default();
        in_flight.idle().await; // nothing in flight: returns at once
        let first = in_flight.enter();
        let second = in_flight.enter();
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one request is still in flight");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken by the last request")
            .expect("waiter");
        assert_eq!(in_flight.current(), 0);
    }
}
