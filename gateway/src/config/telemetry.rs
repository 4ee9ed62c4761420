//! `[telemetry]`: OpenTelemetry export over OTLP/HTTP (protobuf), off unless the
//! section is present.
//!
//! ```toml
//! [telemetry]
//! endpoint = "http://127.0.0.1:4318"   # the collector; /v1/traces and /v1/metrics are appended
//! service_name = "deploy-gateway"
//! sampling = 1.0                       # fraction of requests traced
//! export_interval_ms = 10000           # metrics export and span batch delay
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// The shortest export interval: below it the exporter would spend more time sending
/// than the gateway spends serving on a small machine.
pub const MIN_EXPORT_INTERVAL_MS: u64 = 100;

/// `[telemetry]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    endpoint: Spanned<String>,
    #[serde(default)]
    service_name: Option<Spanned<String>>,
    #[serde(default)]
    sampling: Option<Spanned<f64>>,
    #[serde(default)]
    export_interval_ms: Option<Spanned<u64>>,
}

/// The compiled `[telemetry]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// The collector's base URL, without a trailing `/`.
    pub endpoint: String,
    /// `service.name` of every span and metric.
    pub service_name: String,
    /// Fraction of requests traced, 0.0 to 1.0 (metrics always count every request).
    pub sampling: f64,
    /// How often metrics are exported and spans are sent in batches.
    pub export_interval: Duration,
}

impl TelemetrySettings {
    /// Where spans go.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint)
    }

    /// Where metrics go.
    pub fn metrics_url(&self) -> String {
        format!("{}/v1/metrics", self.endpoint)
    }
}

/// Checks `[telemetry]`: an `http://` or `https://` base URL with a host and no
/// credentials (collector tokens belong in the collector's own configuration or
/// a sidecar, not in a file that is copied around), a sampling fraction, an export
/// interval of at least [`MIN_EXPORT_INTERVAL_MS`].
pub(super) fn compile_telemetry(
    raw: Option<RawTelemetry>,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Option<TelemetrySettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let at = raw.endpoint.span().start;
    let url = raw.endpoint.get_ref().trim();
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return Err(err_at(
            at,
            format!(
                "telemetry.endpoint \"{url}\" must start with http:// or https:// (an OTLP/HTTP collector, for example http://127.0.0.1:4318)"
            ),
        ));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(err_at(at, "telemetry.endpoint must not carry credentials".into()));
    }
    if authority.is_empty() {
        return Err(err_at(at, format!("telemetry.endpoint \"{url}\" has no host")));
    }
    let path = path.trim_end_matches('/');
    if path.ends_with("v1/traces") || path.ends_with("v1/metrics") {
        return Err(err_at(
            at,
            "telemetry.endpoint is the collector's base URL; /v1/traces and /v1/metrics are appended"
                .into(),
        ));
    }
    let service_name = match &raw.service_name {
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(err_at(s.span().start, "telemetry.service_name must not be empty".into()))
        }
        Some(s) => s.get_ref().trim().to_string(),
        None => "deploy-gateway".to_string(),
    };
    let sampling =
        match &raw.sampling {
            Some(s) if !(0.0..=1.0).contains(s.get_ref()) => return Err(err_at(
                s.span().start,
                "telemetry.sampling must be between 0.0 and 1.0 (the fraction of requests traced)"
                    .into(),
            )),
            Some(s) => *s.get_ref(),
            None => 1.0,
        };
    let export_interval = match &raw.export_interval_ms {
        Some(v) if *v.get_ref() < MIN_EXPORT_INTERVAL_MS => {
            return Err(err_at(
                v.span().start,
                format!("telemetry.export_interval_ms must be at least {MIN_EXPORT_INTERVAL_MS}"),
            ))
        }
        Some(v) => Duration::from_millis(*v.get_ref()),
        None => Duration::from_secs(10),
    };
    Ok(Some(TelemetrySettings {
        endpoint: url.trim_end_matches('/').to_string(),
        service_name,
        sampling,
        export_interval,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::GatewayConfig;
    use std::time::Duration;

    const BASE: &str =
        "[server]\nlisten = [\"127.0.0.1:8787\"]\n[upstream]\nurl = \"http://127.0.0.1:9\"\n";

    #[test]
    fn telemetry_is_off_without_its_section_and_defaulted_with_it() {
        let off = GatewayConfig::parse("g.toml", BASE).expect("loads");
        assert_eq!(off.telemetry, None);
        let on = GatewayConfig::parse(
            "g.toml",
            &format!("{BASE}[telemetry]\nendpoint = \"http://127.0.0.1:4318/\"\n"),
        )
        .expect("loads")
        .telemetry
        .expect("on");
        assert_eq!(on.traces_url(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(on.metrics_url(), "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(on.service_name, "deploy-gateway");
        assert_eq!(on.sampling, 1.0);
        assert_eq!(on.export_interval, Duration::from_secs(10));
    }
}
