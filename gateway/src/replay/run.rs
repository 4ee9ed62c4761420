//! Judging recorded requests again under a candidate policy, on the log's own clock.
//!
//! The candidate's engine runs on a manual governor clock moved to each line's
//! timestamp, so a limit of `6/hour` sees the recorded hour however fast the replay
//! runs. Requests are replayed in the order the gateway judged them (`ts`, then
//! `seq`), not the order their lines were written (at the end of each request).
//!
//! What is judged again is the policy engine: the `[[rule]]` limits, allow/deny
//! rules and lists, under the candidate's `[routes]`, `[prefixes]` and keys, and the
//! candidate's `[fair_share]` ceiling (with each source's recorded claimer standing).
//! The other checks keep their recorded outcome, because their input is not in the
//! access log: framing and any check before the engine, and the budget,
//! account-limit, quota and body checks (they read the ledger and the account book). So a request the
//! recording refused at one of those stays refused unless the candidate's rules
//! refuse it first, and a path refused as non-canonical stays refused.

use std::time::Duration;

use policy::clock::FakeRelativeClock;
use policy::{Engine, FairVerdict, Identity, Policy, Request};

use super::parse::Recorded;

/// The replay's clock starts a day in, so no limit's arithmetic starts at zero.
const CLOCK_START: Duration = Duration::from_secs(86_400);

/// One side of a comparison: what was (or would be) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Refused (by anything).
    pub refused: bool,
    /// What refused: a rule name, or the check (`budget`, `framing`, …); for an
    /// allowed request, `None`.
    pub by: Option<String>,
}

impl Outcome {
    fn allow() -> Self {
        Outcome { refused: false, by: None }
    }

    fn refuse(by: impl Into<String>) -> Self {
        Outcome { refused: true, by: Some(by.into()) }
    }
}

/// A recorded request with both outcomes.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The request.
    pub request: Recorded,
    /// What the gateway did.
    pub recorded: Outcome,
    /// What the candidate policy would do.
    pub candidate: Outcome,
    /// The candidate's engine judged it (false: it kept its recorded outcome).
    pub replayed: bool,
}

/// The fair-share check's name, as the recording names its refusals.
const FAIR_SHARE: &str = "fair-share";

/// Label of a refusal by the engine that named no rule (a non-canonical path).
const PATH_REFUSAL: &str = "(non-canonical path)";

/// What the recording says was done.
pub fn recorded_outcome(r: &Recorded) -> Outcome {
    match r.refused_by.as_deref() {
        None => Outcome::allow(),
        Some("limits") => Outcome::refuse(r.rule.clone().unwrap_or_else(|| PATH_REFUSAL.into())),
        Some(check) => Outcome::refuse(check),
    }
}

/// Judges `records` (any order; sorted here) under `policy`.
pub fn run(policy: Policy, mut records: Vec<Recorded>) -> Vec<Judged> {
    records.sort_by_key(|r| (r.at_us, r.seq, r.line));
    let clock = FakeRelativeClock::default();
    clock.advance(CLOCK_START);
    let engine = Engine::with_clock(policy, clock.clone());
    let policy = engine.current_policy();
    let start = records.first().map_or(0, |r| r.at_us);
    let mut elapsed_us: i128 = 0;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        // Wall clocks can step back; the replay's clock only moves forward.
        let at = r.at_us - start;
        if at > elapsed_us {
            clock.advance(Duration::from_micros((at - elapsed_us) as u64));
            elapsed_us = at;
        }
        let recorded = recorded_outcome(&r);
        if before_engine(r.refused_by.as_deref()) || r.noncanonical {
            out.push(Judged { candidate: recorded.clone(), recorded, request: r, replayed: false });
            continue;
        }
        let candidate = judge(&engine, &policy, &r, &recorded);
        out.push(Judged { request: r, recorded, candidate, replayed: true });
    }
    out
}

/// The checks the gateway runs after the engine (`limits`), in order. A refusal by any
/// other check (`framing`, or one this replay does not know) happened before the
/// engine saw the request, so the replay does not show it to the candidate's engine
/// either and keeps the recorded refusal.
const AFTER_ENGINE: [&str; 5] = ["budget", "account-limits", "resources", FAIR_SHARE, "body"];

fn before_engine(refused_by: Option<&str>) -> bool {
    refused_by.is_some_and(|check| check != "limits" && !AFTER_ENGINE.contains(&check))
}

/// The candidate engine's verdict on one request, then the recorded later checks.
fn judge(
    engine: &Engine<FakeRelativeClock>,
    policy: &Policy,
    r: &Recorded,
    recorded: &Outcome,
) -> Outcome {
    // Rules match on a header's presence; the values are not recorded (nor needed:
    // the fingerprint they feed is recorded whole).
    let headers: Vec<(&str, &str)> = r.headers.iter().map(|n| (n.as_str(), "")).collect();
    let req = Request {
        method: &r.method,
        path: &r.path,
        peer: r.client,
        http_version: "HTTP/1.1",
        headers: &headers,
        tls_fp: r.tls_fp.as_deref(),
        account: r.account.as_deref(),
    };
    let mut id = Identity::derive(policy, req);
    if let Some(fp) = &r.http_fp {
        id = id.with_http_fp(fp.clone());
    }
    let decision = engine.decide_identified(&id);
    if !decision.is_allowed() {
        return Outcome::refuse(decision.rule.unwrap_or_else(|| PATH_REFUSAL.into()));
    }
    match r.refused_by.as_deref() {
        // Refused by a check between the engine and the fair-share ceiling: its input
        // (ledger, accounts) is the recording's, so it refuses again, and the request
        // never reaches the ceiling.
        Some(check @ ("budget" | "account-limits" | "resources")) => Outcome::refuse(check),
        // Recorded allowed, or refused by the engine (its later checks never ran and
        // are taken to pass), by the ceiling, or after it: the candidate's ceiling
        // counts it, as the claimer it was (an unrecorded one counts as none).
        _ => {
            if let FairVerdict::Refuse { .. } = engine.fair_share(&id, r.claimer.unwrap_or(false)) {
                return Outcome::refuse(FAIR_SHARE);
            }
            match r.refused_by.as_deref() {
                Some("body") => recorded.clone(),
                _ => Outcome::allow(),
            }
        }
    }
}
