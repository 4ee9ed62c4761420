//! `gateway.toml` as written: serde shapes with spans, nothing checked yet.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    // Optional here so that a missing section gets its own message, not serde's.
    #[serde(default)]
    pub(super) server: Option<RawServer>,
    #[serde(default)]
    pub(super) upstream: Option<RawUpstream>,
    #[serde(default)]
    pub(super) policy: Option<RawPolicy>,
    #[serde(default)]
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) store: Option<super::store::RawStore>,
    #[serde(default)]
    pub(super) telemetry: Option<super::telemetry::RawTelemetry>,
    pub(super) audit: Option<super::logs::RawAudit>,
    #[serde(default)]
    pub(super) access_log: Option<super::logs::RawAccessLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Spanned<String>,
    #[serde(default)]
    pub(super) events_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) token: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) status_token: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ledger_file: Option<String>,
    #[serde(default)]
    pub(super) accounts_file: Option<String>,
    #[serde(default)]
    pub(super) silent_expiry_grace_secs: Option<u64>,
    #[serde(default)]
    pub(super) reconcile_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) reconcile_interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) threads: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) grace_period_secs: Option<u64>,
    #[serde(default)]
    pub(super) max_held_body_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) tls: Vec<RawTls>,
}

/// One `[[server.tls]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) listen: Spanned<String>,
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
    #[serde(default)]
    pub(super) h2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) sni: Option<String>,
    #[serde(default)]
    pub(super) verify_cert: Option<bool>,
    #[serde(default)]
    pub(super) host_header: Option<String>,
    #[serde(default)]
    pub(super) connect_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) read_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) write_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) pool_idle_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) file: String,
    #[serde(default)]
    pub(super) watch: Option<bool>,
    #[serde(default)]
    pub(super) trust_loopback: Option<bool>,
}
