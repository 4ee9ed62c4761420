//! The Pingora `ProxyHttp` service: the phase table of a request through the gateway.
//!
//! Each phase only dispatches to the stage that does the work ([`crate::stage`]):
//!
//! | phase (Pingora runs them in this order) | when it runs | what it returns | stage |
//! | --- | --- | --- | --- |
//! | [`request_filter`](ProxyHttp::request_filter) | the request header is read | `Ok(true)`: the gateway answered (a refusal); `Ok(false)`: forward | [`recall`], [`fleet_limits`] (fleet mode), [`identify`], [`decide`]; [`respond`] writes a refusal |
//! | [`request_body_filter`](ProxyHttp::request_body_filter) | each chunk of the request body | `Err`: refused after the body (see `fail_to_proxy`) | [`body`] |
//! | [`upstream_peer`](ProxyHttp::upstream_peer) | before connecting upstream | the peer built at start-up | — |
//! | [`upstream_request_filter`](ProxyHttp::upstream_request_filter) | before the header goes upstream | `Err` aborts | Host, X-Forwarded-For; [`body::prepare_upstream`] |
//! | [`response_filter`](ProxyHttp::response_filter) | the answer's header arrived | `Err` aborts | RateLimit headers; [`learn::on_header`] |
//! | [`response_body_filter`](ProxyHttp::response_body_filter) | each chunk of the answer | — | [`learn::on_body`] |
//! | [`error_while_proxy`](ProxyHttp::error_while_proxy) | an upstream attempt failed | the error, retry or not | — |
//! | [`fail_to_proxy`](ProxyHttp::fail_to_proxy) | the request cannot be proxied | the status written | [`respond`]: the body refusal, or 502/504 |
//! | [`logging`](ProxyHttp::logging) | the request is done | — | the access log; metrics and span |
//!
//! Every phase also notes what it saw for the request's metrics and span
//! ([`observe`](crate::metrics::observe)): one call each, no logic here.
//!
//! [`recall`]: crate::stage::recall
//! [`fleet_limits`]: crate::stage::fleet_limits
//! [`identify`]: crate::stage::identify
//! [`decide`]: crate::stage::decide
//! [`fleet_limits`]: crate::stage::fleet_limits
//! [`body`]: crate::stage::body
//! [`body::prepare_upstream`]: crate::stage::body::prepare_upstream
//! [`learn::on_header`]: crate::stage::learn::on_header
//! [`learn::on_body`]: crate::stage::learn::on_body
//! [`respond`]: crate::respond

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};
use policy::RouteClass;

use crate::access_log::{self, loggable_path};
use crate::config::UpstreamConfig;
use crate::enforce::Enforcer;
use crate::inflight::InFlight;
use crate::metrics::observe;
use crate::respond;
use crate::stage::context::RequestCtx;
use crate::stage::{body, decide, fleet_limits, learn, recall};

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

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.in_flight = Some(self.in_flight.enter());
        ctx.started = Some(Instant::now());
        observe::started(ctx);
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let own_tls_fp = crate::tls::tls_fingerprint(session);
        recall::recall(&self.enforcer, session.req_header()).await;
        let req = session.req_header();
        let began = Instant::now();
        let verdict =
            match fleet_limits::check(&self.enforcer, req, peer, own_tls_fp.clone(), ctx).await {
                Ok(()) => decide::decide(&self.enforcer, req, peer, own_tls_fp, ctx),
                Err(refusal) => Err(refusal),
            };
        observe::decided(ctx, began, &verdict);
        if ctx.route == Some(RouteClass::ProvisionChallenge) {
            // Keep a copy of the (tiny) body so a challenge request that meets a pooled
            // upstream connection the platform just closed can be sent again.
            session.as_downstream_mut().enable_retry_buffering();
        }
        match verdict {
            Ok(()) => Ok(false),
            Err(refusal) => {
                respond::write_refusal(session, &refusal).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        body::on_chunk(&self.enforcer, body, end_of_stream, ctx)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
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
            let value =
                match upstream_request.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
                {
                    Some(prior) if !prior.is_empty() => format!("{prior}, {client}"),
                    _ => client,
                };
            upstream_request.insert_header("x-forwarded-for", value)?;
        }
        observe::upstream_sent(ctx);
        body::prepare_upstream(upstream_request, ctx)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        observe::upstream_answered(ctx, upstream_response.status.as_u16());
        for (name, value) in ctx.response_headers.drain(..) {
            upstream_response.insert_header(name, value)?;
        }
        let http2 = session.as_downstream().is_http2();
        learn::on_header(upstream_response, http2, ctx)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<std::time::Duration>> {
        learn::on_body(&self.enforcer, body, end_of_stream, ctx);
        Ok(None)
    }

    /// Pingora retries only idempotent methods on reused connections; a challenge
    /// request is also safe to resend (asking for another challenge changes nothing),
    /// and it is what most often meets a pooled connection the platform closed while
    /// it was idle.
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
            || ctx.route == Some(RouteClass::ProvisionChallenge);
        if !safe_to_resend || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        observe::failed(ctx, ctx.refusal.as_ref().map(|r| r.why), e);
        let error_code = match ctx.refusal.take() {
            // A check on the request body refused it; the upstream request was aborted.
            Some(refusal) => {
                crate::stage::verdict::refused("body", &refusal, ctx);
                respond::write_body_refusal(session, &refusal).await
            }
            None => respond::write_failure(session, e).await,
        };
        FailToProxy { error_code, can_reuse_downstream: false }
    }

    /// What Pingora puts in its own error logs about a request: method and path, with
    /// claim secrets redacted and no query string (the default prints the whole URI).
    fn request_summary(&self, session: &Session, ctx: &Self::CTX) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, loggable_path(req.uri.path(), ctx.route))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        // Counted before the access-log line, so a reader of the log sees it counted.
        observe::finished(ctx, session.response_written().map_or(0, |r| r.status.as_u16()));
        access_log::log_request(session, e, ctx);
        ctx.in_flight.take();
    }
}
