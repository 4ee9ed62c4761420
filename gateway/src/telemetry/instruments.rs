//! The gateway's metrics as OpenTelemetry instruments: the request families recorded
//! as they happen (the same calls that feed `/metrics`, see
//! [`crate::metrics::observe`]), the state families observed from the same table
//! [`crate::metrics::state::FAMILIES`] at each export. Names are the Prometheus ones;
//! counters carry no `_total`, which an OTLP-to-Prometheus bridge adds back.

use std::any::Any;
use std::sync::Arc;

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use crate::clock::SharedClock;
use crate::metrics::families::{DECISION_BUCKETS, REQUEST_BUCKETS};
use crate::metrics::state::{self, Kind, Sources, FAMILIES};
use crate::tracker::Tracker;

/// The instruments the request phases record into.
pub struct Instruments {
    /// `gateway_decisions{route, outcome}`.
    pub decisions: Counter<u64>,
    /// `gateway_request_duration_seconds{route}`.
    pub request_seconds: Histogram<f64>,
    /// `gateway_decision_duration_seconds{route}`.
    pub decision_seconds: Histogram<f64>,
    /// `gateway_upstream_duration_seconds{route}`.
    pub upstream_seconds: Histogram<f64>,
    /// `gateway_upstream_responses{route, status}`.
    pub upstream_responses: Counter<u64>,
    /// `gateway_budget_trips{action}`.
    pub budget_trips: Counter<u64>,
    /// `gateway_pow_challenges_issued{difficulty}`.
    pub pow_issued: Counter<u64>,
    /// The observable state instruments, kept so their callbacks stay registered.
    _observed: Vec<Box<dyn Any + Send + Sync>>,
}

/// Attributes from fixed label pairs.
pub fn attributes(labels: &[(&'static str, &'static str)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect()
}

impl Instruments {
    /// Creates every instrument on `meter`; the state families when a policy is
    /// loaded (`state`: its engine and tracker, and the gateway's clock).
    pub fn new(
        meter: &Meter,
        state: Option<(Arc<policy::Engine>, Arc<Tracker>, SharedClock)>,
    ) -> Self {
        let histogram = |name: &'static str, help: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_description(help)
                .with_unit("s")
                .with_boundaries(buckets.to_vec())
                .build()
        };
        let counter = |name: &'static str, help: &'static str| {
            meter.u64_counter(name).with_description(help).build()
        };
        let observed = state.map(|s| observe_state(meter, s)).unwrap_or_default();
        Instruments {
            decisions: counter(
                "gateway_decisions",
                "Requests by route class and outcome (allowed, or why the gateway refused).",
            ),
            request_seconds: histogram(
                "gateway_request_duration_seconds",
                "Whole requests, from the request header to the end of the answer.",
                REQUEST_BUCKETS,
            ),
            decision_seconds: histogram(
                "gateway_decision_duration_seconds",
                "The decision before forwarding: identify and every check.",
                DECISION_BUCKETS,
            ),
            upstream_seconds: histogram(
                "gateway_upstream_duration_seconds",
                "From sending the request upstream to the answer's header.",
                REQUEST_BUCKETS,
            ),
            upstream_responses: counter(
                "gateway_upstream_responses",
                "Upstream answers by route class and status class (error: no answer).",
            ),
            budget_trips: counter(
                "gateway_budget_trips",
                "Requests that met a spent cleanup budget, by action (refuse, harder_pow).",
            ),
            pow_issued: counter(
                "gateway_pow_challenges_issued",
                "Challenges passed on to clients, by difficulty (platform, raised).",
            ),
            _observed: observed,
        }
    }
}

/// One observable instrument per state family, reading it at each export.
fn observe_state(
    meter: &Meter,
    (engine, tracker, clock): (Arc<policy::Engine>, Arc<Tracker>, SharedClock),
) -> Vec<Box<dyn Any + Send + Sync>> {
    let mut out: Vec<Box<dyn Any + Send + Sync>> = Vec::with_capacity(FAMILIES.len());
    for family in FAMILIES {
        let (engine, tracker, clock) = (engine.clone(), tracker.clone(), clock.clone());
        let samples = move || {
            let sources = Sources {
                engine: &engine,
                tracker: &tracker,
                now: clock.now(),
                store: state::store_health(),
            };
            (family.read)(&sources)
                .into_iter()
                .map(|s| {
                    let attrs: Vec<KeyValue> =
                        s.labels.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
                    (s.value, attrs)
                })
                .collect::<Vec<_>>()
        };
        match family.kind {
            Kind::Counter => out.push(Box::new(
                meter
                    .u64_observable_counter(family.name)
                    .with_description(family.help)
                    .with_callback(move |o| {
                        for (v, attrs) in samples() {
                            o.observe(v.as_f64().max(0.0) as u64, &attrs);
                        }
                    })
                    .build(),
            )),
            Kind::Gauge => out.push(Box::new(
                meter
                    .f64_observable_gauge(family.name)
                    .with_description(family.help)
                    .with_callback(move |o| {
                        for (v, attrs) in samples() {
                            o.observe(v.as_f64(), &attrs);
                        }
                    })
                    .build(),
            )),
        }
    }
    out
}
