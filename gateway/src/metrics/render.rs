//! `/metrics`: one prometheus-client registry of the request families and the state
//! families, encoded as Prometheus text (format 0.0.4).

use std::sync::Arc;

use policy::Engine;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::state::{self, Kind, Sources, Value, FAMILIES};
use crate::clock::SharedClock;
use crate::tracker::Tracker;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The state families, read from the engine and tracker at each scrape.
#[derive(Clone)]
struct StateCollector {
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    clock: SharedClock,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = Sources {
            engine: &self.engine,
            tracker: &self.tracker,
            now: self.clock.now(),
            store: state::store_health(),
        };
        for family in FAMILIES {
            let samples = (family.read)(&sources);
            if samples.is_empty() {
                continue;
            }
            let kind = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for sample in samples {
                if sample.labels.is_empty() {
                    encode_value(&mut metric, family.kind, sample.value)?;
                } else {
                    let mut labelled = metric.encode_family(&sample.labels)?;
                    encode_value(&mut labelled, family.kind, sample.value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    metric: &mut prometheus_client::encoding::MetricEncoder<'_>,
    kind: Kind,
    value: Value,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => {
            metric.encode_counter::<NoLabelSet, _, u64>(&v.max(0).unsigned_abs(), None)
        }
        (Kind::Counter, Value::Float(v)) => metric.encode_counter::<NoLabelSet, _, f64>(&v, None),
        (Kind::Gauge, Value::Int(v)) => metric.encode_gauge(&v),
        (Kind::Gauge, Value::Float(v)) => metric.encode_gauge(&v),
    }
}

/// The registry of one scrape (help texts end without a period: the encoder adds one):
/// the request families (shared handles of
/// [`super::global`]) and the state families of `engine` and `tracker`.
fn registry(engine: &Arc<Engine>, tracker: &Arc<Tracker>, clock: &SharedClock) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector {
        engine: engine.clone(),
        tracker: tracker.clone(),
        clock: clock.clone(),
    }));
    let m = super::global().clone();
    registry.register(
        "gateway_decisions",
        "Requests by route class and outcome (allowed, or why the gateway refused)",
        m.decisions,
    );
    registry.register(
        "gateway_request_duration_seconds",
        "Whole requests, from the request header to the end of the answer",
        m.request_seconds,
    );
    registry.register(
        "gateway_decision_duration_seconds",
        "The decision before forwarding: identify and every check",
        m.decision_seconds,
    );
    registry.register(
        "gateway_upstream_duration_seconds",
        "From sending the request upstream to the answer's header",
        m.upstream_seconds,
    );
    registry.register(
        "gateway_upstream_responses",
        "Upstream answers by route class and status class (error: no answer)",
        m.upstream_responses,
    );
    registry.register(
        "gateway_budget_trips",
        "Requests that met a spent cleanup budget, by action (refuse, harder_pow)",
        m.budget_trips,
    );
    registry.register(
        "gateway_pow_challenges_issued",
        "Challenges passed on to clients, by difficulty (platform, raised)",
        m.pow_issued,
    );
    registry
}

/// The Prometheus text of every family now.
pub fn render(engine: &Arc<Engine>, tracker: &Arc<Tracker>, clock: &SharedClock) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(
        &mut out,
        &registry(engine, tracker, clock),
    ) {
        tracing::warn!(error = %e, "metrics could not be encoded");
    }
    out
}
