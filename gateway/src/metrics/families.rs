//! The families counted on the request path: decisions by route class and outcome,
//! latency histograms of the whole request, the decision and the upstream, upstream
//! answers by status class, budget trips and challenges issued.
//!
//! Labels are fixed words and route classes (six, from the policy's `[routes]`), so
//! every family has a few dozen series at most whatever the traffic.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// One label: (name, value), both fixed words.
pub type Label = (&'static str, &'static str);

/// A histogram family keyed by one label.
pub type Histograms = Family<[Label; 1], Histogram, fn() -> Histogram>;

/// Buckets of the whole request and of the upstream's answer, in seconds: from half a
/// millisecond (a refusal on loopback) to a minute (the upstream read timeout).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets of the decision (every check before forwarding), in seconds: the engine
/// decides in microseconds, so these start at 10 µs.
pub const DECISION_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS.iter().copied())
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS.iter().copied())
}

/// The families the request phases record into (shared handles: cloning one shares
/// its series).
#[derive(Clone)]
pub struct RequestMetrics {
    /// `gateway_decisions_total{route, outcome}`: outcome `allowed` or the refusal's
    /// reason (`rate_limited`, `denied`, `budget`, `account_limit`, `quota`,
    /// `proof_of_work`, `bad_request`, `busy`).
    pub decisions: Family<[Label; 2], Counter>,
    /// `gateway_request_duration_seconds{route}`: from the request header to the
    /// end of the answer.
    pub request_seconds: Histograms,
    /// `gateway_decision_duration_seconds{route}`: identify and every check.
    pub decision_seconds: Histograms,
    /// `gateway_upstream_duration_seconds{route}`: from sending the request header
    /// upstream to the answer's header.
    pub upstream_seconds: Histograms,
    /// `gateway_upstream_responses_total{route, status}`: `1xx` to `5xx`, or `error`
    /// when no answer came (unreachable, timed out).
    pub upstream_responses: Family<[Label; 2], Counter>,
    /// `gateway_budget_trips_total{action}`: requests that met a spent cleanup
    /// budget, `refuse` (refused) or `harder_pow` (asked for harder proof-of-work).
    pub budget_trips: Family<[Label; 1], Counter>,
    /// `gateway_pow_challenges_issued_total{difficulty}`: challenges passed on to
    /// clients, `platform` (as the platform asked) or `raised` (made harder).
    pub pow_issued: Family<[Label; 1], Counter>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            decisions: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram),
            decision_seconds: Family::new_with_constructor(decision_histogram),
            upstream_seconds: Family::new_with_constructor(request_histogram),
            upstream_responses: Family::default(),
            budget_trips: Family::default(),
            pow_issued: Family::default(),
        }
    }
}

/// The status class label of an upstream answer (`error`: none arrived).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) | None => "error",
    }
}
