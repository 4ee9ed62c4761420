//! The economics sections as written: `[accounts]`, `[quotas]`, `[costs]`, `[budgets]`
//! and `[pow]`, serde-shaped with spans, nothing validated.
//!
//! They are fields of [`super::RawPolicy`], so every span is an offset into the whole
//! policy file and the compiler reports them as `FILE:LINE:COL` like any other error.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// `[accounts]` as written.
///
/// ```toml
/// [accounts]
/// window_secs = 86400            # the "per day" of per_day
/// [accounts.live]                # live temporary accounts at once, per source key
/// ip = 3
/// "ipv6/64" = 3
/// [accounts.per_day]             # accounts created per window, per source key
/// ip = 20
/// "ipv6/48" = 100
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccounts {
    /// Window of `per_day`, seconds (default 86400).
    pub window_secs: Option<Spanned<i64>>,
    /// Live accounts at once, per key kind. Absent: the defaults; present: exactly these.
    pub live: Option<BTreeMap<Spanned<String>, Spanned<i64>>>,
    /// Accounts created per window, per key kind. Absent: the defaults.
    pub per_day: Option<BTreeMap<Spanned<String>, Spanned<i64>>>,
}

/// `[quotas]` as written. Every field is optional; absent fields take the defaults of
/// [`crate::quota::QuotaSpec::default`].
///
/// ```toml
/// [quotas]
/// max_worker_scripts = 5
/// max_kv_namespaces = 10
/// max_d1_databases = 1
/// max_queues = 10
/// max_hyperdrive_configs = 2
/// max_asset_files = 1000
/// max_asset_file_bytes = 5242880
/// max_body_bytes = 67108864
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuotas {
    /// Worker scripts per account.
    pub max_worker_scripts: Option<Spanned<i64>>,
    /// KV namespaces per account.
    pub max_kv_namespaces: Option<Spanned<i64>>,
    /// D1 databases per account (platform: 1).
    pub max_d1_databases: Option<Spanned<i64>>,
    /// Queues per account (platform: 10).
    pub max_queues: Option<Spanned<i64>>,
    /// Hyperdrive configurations per account (platform: 2).
    pub max_hyperdrive_configs: Option<Spanned<i64>>,
    /// Static-asset files per upload (platform: 1,000).
    pub max_asset_files: Option<Spanned<i64>>,
    /// Bytes per static-asset file (platform: 5 MiB).
    pub max_asset_file_bytes: Option<Spanned<i64>>,
    /// Bytes per request body.
    pub max_body_bytes: Option<Spanned<i64>>,
}

/// `[costs]` as written: cleanup cost in abstract units.
///
/// ```toml
/// [costs]
/// account = 10
/// worker_script = 5
/// kv_namespace = 3
/// d1_database = 5
/// queue = 2
/// hyperdrive_config = 2
/// asset_file = 0
/// per_mb_stored = 1
/// claim_credit = 20
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCosts {
    /// Per unclaimed account, whatever it holds.
    pub account: Option<Spanned<i64>>,
    /// Per Worker script.
    pub worker_script: Option<Spanned<i64>>,
    /// Per KV namespace.
    pub kv_namespace: Option<Spanned<i64>>,
    /// Per D1 database.
    pub d1_database: Option<Spanned<i64>>,
    /// Per Queue.
    pub queue: Option<Spanned<i64>>,
    /// Per Hyperdrive configuration.
    pub hyperdrive_config: Option<Spanned<i64>>,
    /// Per static-asset file.
    pub asset_file: Option<Spanned<i64>>,
    /// Per MB (10^6 bytes, rounded up) of declared stored bytes.
    pub per_mb_stored: Option<Spanned<i64>>,
    /// Credit a source earns when an account it created is claimed.
    pub claim_credit: Option<Spanned<i64>>,
}

/// `[budgets]` as written.
///
/// ```toml
/// [budgets]
/// window_secs = 86400          # default window of the limits below
/// [[budgets.limit]]
/// key = "ipv6/48"
/// units = 300
/// action = "harder_pow"
/// [[budgets.limit]]
/// key = "ipv6/48"
/// units = 800
/// action = "refuse"
/// window_secs = 86400
/// [[budgets.global]]           # all sources together
/// units = 20000
/// action = "harder_pow"
/// window_secs = 3600
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudgets {
    /// Default window, seconds (86400).
    pub window_secs: Option<Spanned<i64>>,
    /// The limits. Absent: the defaults; `limit = []`: no budgets.
    pub limit: Option<Vec<RawBudgetLimit>>,
    /// Platform-wide budgets over every source's unclaimed cleanup together.
    pub global: Option<Vec<RawGlobalBudget>>,
}

/// One `[[budgets.global]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobalBudget {
    /// Most units of unclaimed cleanup per window, all sources together.
    pub units: Spanned<i64>,
    /// Window, seconds (default: the section's `window_secs`).
    pub window_secs: Option<Spanned<i64>>,
    /// `harder_pow` (default) or `refuse`.
    pub action: Option<Spanned<String>>,
}

/// One `[[budgets.limit]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudgetLimit {
    /// Source key kind: `ip`, `ipv4/24`, `ipv6/64`, `ipv6/56`, `ipv6/48`, `http_fp`, `tls_fp`.
    pub key: Spanned<String>,
    /// Most units of unclaimed cleanup per window.
    pub units: Spanned<i64>,
    /// Window, seconds (default: the section's `window_secs`).
    pub window_secs: Option<Spanned<i64>>,
    /// `refuse` (default) or `harder_pow`.
    pub action: Option<Spanned<String>>,
}

/// A TOML number, integer or float (so `extra_checkpoints_per_unit = 1` reads too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[pow]` as written.
///
/// ```toml
/// [pow]
/// extra_checkpoints_per_unit = 0.1   # +1 checkpoint per 10 units of debt
/// max_factor = 8                     # k' at most 8 * k
/// max_work = 64000000                # k' * g at most this (wrangler's cap)
/// spot_checks = 4                    # extra segments verified per solution
/// challenge_ttl_secs = 600
/// max_challenges = 100000
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPow {
    /// Extra checkpoints per unit of debt.
    pub extra_checkpoints_per_unit: Option<Spanned<Number>>,
    /// Cap on `k' / k`.
    pub max_factor: Option<Spanned<i64>>,
    /// Cap on `k' * g`.
    pub max_work: Option<Spanned<i64>>,
    /// Extra segments verified per solution.
    pub spot_checks: Option<Spanned<i64>>,
    /// How long a rewritten challenge is remembered, seconds.
    pub challenge_ttl_secs: Option<Spanned<i64>>,
    /// How many rewritten challenges are remembered at most.
    pub max_challenges: Option<Spanned<i64>>,
}
