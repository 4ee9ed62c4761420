//! The temporary account and everything that lives in it.
//!
//! An account owns scripts and resources. Its secrets (API token, claim
//! secret) are never stored here in the clear: the platform keeps only
//! their sha256 in its lookup indexes, so snapshots, logs and debug output
//! cannot leak them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Lifecycle state of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Unclaimed and within its lifetime.
    Live,
    /// Claimed by a human: kept past its original expiry.
    Claimed,
    /// Unclaimed past its lifetime; swept (a tombstone remains).
    Expired,
    /// Removed on request (a tombstone remains).
    Deleted,
}

impl AccountStatus {
    /// The wire name (`live`, `claimed`, `expired`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Live => "live",
            AccountStatus::Claimed => "claimed",
            AccountStatus::Expired => "expired",
            AccountStatus::Deleted => "deleted",
        }
    }
}

/// How much an account holds (or held, in a cleanup record). The gateway
/// enforces quotas from these numbers; the platform only counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCounts {
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
    /// Distinct static-asset files uploaded.
    pub asset_files: u64,
    /// Bytes of static-asset files uploaded (decoded).
    pub asset_bytes: u64,
    /// Bytes of D1 databases (this emulator runs no SQL, so this is only
    /// what imports report; usually 0).
    pub d1_bytes: u64,
}

/// One version of a worker script.
#[derive(Debug, Clone)]
pub struct ScriptVersion {
    /// Version UUID.
    pub id: String,
    /// 1-based sequence number.
    pub number: u64,
    /// Creation time.
    pub created_on: OffsetDateTime,
    /// Bytes of all uploaded module parts.
    pub content_bytes: u64,
}

/// One deployment (traffic split over versions) of a script.
#[derive(Debug, Clone)]
pub struct ScriptDeployment {
    /// Deployment UUID.
    pub id: String,
    /// Creation time.
    pub created_on: OffsetDateTime,
    /// `(version_id, percentage)` pairs.
    pub versions: Vec<(String, f64)>,
}

/// A worker script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Script name (as in wrangler.toml).
    pub name: String,
    /// Stable id (a tag, as the real API's `tag`).
    pub tag: String,
    /// Creation time.
    pub created_on: OffsetDateTime,
    /// Last change.
    pub modified_on: OffsetDateTime,
    /// Last upload's `metadata` part (bindings, compatibility date, ...).
    pub metadata: Value,
    /// Versions, oldest first.
    pub versions: Vec<ScriptVersion>,
    /// Deployments, oldest first.
    pub deployments: Vec<ScriptDeployment>,
    /// workers.dev route enabled.
    pub subdomain_enabled: bool,
    /// Preview URLs enabled.
    pub previews_enabled: bool,
    /// Settings set via PATCH script-settings / settings.
    pub settings: serde_json::Map<String, Value>,
}

/// A KV namespace.
#[derive(Debug, Clone, Serialize)]
pub struct KvNamespace {
    /// 32-hex id.
    pub id: String,
    /// Title given at creation.
    pub title: String,
}

/// A D1 database.
#[derive(Debug, Clone)]
pub struct D1Database {
    /// UUID.
    pub uuid: String,
    /// Name given at creation.
    pub name: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Size in bytes.
    pub file_size: u64,
}

/// A queue.
#[derive(Debug, Clone)]
pub struct Queue {
    /// 32-hex id.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Creation time.
    pub created_on: OffsetDateTime,
}

/// A Hyperdrive configuration.
#[derive(Debug, Clone)]
pub struct HyperdriveConfig {
    /// 32-hex id.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// The `origin` object as submitted, with any password removed.
    pub origin: Value,
}

/// A temporary account.
#[derive(Debug, Clone)]
pub struct Account {
    /// 32-hex account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// workers.dev subdomain label (wrangler appends `.workers.dev`).
    pub subdomain: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// When an unclaimed account is deleted.
    pub expires_at: OffsetDateTime,
    /// Lifecycle state.
    pub status: AccountStatus,
    /// When it was claimed, expired or deleted.
    pub status_changed_at: Option<OffsetDateTime>,
    /// Scripts by name.
    pub scripts: BTreeMap<String, Script>,
    /// KV namespaces by id.
    pub kv: BTreeMap<String, KvNamespace>,
    /// D1 databases by uuid.
    pub d1: BTreeMap<String, D1Database>,
    /// Queues by id.
    pub queues: BTreeMap<String, Queue>,
    /// Hyperdrive configs by id.
    pub hyperdrive: BTreeMap<String, HyperdriveConfig>,
    /// Uploaded asset files: content hash -> decoded size.
    pub asset_files: HashMap<String, u64>,
}

impl Account {
    /// A fresh, empty, live account.
    pub fn new(
        id: String,
        name: String,
        subdomain: String,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            name,
            subdomain,
            created_at,
            expires_at,
            status: AccountStatus::Live,
            status_changed_at: None,
            scripts: BTreeMap::new(),
            kv: BTreeMap::new(),
            d1: BTreeMap::new(),
            queues: BTreeMap::new(),
            hyperdrive: BTreeMap::new(),
            asset_files: HashMap::new(),
        }
    }

    /// Current resource counts.
    pub fn counts(&self) -> ResourceCounts {
        ResourceCounts {
            scripts: self.scripts.len() as u64,
            kv_namespaces: self.kv.len() as u64,
            d1_databases: self.d1.len() as u64,
            queues: self.queues.len() as u64,
            hyperdrive_configs: self.hyperdrive.len() as u64,
            asset_files: self.asset_files.len() as u64,
            asset_bytes: self.asset_files.values().sum(),
            d1_bytes: self.d1.values().map(|d| d.file_size).sum(),
        }
    }

    /// Remove everything the account holds, returning what was removed.
    /// Used by expiry and explicit deletion, which keep a tombstone.
    pub fn purge(&mut self) -> ResourceCounts {
        let counts = self.counts();
        self.scripts.clear();
        self.kv.clear();
        self.d1.clear();
        self.queues.clear();
        self.hyperdrive.clear();
        self.asset_files.clear();
        counts
    }

    /// True when the account may still be used with its token at `now`.
    pub fn usable_at(&self, now: OffsetDateTime) -> bool {
        match self.status {
            AccountStatus::Claimed => true,
            AccountStatus::Live => now < self.expires_at,
            AccountStatus::Expired | AccountStatus::Deleted => false,
        }
    }

    /// Status as seen at `now`: a live account past expiry reads as
    /// expired even before the sweeper has run.
    pub fn effective_status(&self, now: OffsetDateTime) -> AccountStatus {
        if self.status == AccountStatus::Live && now >= self.expires_at {
            AccountStatus::Expired
        } else {
            self.status
        }
    }

    /// A secret-free snapshot for inspection.
    pub fn snapshot(&self, now: OffsetDateTime) -> AccountSnapshot {
        AccountSnapshot {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            status: self.effective_status(now),
            scripts: self.scripts.keys().cloned().collect(),
            counts: self.counts(),
        }
    }
}

/// Secret-free view of an account for tests and the internal API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountSnapshot {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry time (meaningless once claimed).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Lifecycle state at snapshot time.
    pub status: AccountStatus,
    /// Script names.
    pub scripts: Vec<String>,
    /// Resource counts.
    pub counts: ResourceCounts,
}
