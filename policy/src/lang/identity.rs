//! Who sent a request, derived once.
//!
//! Every check that keys on the client (rate limits, account limits, budgets, the
//! challenge book) must see the same client: the same address behind the same trusted
//! proxies, the same TLS fingerprint (a trusted proxy's header or the gateway's own
//! JA4), the same HTTP fingerprint computed with the same excluded headers. Deriving
//! these in two places once let a trusted proxy's `cf-ja4` count for rate limits but
//! not for account limits; an [`Identity`] is derived once per request and every later
//! stage reads it.

use std::cell::OnceCell;
use std::net::IpAddr;

use crate::lang::decision::Request;
use crate::lang::fingerprint::http_fingerprint;
use crate::lang::model::Policy;
use crate::lang::route::RouteClass;

/// The client of one request as the policy sees it. Cheap: everything is borrowed
/// from the request and the policy, and the HTTP fingerprint is computed on first use.
#[derive(Debug)]
pub struct Identity<'a> {
    req: Request<'a>,
    /// The TCP peer, IPv4-mapped IPv6 folded to IPv4.
    pub peer: IpAddr,
    /// The client address: the peer, or what a trusted proxy says it forwarded for.
    pub client_ip: IpAddr,
    /// The peer is one of the policy's trusted proxies.
    pub via_trusted_proxy: bool,
    /// The request's route class under the policy's `[routes]`, of its normalised
    /// path (what a normalising upstream would serve).
    pub route: RouteClass,
    /// Why the path's spelling is refused (400), when it names a protected route in a
    /// form servers resolve differently (dot segments, `;` parameters, a route spelt
    /// with percent-escapes).
    pub path_problem: Option<&'static str>,
    /// The TLS fingerprint: a trusted proxy's header, else the gateway's own JA4.
    pub tls_fp: Option<&'a str>,
    ip_header: &'a str,
    tls_fp_header: Option<&'a str>,
    http_fp: OnceCell<String>,
}

impl<'a> Identity<'a> {
    /// Derives the identity of `req` under `policy`.
    pub fn derive(policy: &'a Policy, req: Request<'a>) -> Self {
        let client = &policy.client;
        let peer = req.peer.to_canonical();
        let (route, path_problem) = policy.routes.classify_checked(req.method, req.path);
        Identity {
            peer,
            client_ip: client.client_ip(peer, req.headers),
            via_trusted_proxy: client.is_trusted(peer),
            route,
            path_problem,
            tls_fp: client.tls_fp(peer, req.headers, req.tls_fp),
            ip_header: client.ip_header_name(),
            tls_fp_header: client.tls_fp_header.as_deref(),
            http_fp: OnceCell::new(),
            req,
        }
    }

    /// The identity with its HTTP fingerprint already known: `gateway replay` rebuilds
    /// requests from an access log, which records the fingerprint the gateway computed
    /// but not the header values it was computed from.
    pub fn with_http_fp(self, http_fp: String) -> Self {
        let _ = self.http_fp.set(http_fp);
        self
    }

    /// The request it was derived from.
    pub fn request(&self) -> &Request<'a> {
        &self.req
    }

    /// The opaque account key (the account id, or a keyed hash of an unknown token).
    pub fn account(&self) -> Option<&'a str> {
        self.req.account
    }

    /// Whether a check has asked for the HTTP fingerprint yet (it is computed once, on
    /// first use).
    pub fn http_fp_computed(&self) -> bool {
        self.http_fp.get().is_some()
    }

    /// The HTTP fingerprint (`hf1_…`). The headers a trusted proxy adds (the client
    /// address and TLS fingerprint headers) are left out, so a client is the same
    /// whether it comes directly or through the proxy.
    pub fn http_fp(&self) -> &str {
        self.http_fp.get_or_init(|| {
            let mut extra = [self.ip_header, ""];
            let n = match self.tls_fp_header {
                Some(h) => {
                    extra[1] = h;
                    2
                }
                None => 1,
            };
            http_fingerprint(self.req.http_version, self.req.headers, &extra[..n])
        })
    }
}
