//! What the platform tells the gateway about accounts: events and status answers.

use crate::economics::quota::ResourceCounts;
use crate::wire::rfc3339_to_unix;
use serde_json::Value;

/// One event from the platform (the body of `POST /events` on the admin listener).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PlatformEvent {
    /// `claimed`, `expired` or `deleted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The account concerned.
    pub account_id: String,
    /// When it happened (RFC 3339), if given.
    #[serde(default)]
    pub at: Option<String>,
    /// What the platform removed, if it says.
    #[serde(default)]
    pub removed: Option<RemovedCounts>,
}

impl PlatformEvent {
    /// `at` as unix seconds; `None` when absent or not RFC 3339.
    pub fn at_unix(&self) -> Option<u64> {
        self.at.as_deref().and_then(rfc3339_to_unix)
    }
}

/// What a platform cleanup removed, as the platform reports it in events and status
/// answers.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(default)]
pub struct RemovedCounts {
    /// Worker scripts.
    pub scripts: u64,
    /// KV namespaces.
    pub kv_namespaces: u64,
    /// D1 databases.
    pub d1_databases: u64,
    /// Queues.
    pub queues: u64,
    /// Hyperdrive configurations.
    pub hyperdrive_configs: u64,
    /// Static-asset files.
    pub asset_files: u64,
    /// Static-asset bytes.
    pub asset_bytes: u64,
    /// D1 bytes.
    pub d1_bytes: u64,
}

impl From<RemovedCounts> for ResourceCounts {
    fn from(r: RemovedCounts) -> Self {
        ResourceCounts {
            worker_scripts: r.scripts,
            kv_namespaces: r.kv_namespaces,
            d1_databases: r.d1_databases,
            queues: r.queues,
            hyperdrive_configs: r.hyperdrive_configs,
            asset_files: r.asset_files,
            stored_bytes: r.asset_bytes.saturating_add(r.d1_bytes),
        }
    }
}

/// The status API's answer about one account (`GET {url}/{account_id}`, bearer auth):
/// `{"result": {"status": "live"|"claimed"|"expired"|"deleted", "removed"?, "resources"?}}`.
#[derive(Debug, Clone)]
pub struct StatusAnswer {
    /// `result.status`; [`StatusAnswer::LIVE`] means not settled yet.
    pub status: String,
    /// `result.removed` (what a cleanup took away) when present, else
    /// `result.resources` (what the account holds now).
    pub removed: Option<RemovedCounts>,
}

impl StatusAnswer {
    /// The status of an account that still exists.
    pub const LIVE: &'static str = "live";

    /// Parses a 2xx answer; `None` when it has no `result.status`.
    pub fn parse(body: &[u8]) -> Option<StatusAnswer> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let result = v.get("result")?;
        let status = result.get("status")?.as_str()?.to_string();
        let removed = ["removed", "resources"]
            .iter()
            .filter_map(|k| result.get(*k))
            .find(|r| !r.is_null())
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        Some(StatusAnswer { status, removed })
    }

    /// The answer for a 404: the platform no longer knows the account, so it was
    /// cleaned up.
    pub fn not_found() -> StatusAnswer {
        StatusAnswer { status: "deleted".into(), removed: None }
    }

    /// Whether the account is still live (clocks disagree; ask again later).
    pub fn is_live(&self) -> bool {
        self.status == Self::LIVE
    }

    /// The event this answer stands for.
    pub fn into_event(self, account_id: &str) -> PlatformEvent {
        PlatformEvent {
            kind: self.status,
            account_id: account_id.to_string(),
            at: None,
            removed: self.removed,
        }
    }
}
