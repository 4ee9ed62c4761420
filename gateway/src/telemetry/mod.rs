//! OpenTelemetry: a span per request and the gateway's metrics, exported over
//! OTLP/HTTP (protobuf) to the collector of `[telemetry]` (off when the section is
//! absent).
//!
//! - [`span`]: the request span's attributes (bounded, no secrets).
//! - [`instruments`]: the metrics as OTel instruments, the same families as
//!   `/metrics` ([`crate::metrics`]).
//! - [`client`]: the exporters' HTTP client, on a runtime of its own.
//!
//! Spans are built whole when a request is done (`logging`), with the start time its
//! first phase noted: no span object travels between phases, and with telemetry off
//! nothing is built at all. Spans go out in batches and metrics every
//! `export_interval_ms`; [`shutdown`] flushes both when the gateway stops.

pub mod client;
pub mod instruments;
pub mod span;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

use crate::config::TelemetrySettings;
use crate::enforce::Enforcer;
use crate::stage::context::RequestCtx;
use instruments::Instruments;

/// How long one export may take before it is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running exporters.
struct Telemetry {
    tracer_provider: SdkTracerProvider,
    tracer: SdkTracer,
    meter_provider: SdkMeterProvider,
    instruments: Instruments,
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Starts the span and metric exporters for `settings`, observing `enforcer`'s state.
/// Called once, before the proxy serves; a second call is an error.
pub fn start(settings: &TelemetrySettings, enforcer: &Enforcer) -> Result<(), String> {
    let client = client::RuntimeClient::start(EXPORT_TIMEOUT)?;
    let resource = Resource::builder().with_service_name(settings.service_name.clone()).build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client.clone())
        .with_endpoint(settings.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("telemetry: cannot build the span exporter: {e}"))?;
    let batch =
        BatchConfigBuilder::default().with_scheduled_delay(settings.export_interval).build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(spans).with_batch_config(batch).build())
        .with_sampler(Sampler::TraceIdRatioBased(settings.sampling))
        .with_resource(resource.clone())
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(settings.metrics_url())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("telemetry: cannot build the metric exporter: {e}"))?;
    let reader = PeriodicReader::builder(metrics).with_interval(settings.export_interval).build();
    let meter_provider =
        SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
    let state =
        enforcer.loaded().map(|l| (l.engine.clone(), l.tracker.clone(), enforcer.clock().clone()));
    let instruments = Instruments::new(&meter_provider.meter("gateway"), state);
    let tracer = tracer_provider.tracer("gateway");
    TELEMETRY
        .set(Telemetry { tracer_provider, tracer, meter_provider, instruments })
        .map_err(|_| "telemetry was already started".to_string())?;
    tracing::info!(endpoint = %settings.endpoint, "telemetry exporting over OTLP/HTTP");
    Ok(())
}

/// The instruments, when telemetry is on.
pub fn instruments() -> Option<&'static Instruments> {
    TELEMETRY.get().map(|t| &t.instruments)
}

/// A request is done: records its span. `status`: what the client was answered (0:
/// nothing); `took`: the whole request.
pub fn request_done(ctx: &RequestCtx, status: u16, took: Option<Duration>) {
    let Some(t) = TELEMETRY.get() else { return };
    let end = SystemTime::now();
    let start = ctx.obs.started_at.unwrap_or_else(|| took.map_or(end, |d| end - d));
    let mut span = t
        .tracer
        .span_builder(ctx.route_label())
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes(span::attributes(ctx, status))
        .start(&t.tracer);
    if status >= 500 || ctx.obs.upstream_failed {
        span.set_status(Status::error("the request failed upstream or in the gateway"));
    }
    span.end_with_timestamp(end);
}

/// How long a stopping gateway waits for the last exports: a collector that accepts
/// and never answers must not hold the process (the SDK would retry for many seconds).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Sends what is still buffered and stops the exporters (the gateway is stopping),
/// waiting at most [`SHUTDOWN_WAIT`].
pub fn shutdown() {
    let Some(t) = TELEMETRY.get() else { return };
    let (done, finished) = std::sync::mpsc::channel();
    let flushing = std::thread::Builder::new().name("telemetry-flush".into()).spawn(move || {
        if let Err(e) = t.tracer_provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: spans not flushed at shutdown");
        }
        if let Err(e) = t.meter_provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: metrics not flushed at shutdown");
        }
        let _ = done.send(());
    });
    if flushing.is_ok() && finished.recv_timeout(SHUTDOWN_WAIT).is_err() {
        tracing::warn!("telemetry: the collector did not take the last exports in time");
    }
}
