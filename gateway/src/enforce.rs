//! The bridge between Pingora's session and the policy crate.
//!
//! Everything here runs on the hot path: it borrows the request's parts instead of
//! copying them, and keeps secrets out of everything it builds. The bearer token is
//! turned into a keyed hash the moment it is read; only the hash (or the account id it
//! maps to) reaches the policy engine, the account book and the logs.
//!
//! Three kinds of checks run before anything is forwarded:
//! 1. rate limits and lists ([`policy::Engine::decide`]);
//! 2. for provisioning: the source's cleanup budget and its live/daily account limits;
//! 3. for calls of a known temporary account: its resource quotas.
//!
//! Some checks need a body (the asset manifest, the proof-of-work solution): those
//! requests are held in `request_body_filter` until the body is complete, and a
//! refusal found there is written by `fail_to_proxy` from [`Accounting::refusal`].

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use policy::accounts::SourceKeys;
use policy::ledger::BudgetAction;
use policy::quota::{classify, created_id, Classified, ResourceKind, ResourceOp};
use policy::{Decision, Engine, Outcome, Request, RouteClass};

use crate::envelope::codes;
use crate::proxy::RequestCtx;
use crate::tracker::{unix_now, Tracker};

/// Most headers a request carries; requests with more still work (one allocation).
const INLINE_HEADERS: usize = 24;

/// Largest request body held for inspection (asset manifests, PoW solutions).
pub const MAX_HELD_BODY: usize = 4 * 1024 * 1024;

/// Largest response body captured (provisioning answers, created ids).
const MAX_CAPTURED_BODY: usize = 1024 * 1024;

/// A refusal, ready to write.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status (429, 403).
    pub status: u16,
    /// v4 envelope error code.
    pub code: u32,
    /// What the user reads (also the reason phrase: wrangler prints that).
    pub message: String,
    /// Extra headers (Retry-After, RateLimit, RateLimit-Policy).
    pub headers: Vec<(&'static str, String)>,
}

/// What `request_filter` should do with a request.
pub enum Verdict {
    /// Send it on to the deploy API.
    Forward,
    /// Answer it with this refusal.
    Refuse(Refusal),
}

/// How the request body is handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum BodyPlan {
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
enum Capture {
    /// Nothing.
    #[default]
    None,
    /// A challenge to make harder for a source with this much debt.
    Challenge { debt: u64 },
    /// A new temporary account.
    Created,
    /// The id of a resource the platform names.
    CreatedId(ResourceKind),
}

/// Facts collected while deciding that later phases need.
#[derive(Default)]
pub struct Accounting {
    /// Route class of the request.
    pub route: Option<RouteClass>,
    /// The temporary account the token belongs to, when known.
    pub account: Option<String>,
    /// A refusal raised after `request_filter` (while reading the body).
    pub refusal: Option<Refusal>,
    /// Proof-of-work hashes the gateway spent verifying this request.
    pub pow_hashes: u64,
    source: Option<SourceKeys>,
    op: Option<Classified>,
    body_plan: BodyPlan,
    req_body: Vec<u8>,
    capture: Capture,
    resp_status: u16,
    resp_body: Vec<u8>,
}

/// Applies the policy to requests and accounts for their answers.
pub struct Enforcer {
    engine: Option<Arc<Engine>>,
    policy_file: Option<PathBuf>,
    tracker: Option<Arc<Tracker>>,
}

impl Enforcer {
    /// An enforcer that forwards everything (no policy configured).
    pub fn passthrough() -> Self {
        Enforcer { engine: None, policy_file: None, tracker: None }
    }

    /// Loads and compiles the policy file; errors are located (`FILE:LINE:COL: ...`).
    /// `ledger_file`, when given, persists the cleanup-cost ledger (JSON lines);
    /// `journal_file` the account book (who created which account).
    pub fn from_policy_file(path: PathBuf, ledger_file: Option<PathBuf>, journal_file: Option<PathBuf>) -> Result<Self, String> {
        let compiled = policy::compile_file(&path).map_err(|e| format!("invalid policy:\n{e}"))?;
        let tracker = Tracker::new(&compiled, ledger_file, journal_file)
            .map_err(|e| format!("cannot open the ledger or the account journal: {e}"))?;
        Ok(Enforcer {
            engine: Some(Arc::new(Engine::new(compiled))),
            policy_file: Some(path),
            tracker: Some(Arc::new(tracker)),
        })
    }

    /// The engine, when a policy is loaded.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    /// The account tracker, when a policy is loaded.
    pub fn tracker(&self) -> Option<&Arc<Tracker>> {
        self.tracker.as_ref()
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
            // Unix-socket or unknown peers: forwarding without a decision would bypass
            // the policy, so refuse.
            return refuse(403, codes::DENIED, "The gateway could not tell where this request came from.".into(), Vec::new());
        };
        let mut headers: smallvec::SmallVec<[(&str, &str); INLINE_HEADERS]> = smallvec::SmallVec::new();
        for (name, value) in req.headers.iter() {
            if let Ok(value) = value.to_str() {
                headers.push((name.as_str(), value));
            }
        }
        let token_hash = bearer_token(req).zip(self.tracker.as_ref()).map(|(t, tr)| tr.hash_token(t));
        let account = token_hash.as_ref().zip(self.tracker.as_ref()).and_then(|(h, tr)| tr.account_for(h));
        // Count by the account id when the gateway knows it, else by the token's hash.
        let account_key = match (&account, &token_hash) {
            (Some(info), _) => Some(info.account_id.clone()),
            (None, Some(h)) => Some(format!("tok_{}", hex_prefix(h.as_bytes()))),
            _ => None,
        };
        // JA4 of the client's TLS ClientHello when TLS ends at this gateway.
        let tls_fp: Option<Arc<str>> = tls_fingerprint(session);
        let version = version_str(req.version);
        let request = Request {
            method: req.method.as_str(),
            path: req.uri.path(),
            peer,
            http_version: version,
            headers: &headers,
            tls_fp: tls_fp.as_deref(),
            account: account_key.as_deref(),
        };
        let decision = engine.decide(&request);
        ctx.accounting.route = Some(decision.route);
        if !decision.shadow.is_empty() {
            tracing::info!(
                client = %decision.client_ip,
                route = decision.route.as_str(),
                rules = ?decision.shadow,
                "shadow rules would have refused this request"
            );
        }
        let client_ip = decision.client_ip;
        let route = decision.route;
        let verdict = into_verdict(decision, ctx);
        if matches!(verdict, Verdict::Refuse(_)) {
            return verdict;
        }
        let Some(tracker) = &self.tracker else { return verdict };
        let policy = engine.current_policy();
        let now = unix_now();
        let acc = &mut ctx.accounting;
        match route {
            RouteClass::ProvisionChallenge | RouteClass::ProvisionCreate => {
                let http_fp = policy::http_fingerprint(version, &headers, &[]);
                let source = SourceKeys::new(client_ip, Some(http_fp), tls_fp.as_deref().map(str::to_string));
                if let Some(breach) = tracker.ledger().over_budget(&source, now, policy.budgets()) {
                    match breach.action {
                        BudgetAction::Refuse => {
                            return refuse(
                                429,
                                codes::BUDGET,
                                breach.message,
                                vec![("Retry-After", breach.retry_after_secs.to_string())],
                            )
                        }
                        BudgetAction::HarderPow if route == RouteClass::ProvisionChallenge => {
                            let mut debt = tracker.ledger().source_debt(&source, now, policy.budgets().window_secs);
                            if breach.key == policy::accounts::SourceKey::Global {
                                // Over the platform-wide budget everyone pays more, the
                                // further over, the more; a source's own debt adds to it.
                                debt = debt.saturating_add(breach.debt.saturating_sub(breach.budget)).saturating_add(1);
                            }
                            acc.capture = Capture::Challenge { debt };
                        }
                        BudgetAction::HarderPow => {}
                    }
                }
                if route == RouteClass::ProvisionCreate {
                    if let Err(refusal) = policy.account_limits().check(tracker.book(), &source, now) {
                        return refuse(
                            429,
                            codes::RATE_LIMITED,
                            refusal.message,
                            vec![("Retry-After", refusal.retry_after_secs.to_string())],
                        );
                    }
                    acc.body_plan = BodyPlan::Rewrite;
                    acc.capture = Capture::Created;
                }
                acc.source = Some(source);
            }
            _ => {
                let Some(info) = account else { return verdict };
                let op = classify(req.method.as_str(), req.uri.path());
                acc.account = Some(info.account_id.clone());
                if op.op == ResourceOp::Other {
                    return verdict;
                }
                let declared = req
                    .headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(len) = declared {
                    if let Err(refusal) = policy.quotas().check_body_size(len) {
                        return refuse(403, codes::QUOTA, refusal.message, Vec::new());
                    }
                }
                if op.needs_body() {
                    acc.body_plan = BodyPlan::Hold;
                } else if let Err(refusal) = tracker.check_quota(&policy, &info.account_id, &op) {
                    return refuse(403, codes::QUOTA, refusal.message, Vec::new());
                }
                if let ResourceOp::Create { kind, name: None } = op.op {
                    acc.capture = Capture::CreatedId(kind);
                }
                acc.op = Some(op);
            }
        }
        verdict
    }

    /// Runs on each chunk of the request body: holds the body when a check needs it
    /// whole, and checks (and for account creation, trims) it once complete. An error
    /// aborts the request; the refusal is in `ctx.accounting.refusal`.
    pub fn on_request_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let acc = &mut ctx.accounting;
        if acc.body_plan == BodyPlan::Stream {
            return Ok(());
        }
        // Held chunks are replaced by an empty chunk, not `None`: Pingora reads `None`
        // as the end of the body and would finish the upstream request early.
        if let Some(chunk) = body.replace(Bytes::new()) {
            if acc.req_body.len() + chunk.len() > MAX_HELD_BODY {
                return abort(acc, refusal_of(403, codes::QUOTA, format!(
                    "The request body is larger than the {} MiB the gateway inspects for this call.",
                    MAX_HELD_BODY / (1024 * 1024)
                )));
            }
            acc.req_body.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            return Ok(());
        }
        let held = std::mem::take(&mut acc.req_body);
        let (Some(tracker), Some(engine)) = (&self.tracker, &self.engine) else {
            *body = Some(Bytes::from(held));
            return Ok(());
        };
        let policy = engine.current_policy();
        match acc.body_plan {
            BodyPlan::Rewrite => {
                let mut rng = rand::thread_rng();
                let spot = policy.pow().spot_checks;
                match policy::pow::trim_create_body(&held, tracker.challenges(), unix_now(), spot, &mut rng) {
                    Ok(Some((trimmed, hashes))) => {
                        acc.pow_hashes = hashes;
                        tracker.note_pow_verify(hashes);
                        tracing::debug!(hashes, "verified the extra proof-of-work segments");
                        *body = Some(Bytes::from(trimmed));
                    }
                    Ok(None) => *body = Some(Bytes::from(held)),
                    Err(e) => {
                        return abort(acc, refusal_of(403, codes::POW, format!(
                            "The proof-of-work solution failed the gateway's check: {e}. Run the deploy again to get a new challenge."
                        )))
                    }
                }
            }
            BodyPlan::Hold => {
                if let (Some(op), Some(account)) = (acc.op.as_mut(), acc.account.as_deref()) {
                    if let Err(e) = op.attach_body(&held) {
                        return abort(acc, refusal_of(403, codes::QUOTA, format!("The asset manifest could not be read: {}", e.0)));
                    }
                    if let Err(refusal) = tracker.check_quota(&policy, account, op) {
                        return abort(acc, refusal_of(403, codes::QUOTA, refusal.message));
                    }
                }
                *body = Some(Bytes::from(held));
            }
            BodyPlan::Stream => {}
        }
        Ok(())
    }

    /// Adjusts the request sent upstream: a rewritten body has a new length, and an
    /// answer the gateway must read is asked for uncompressed.
    pub fn prepare_upstream_request(&self, req: &mut RequestHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
        let acc = &ctx.accounting;
        if acc.body_plan == BodyPlan::Rewrite {
            req.remove_header("content-length");
            req.insert_header("transfer-encoding", "chunked")?;
        }
        if acc.capture != Capture::None {
            req.remove_header("accept-encoding");
        }
        Ok(())
    }

    /// Sees the answer's header: counts resource operations that need no body, and
    /// prepares a challenge answer for rewriting.
    /// `http2`: the client speaks HTTP/2, whose frames carry the end of a body without
    /// a length or chunked coding.
    pub fn on_response_header(&self, resp: &mut ResponseHeader, http2: bool, ctx: &mut RequestCtx) -> pingora::Result<()> {
        let acc = &mut ctx.accounting;
        acc.resp_status = resp.status.as_u16();
        let ok = resp.status.is_success();
        if !ok {
            acc.capture = Capture::None;
            return Ok(());
        }
        if let (Some(tracker), Some(op), Some(account)) = (&self.tracker, &acc.op, &acc.account) {
            if !matches!(acc.capture, Capture::CreatedId(_)) {
                tracker.commit(account, op, None);
            }
        }
        if matches!(acc.capture, Capture::Challenge { .. }) {
            // The rewritten challenge has another length. HTTP/1.1 gets it chunked
            // (a response with neither length nor chunking would end keep-alive).
            resp.remove_header("content-length");
            if !http2 {
                resp.insert_header("transfer-encoding", "chunked")?;
            }
        }
        Ok(())
    }

    /// Sees the answer's body: captures what the gateway must learn, rewrites a
    /// challenge made harder.
    pub fn on_response_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) {
        let acc = &mut ctx.accounting;
        if acc.capture == Capture::None {
            return;
        }
        let rewriting = matches!(acc.capture, Capture::Challenge { .. });
        if let Some(chunk) = body.as_ref() {
            if acc.resp_body.len() + chunk.len() <= MAX_CAPTURED_BODY {
                acc.resp_body.extend_from_slice(chunk);
            } else if !rewriting {
                // Too large to be what we expect: stop capturing, pass it on.
                acc.capture = Capture::None;
                acc.resp_body = Vec::new();
                return;
            }
            if rewriting {
                *body = None;
            }
        }
        if !end {
            return;
        }
        let captured = std::mem::take(&mut acc.resp_body);
        let Some(tracker) = &self.tracker else { return };
        let now = unix_now();
        match std::mem::take(&mut acc.capture) {
            Capture::Challenge { debt } => {
                let out = self
                    .engine
                    .as_ref()
                    .and_then(|e| harder_challenge(&e.current_policy(), tracker, &captured, debt, now))
                    .unwrap_or(captured);
                *body = Some(Bytes::from(out));
            }
            Capture::Created => {
                if let Some(source) = acc.source.take() {
                    if let Some(id) = tracker.record_created(&captured, source.clone(), now) {
                        tracing::info!(account = %id, creator = %source.ip, "temporary account created");
                    }
                }
            }
            Capture::CreatedId(kind) => {
                if let (Some(op), Some(account)) = (&acc.op, &acc.account) {
                    tracker.commit(account, op, created_id(kind, &captured).as_deref());
                }
            }
            Capture::None => {}
        }
    }
}

/// The JA4 of the connection when TLS ends at this gateway (computed in `tls.rs`).
fn tls_fingerprint(session: &Session) -> Option<Arc<str>> {
    crate::tls::tls_fingerprint(session)
}

/// Rewrites a challenge answer to ask for more checkpoints, and remembers it.
fn harder_challenge(policy: &policy::Policy, tracker: &Tracker, answer: &[u8], debt: u64, now: u64) -> Option<Vec<u8>> {
    let challenge = policy::pow::parse_challenge(answer).ok()?;
    let k_prime = policy.pow().difficulty_for(debt, challenge.k, challenge.g);
    if k_prime <= challenge.k {
        return None;
    }
    let rewritten = policy::pow::rewrite_challenge(answer, k_prime).ok()?;
    tracker.challenges().remember(&challenge.challenge_token, challenge.k, k_prime, challenge.g, now);
    tracing::info!(debt, k = challenge.k, k_prime, g = challenge.g, "proof-of-work made harder for a source in debt");
    Some(rewritten)
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn refusal_of(status: u16, code: u32, message: String) -> Refusal {
    Refusal { status, code, message, headers: Vec::new() }
}

fn refuse(status: u16, code: u32, message: String, headers: Vec<(&'static str, String)>) -> Verdict {
    Verdict::Refuse(Refusal { status, code, message, headers })
}

fn abort(acc: &mut Accounting, refusal: Refusal) -> pingora::Result<()> {
    let status = refusal.status;
    acc.refusal = Some(refusal);
    Err(pingora::Error::explain(pingora::ErrorType::HTTPStatus(status), "refused after reading the request body"))
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
            refuse(status, code, decision.message, headers)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(auth: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/client/v4/accounts/x/workers/subdomain", None).expect("request");
        if let Some(value) = auth {
            req.insert_header("authorization", value).expect("header");
        }
        req
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_garbage_is_ignored() {
        assert_eq!(bearer_token(&request_with(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer_token(&request_with(Some("bearer  abc "))), Some("abc"));
        assert_eq!(bearer_token(&request_with(Some("Basic abc"))), None);
        assert_eq!(bearer_token(&request_with(Some("Bearer "))), None);
        assert_eq!(bearer_token(&request_with(Some("Bearer"))), None);
        assert_eq!(bearer_token(&request_with(None)), None);
    }

    #[test]
    fn versions_map_without_allocating() {
        assert_eq!(version_str(http::Version::HTTP_11), "HTTP/1.1");
        assert_eq!(version_str(http::Version::HTTP_2), "HTTP/2");
    }

    #[test]
    fn token_hash_prefix_is_hex_and_short() {
        assert_eq!(hex_prefix(&[0xab; 32]), "ab".repeat(16));
    }
}
