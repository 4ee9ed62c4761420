//! What the gateway writes back: outcome, user-facing message, retry hint, headers.

use crate::lang::route::RouteClass;
use std::net::IpAddr;

/// Forward or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forward upstream.
    Allow,
    /// Answer with this status (429 for a limit, 403 for a deny rule).
    Refuse {
        /// HTTP status to answer with.
        status: u16,
    },
}

/// One request as the gateway sees it. Cheap to build: everything is borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Path, query string allowed (it is ignored for routing).
    pub path: &'a str,
    /// The TCP peer.
    pub peer: IpAddr,
    /// `HTTP/1.1`, `HTTP/2`, ... (as Pingora's `Version` Debug prints it, or `1.1`).
    pub http_version: &'a str,
    /// Headers in wire order, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// JA4 computed by the gateway itself, if it terminates TLS.
    pub tls_fp: Option<&'a str>,
    /// Opaque account key (e.g. a hash of the bearer token), if the request carries one.
    pub account: Option<&'a str>,
}

/// The limit closest to refusing, for `RateLimit` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaInfo {
    /// Rule name (the policy name in the header).
    pub name: String,
    /// Requests per window (`q`).
    pub quota: u32,
    /// Window in seconds (`w`).
    pub window_secs: u64,
    /// Requests left now (`r`).
    pub remaining: u32,
    /// Seconds until the budget is full again, or until retry when refused (`t`).
    pub reset_secs: u64,
}

/// The engine's verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Forward or refuse.
    pub outcome: Outcome,
    /// The request's route class.
    pub route: RouteClass,
    /// The client address the decision was made for.
    pub client_ip: IpAddr,
    /// The rule that decided (allow/deny/limit), if any did.
    pub rule: Option<String>,
    /// User-facing text for the error envelope; empty when allowed.
    pub message: String,
    /// Seconds to wait, for `Retry-After` (429 only).
    pub retry_after_secs: Option<u64>,
    /// Shadow rules that would have refused this request.
    pub shadow: Vec<String>,
    /// The most constrained limit that applied (refusing one when refused).
    pub quota: Option<QuotaInfo>,
    /// The refusing limit's key, as (kind as written, e.g. `ipv6/48+http_fp`; bucket,
    /// e.g. `ipv6=2001:db8::/48|http_fp=hf1_…`): what the audit log names a refusal by.
    pub key: Option<(String, String)>,
}

impl Decision {
    /// Refuses with 400 a protected path spelt in a non-canonical form (`why` says
    /// how). The path is not repeated: claim paths carry secrets.
    pub(crate) fn refuse_non_canonical(&mut self, why: &str) {
        self.outcome = Outcome::Refuse { status: 400 };
        self.message = format!(
            "The request path is not in canonical form: {why}, which servers resolve differently, so the gateway cannot tell which endpoint it names. Send the plain path (no `.` or `..` segments, no `;` parameters, no percent-escapes in the route), as wrangler does."
        );
    }

    /// Is the request to be forwarded?
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// HTTP status to answer with when refused.
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Allow => None,
            Outcome::Refuse { status } => Some(status),
        }
    }

    /// Headers per the IETF httpapi RateLimit headers draft, plus `Retry-After` on 429:
    /// `RateLimit-Policy: "name";q=10;w=3600` and `RateLimit: "name";r=2;t=342`.
    pub fn ratelimit_headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(3);
        if let Some(q) = &self.quota {
            let name = q.name.replace(['"', '\\'], "");
            out.push(("RateLimit-Policy", format!("\"{name}\";q={};w={}", q.quota, q.window_secs)));
            out.push(("RateLimit", format!("\"{name}\";r={};t={}", q.remaining, q.reset_secs)));
        }
        if let Some(s) = self.retry_after_secs {
            out.push(("Retry-After", s.to_string()));
        }
        out
    }
}
