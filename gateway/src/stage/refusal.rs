//! The one refusal type of every check, and the one place that maps a reason to its
//! HTTP status and v4 envelope code.
//!
//! wrangler retries 429s and gives up on 403s, so the choice matters: limits that pass
//! with time are 429 with `Retry-After`; refusals that waiting does not fix (a deny
//! rule, a quota, a bad proof-of-work solution) are 403.

use crate::envelope::codes;

/// Why the gateway refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A rate limit of the policy.
    RateLimited,
    /// A deny rule or list.
    Denied,
    /// The source's cleanup budget is spent.
    Budget,
    /// The source has as many live or recent temporary accounts as it may.
    AccountLimit,
    /// A resource quota of the temporary account, or a body over the size limit.
    Quota,
    /// The proof-of-work solution failed the gateway's check.
    ProofOfWork,
    /// The request cannot be judged (no client address, malformed framing).
    BadRequest,
    /// The gateway has no room to hold this request's body now.
    Busy,
    /// An operator blocked the client's address, network or fingerprint for a while.
    Blocked,
    /// The fleet's shared store is unreachable and the limit is `on_store_error = "closed"`.
    StoreUnavailable,
}

impl Why {
    /// (HTTP status, envelope code).
    pub fn status_and_code(self) -> (u16, u32) {
        match self {
            Why::RateLimited => (429, codes::RATE_LIMITED),
            Why::AccountLimit => (429, codes::RATE_LIMITED),
            Why::Budget => (429, codes::BUDGET),
            Why::Denied => (403, codes::DENIED),
            Why::Quota => (403, codes::QUOTA),
            Why::ProofOfWork => (403, codes::POW),
            Why::BadRequest => (400, codes::BAD_REQUEST),
            Why::Busy => (503, codes::BUSY),
            Why::Blocked => (403, codes::DENIED),
            Why::StoreUnavailable => (503, codes::STORE_UNAVAILABLE),
        }
    }

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::RateLimited => "rate_limited",
            Why::AccountLimit => "account_limit",
            Why::Budget => "budget",
            Why::Denied => "denied",
            Why::Quota => "quota",
            Why::ProofOfWork => "proof_of_work",
            Why::BadRequest => "bad_request",
            Why::Busy => "busy",
            Why::Blocked => "blocked",
            Why::StoreUnavailable => "store_unavailable",
        }
    }
}

/// A refusal, ready to write.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Why: decides the status and the envelope code.
    pub why: Why,
    /// What the user reads (also the reason phrase: wrangler prints that).
    pub message: String,
    /// Extra headers (Retry-After, RateLimit, RateLimit-Policy).
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    /// A refusal with no extra headers.
    pub fn new(why: Why, message: impl Into<String>) -> Self {
        Refusal { why, message: message.into(), headers: Vec::new() }
    }

    /// A refusal that may be retried after `secs` (`Retry-After`).
    pub fn retry_after(why: Why, message: impl Into<String>, secs: u64) -> Self {
        Refusal { why, message: message.into(), headers: vec![("Retry-After", secs.to_string())] }
    }

    /// HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.why.status_and_code().0
    }

    /// The v4 envelope's error code.
    pub fn code(&self) -> u32 {
        self.why.status_and_code().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_fixes_429s_and_nothing_else() {
        for why in [Why::RateLimited, Why::AccountLimit, Why::Budget] {
            assert_eq!(why.status_and_code().0, 429, "{why:?}");
        }
        for why in [Why::Denied, Why::Quota, Why::ProofOfWork, Why::Blocked] {
            assert_eq!(why.status_and_code().0, 403, "{why:?}");
        }
        let r = Refusal::retry_after(Why::Budget, "spent", 30);
        assert_eq!(
            (r.status(), r.code(), r.headers.clone()),
            (429, codes::BUDGET, vec![("Retry-After", "30".into())])
        );
    }
}
