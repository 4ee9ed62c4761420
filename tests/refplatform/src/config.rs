//! Platform configuration.

use std::time::Duration;

use crate::events::EventsConfig;

/// Everything tunable about the platform.
///
/// [`Default`] is tuned for tests: a tiny proof-of-work (k=2, g=64) so a
/// solve takes microseconds. Use [`PlatformConfig::moderate`] (what the
/// binary defaults to: k=8, g=4096, as seen from the real service) when
/// the cost of a solve matters, e.g. when demonstrating rate limits.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Proof-of-work segments per challenge.
    pub pow_k: u32,
    /// sha256 rounds per segment.
    pub pow_g: u32,
    /// Segments spot-checked per verification (besides `cp[0]` and length).
    pub pow_spot_checks: usize,
    /// How long a challenge token may be redeemed.
    pub challenge_ttl: Duration,
    /// Lifetime of an unclaimed account.
    pub account_lifetime: Duration,
    /// Base of claim URLs; `None` means `http://{bound address}`.
    pub public_base_url: Option<String>,
    /// How often the background sweeper runs when served.
    pub sweep_interval: Duration,
    /// Where to push lifecycle events, if anywhere.
    pub events: Option<EventsConfig>,
    /// The bearer token of the `/internal/accounts` status API. When set, only it is
    /// accepted there (the events secret then only signs events); when `None` the
    /// events secret is the bearer, as older gateways send it.
    pub status_token: Option<String>,
    /// Largest request body accepted (asset uploads may be several MiB).
    pub max_body_bytes: usize,
    /// What a temporary account may hold.
    pub limits: PlatformLimits,
}

/// The limits the platform enforces on a temporary account: the published ones (D1,
/// Hyperdrive, Queues, static assets), and for Workers scripts and KV namespaces, which
/// the published material leaves open, the caps of the gateway's shipped policy, so
/// the two agree. Over a limit a create is refused with 403 and [`crate::envelope::CODE_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformLimits {
    /// Worker scripts.
    pub worker_scripts: usize,
    /// KV namespaces.
    pub kv_namespaces: usize,
    /// D1 databases (published: one).
    pub d1_databases: usize,
    /// Queues (published: 10).
    pub queues: usize,
    /// Hyperdrive configurations (published: 2).
    pub hyperdrive_configs: usize,
    /// Distinct static-asset files over the account (published: 1,000).
    pub asset_files: usize,
    /// Bytes per static-asset file (published: 5 MiB).
    pub asset_file_bytes: u64,
}

impl Default for PlatformLimits {
    fn default() -> Self {
        PlatformLimits {
            worker_scripts: 5,
            kv_namespaces: 10,
            d1_databases: 1,
            queues: 10,
            hyperdrive_configs: 2,
            asset_files: 1000,
            asset_file_bytes: 5 * 1024 * 1024,
        }
    }
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            pow_k: 2,
            pow_g: 64,
            pow_spot_checks: 2,
            challenge_ttl: Duration::from_secs(300),
            account_lifetime: Duration::from_secs(3600),
            public_base_url: None,
            sweep_interval: Duration::from_secs(10),
            events: None,
            status_token: None,
            max_body_bytes: 64 * 1024 * 1024,
            limits: PlatformLimits::default(),
        }
    }
}

impl PlatformConfig {
    /// Defaults with a realistic proof-of-work (k=8, g=4096, 3 spot checks).
    pub fn moderate() -> Self {
        Self { pow_k: 8, pow_g: 4096, pow_spot_checks: 3, ..Self::default() }
    }
}
