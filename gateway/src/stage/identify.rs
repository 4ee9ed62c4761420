//! Identify: who sent the request, derived once, before any check.
//!
//! [`RequestParts`] reads what the request says about its sender: the TCP peer, the
//! headers (forwarding headers among them), the gateway's own JA4 when TLS ends here,
//! and the bearer token, which is turned into a keyed hash at once and looked up in
//! the account book. [`RequestParts::identity`] then derives, under the policy in
//! force, the one [`Identity`] every later check reads: client address behind trusted
//! proxies, route class, TLS and HTTP fingerprints, account key. `gateway explain`
//! derives its keys with the same two calls.

use std::net::IpAddr;
use std::sync::Arc;

use pingora::http::RequestHeader;
use policy::accounts::{AccountInfo, SourceKeys, TokenHash};
use policy::{Identity, Policy, Request};
use smallvec::SmallVec;

use crate::tracker::Tracker;

/// Most headers a request carries; requests with more still work (one allocation).
const INLINE_HEADERS: usize = 24;

/// What one request says about its sender, borrowed from its header.
pub struct RequestParts<'s> {
    /// HTTP method.
    pub method: &'s str,
    /// Path (query string included; routing ignores it).
    pub path: &'s str,
    /// The TCP peer.
    pub peer: IpAddr,
    /// `HTTP/1.1` and friends.
    pub version: &'static str,
    /// Headers in wire order (values that are not visible ASCII are left out).
    pub headers: SmallVec<[(&'s str, &'s str); INLINE_HEADERS]>,
    /// JA4 of the client's ClientHello when TLS ends at this gateway.
    pub own_tls_fp: Option<Arc<str>>,
    /// The temporary account the bearer token belongs to, when the gateway made it.
    pub account: Option<AccountInfo>,
    /// The account id when known, else a keyed hash of the token (see
    /// [`account_key`]): what the access log names the caller by. Limits keyed on
    /// `account` see only a known account (see [`RequestParts::request`]).
    pub account_key: Option<String>,
}

impl<'s> RequestParts<'s> {
    /// Reads `req` from `peer`; `tracker` hashes the bearer token and finds its account.
    pub fn read(
        req: &'s RequestHeader,
        peer: IpAddr,
        own_tls_fp: Option<Arc<str>>,
        tracker: Option<&Tracker>,
    ) -> Self {
        let mut headers = SmallVec::new();
        for (name, value) in req.headers.iter() {
            if let Ok(value) = value.to_str() {
                headers.push((name.as_str(), value));
            }
        }
        let token = tracker.zip(bearer_token(req)).map(|(t, token)| t.hash_token(token));
        let account = tracker.zip(token.as_ref()).and_then(|(t, h)| t.account_for(h));
        let account_key = account_key(account.as_ref(), token.as_ref());
        RequestParts {
            method: req.method.as_str(),
            path: req.uri.path(),
            peer,
            version: version_str(req.version),
            headers,
            own_tls_fp,
            account,
            account_key,
        }
    }

    /// The request as the policy engine reads it. Its `account` is the id of an account
    /// the gateway knows, never an unknown token: a token nobody issued is free to
    /// make up, so counting by it would give every made-up token a fresh budget and
    /// a table slot. Without a known account the `account` key part is absent and the
    /// limit's `missing` setting counts the request (by default by client address).
    pub fn request(&self) -> Request<'_> {
        Request {
            method: self.method,
            path: self.path,
            peer: self.peer,
            http_version: self.version,
            headers: &self.headers,
            tls_fp: self.own_tls_fp.as_deref(),
            account: self.account.as_ref().map(|a| a.account_id.as_str()),
        }
    }

    /// The identity every check of this request reads, under `policy`.
    pub fn identity<'a>(&'a self, policy: &'a Policy) -> Identity<'a> {
        Identity::derive(policy, self.request())
    }
}

/// The source keys of a provisioning request: the same client address and
/// fingerprints the rate limits saw.
pub fn source_keys(id: &Identity<'_>) -> SourceKeys {
    SourceKeys::new(id.client_ip, Some(id.http_fp().to_string()), id.tls_fp.map(str::to_string))
}

/// The key limits on `account` count by: the account id when the gateway knows the
/// token's account, else `tok_` and the first 16 bytes of the token's keyed hash (so
/// unknown tokens are told apart without ever being stored).
pub fn account_key(account: Option<&AccountInfo>, token: Option<&TokenHash>) -> Option<String> {
    match (account, token) {
        (Some(info), _) => Some(info.account_id.clone()),
        (None, Some(h)) => Some(format!("tok_{}", hex::encode(&h.as_bytes()[..16]))),
        (None, None) => None,
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

#[cfg(test)]
#[path = "identify_tests.rs"]
mod tests;
