//! What the stages of one request hand each other ([`RequestCtx`], Pingora's `CTX`).
//!
//! `decide` fills it in `request_filter`; `body` reads the plan for the request body;
//! `learn` reads what to capture from the answer; `logging` reads the facts for the
//! access log. Nothing in it is a secret: the bearer token is never stored, only the
//! account it maps to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use policy::accounts::SourceKeys;
use policy::platform::AssetUploadScanner;
use policy::quota::{Classified, ResourceKind};
use policy::RouteClass;

use super::refusal::{Refusal, Why};
use crate::held::HeldBytes;
use crate::inflight::InFlightGuard;

/// How the request body is handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Streamed through untouched.
    #[default]
    Stream,
    /// Held until complete, checked, then forwarded unchanged (asset manifests).
    Hold,
    /// Held until complete and possibly rewritten (account creation: the gateway's
    /// extra proof-of-work checkpoints are removed); forwarded chunked.
    Rewrite,
}

/// What to learn from the answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Capture {
    /// Nothing.
    #[default]
    None,
    /// A challenge answer to remember in the challenge book, made harder when the
    /// source has debt.
    Challenge {
        /// The debt the difficulty is computed from.
        debt: u64,
    },
    /// A new temporary account.
    Created,
    /// The id of a resource the platform names.
    CreatedId(ResourceKind),
    /// The upload token of an asset-upload session.
    UploadSession,
}

/// The client keys of the request, for the access log (no secrets: the account key is
/// an account id or a keyed hash).
#[derive(Debug, Default, Clone)]
pub struct LoggedKeys {
    /// Client address after trusted-proxy handling.
    pub client_ip: Option<std::net::IpAddr>,
    /// HTTP fingerprint, when a check computed it.
    pub http_fp: Option<String>,
    /// TLS fingerprint (own JA4 or a trusted proxy's header).
    pub tls_fp: Option<String>,
    /// Account key the limits counted by.
    pub account_key: Option<String>,
}

/// Per-request state carried between phases.
#[derive(Default)]
pub struct RequestCtx {
    /// Set when the request entered `request_filter`, to count it as in flight.
    pub in_flight: Option<InFlightGuard>,
    /// When the request started, for the access log.
    pub started: Option<Instant>,
    /// Route class of the request.
    pub route: Option<RouteClass>,
    /// Keys the request was judged by.
    pub keys: LoggedKeys,
    /// The temporary account the token belongs to, when known.
    pub account: Option<String>,
    /// Headers to add to the forwarded answer (RateLimit, RateLimit-Policy).
    pub response_headers: Vec<(&'static str, String)>,
    /// A refusal raised after `request_filter` (while reading the body).
    pub refusal: Option<Refusal>,
    /// Proof-of-work hashes the gateway spent verifying this request.
    pub pow_hashes: u64,
    /// The creating source, for provisioning calls.
    pub source: Option<SourceKeys>,
    /// The unclaimed-cleanup debt the source's harder proof-of-work is computed from,
    /// found by the budget check (0 when it owes none); on account creation the body
    /// stage judges the solution by it.
    pub pow_debt: u64,
    /// The resource operation of an account call.
    pub op: Option<Classified>,
    /// How the request body is handled.
    pub body_plan: BodyPlan,
    /// Request body held so far.
    pub req_body: Vec<u8>,
    /// What to learn from the answer.
    pub capture: Capture,
    /// The answer's status.
    pub resp_status: u16,
    /// Answer body captured so far.
    pub resp_body: Vec<u8>,
    /// The quota this call holds until it is answered (given back on drop).
    pub hold: Option<super::reserve::QuotaHold>,
    /// Body size, held bytes and asset-file measurements.
    pub limits: BodyLimits,
    /// What the phases noted for the request's metrics and span.
    pub obs: RequestObs,
    /// What the checks decided, for the access and audit logs.
    pub verdict: Verdict,
    /// The rate-limit decision the fleet's shared store made, which the `limits`
    /// check applies instead of deciding locally.
    pub fleet_decision: Option<policy::Decision>,
}

/// What the body stage tracks for the limits of one request.
#[derive(Default)]
pub struct BodyLimits {
    /// `max_body_bytes` of the policy in force when the request was decided.
    pub max_body: Option<u64>,
    /// Body bytes seen so far.
    pub seen: u64,
    /// This request's share of the held-bytes budget.
    pub held: Option<HeldBytes>,
    /// The measurement of an asset upload's files.
    pub scan: Option<AssetScan>,
    /// Declared size per content hash of an asset-upload session's manifest, kept for
    /// the session its answer opens.
    pub declared: Option<Arc<BTreeMap<String, u64>>>,
}

/// An asset upload being measured.
pub struct AssetScan {
    pub(super) scanner: AssetUploadScanner,
    pub(super) declared: Arc<BTreeMap<String, u64>>,
}

/// Facts about one request for its metrics and span. Nothing in it is a secret: the
/// rule is a policy rule's name, the rest are times and statuses.
#[derive(Debug, Default)]
pub struct RequestObs {
    /// Wall-clock start, for the span's start time.
    pub started_at: Option<SystemTime>,
    /// How long identify and the checks took.
    pub decision: Option<Duration>,
    /// The rule that decided: the refusing or allowing rule, else the most
    /// constrained limit that passed.
    pub rule: Option<String>,
    /// Why the gateway refused (at the decision or while reading the body).
    pub refused: Option<Why>,
    /// When the request header went upstream.
    pub upstream_sent: Option<Instant>,
    /// From sending upstream to the answer's header.
    pub upstream: Option<Duration>,
    /// The upstream's status.
    pub upstream_status: Option<u16>,
    /// The upstream could not be reached or did not answer in time.
    pub upstream_failed: bool,
}

/// The verdict on one request.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Unix microseconds when the request was judged: the clock a replay drives.
    pub at_us: u64,
    /// Position among the requests this process judged (replay's tie-break).
    pub seq: u64,
    /// The request's header names in order, lowercase (recorded only for the access
    /// log file: rules can match on a header's presence).
    pub header_names: Vec<String>,
    /// The normalised path, claim secrets redacted.
    pub path: String,
    /// The path's spelling was refused as non-canonical (400).
    pub noncanonical: bool,
    /// The temporary account the token belongs to, when the gateway knows it.
    pub account: Option<String>,
    /// The policy rule that decided (an allow, deny or refusing limit rule), if any.
    pub rule: Option<String>,
    /// The check that refused (`framing`, `limits`, `budget`, …, `body`).
    pub refused_by: Option<&'static str>,
    /// What refused, for the audit log: a rule name, `budget`, `quota:queues`, …
    pub refused_rule: Option<String>,
    /// The key the refusal counted by: (kind, value).
    pub key: Option<(String, String)>,
    /// Why it was refused.
    pub why: Option<Why>,
    /// The request reached the fair-share check, whose share is larger for a source
    /// whose record is net claims: whether this one's is (a replay asks the same).
    pub claimer: Option<bool>,
}

impl RequestCtx {
    /// The route label of a request (`unclassified`: no policy, or refused before the
    /// route was known).
    pub fn route_label(&self) -> &'static str {
        self.route.map_or("unclassified", |r| r.as_str())
    }
}
