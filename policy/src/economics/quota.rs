//! Per-account resource quotas for temporary accounts.
//!
//! The gateway classifies each deploy-API call into a resource operation
//! ([`classify`]), checks it against the account's usage *before* forwarding
//! ([`AccountUsage::check`]) and commits it only once the platform answered 2xx
//! ([`AccountUsage::commit`]), so a refused or failed call never moves a count.
//!
//! Why the gateway enforces limits the platform also publishes: refusing at the edge
//! costs nothing upstream, gives wrangler a message that says what to do, and the
//! counts feed the cleanup-cost ledger (what the account held when it expired).
//!
//! Concurrent calls: [`AccountUsage::reserve`] checks and reserves in one step (the
//! caller holds the account's usage entry), so two concurrent creates at `limit - 1`
//! cannot both pass; the reservation is settled on 2xx ([`AccountUsage::settle`]) or
//! given back ([`AccountUsage::release`]). See [`reserve`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub mod reserve;
pub use reserve::Reservation;

/// 1 MiB.
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------

/// Kinds of resource a temporary account can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A Worker script (`workers/scripts/{name}`).
    WorkerScript,
    /// A Workers KV namespace (`storage/kv/namespaces`).
    KvNamespace,
    /// A D1 database (`d1/database`).
    D1Database,
    /// A Queue (`queues`).
    Queue,
    /// A Hyperdrive configuration (`hyperdrive/configs`).
    HyperdriveConfig,
}

impl ResourceKind {
    /// The quota name used in policies and messages.
    pub fn quota_name(self) -> &'static str {
        match self {
            ResourceKind::WorkerScript => "worker_scripts",
            ResourceKind::KvNamespace => "kv_namespaces",
            ResourceKind::D1Database => "d1_databases",
            ResourceKind::Queue => "queues",
            ResourceKind::HyperdriveConfig => "hyperdrive_configs",
        }
    }

    /// Plural, as a user reads it.
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::WorkerScript => "Worker scripts",
            ResourceKind::KvNamespace => "KV namespaces",
            ResourceKind::D1Database => "D1 databases",
            ResourceKind::Queue => "Queues",
            ResourceKind::HyperdriveConfig => "Hyperdrive configurations",
        }
    }
}

/// What a static-asset upload session declares, from its JSON manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AssetManifest {
    /// Number of files.
    pub files: u64,
    /// Largest declared file size, bytes.
    pub max_file_size: u64,
    /// Sum of declared sizes, bytes.
    pub total_bytes: u64,
}

/// Why an asset manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the static-asset manifest could not be read: {0}")]
pub struct ManifestError(pub String);

/// A deploy-API call, seen as what it does to the account's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceOp {
    /// Creates a resource. `name` is the script name for Worker scripts (a `PUT` of an
    /// existing script is an update, not a create) and `None` for the kinds whose id the
    /// platform assigns.
    Create {
        /// What is created.
        kind: ResourceKind,
        /// The client-chosen name, for Worker scripts.
        name: Option<String>,
    },
    /// Deletes a resource by its id (script name for Worker scripts).
    Delete {
        /// What is deleted.
        kind: ResourceKind,
        /// Its id or name, from the path.
        id: String,
    },
    /// Opens a static-asset upload session for a script. `manifest` is `None` until the
    /// gateway read the body ([`Classified::attach_manifest`]).
    AssetUpload {
        /// The script the assets belong to.
        script: String,
        /// What the manifest declares.
        manifest: Option<AssetManifest>,
    },
    /// Uploads static-asset files (`workers/assets/upload`, authorized by an upload
    /// session's token): the files' real sizes and count are checked while the body
    /// streams ([`AccountUsage::reserve_asset_file`]).
    AssetFiles,
    /// Anything else: no quota applies (beyond the body size).
    Other,
}

/// A classified call: the account in its path and the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The `{account_id}` of `/accounts/{account_id}/...`, when the path has one. The
    /// gateway should check it is the token's own account.
    pub account_id: Option<String>,
    /// The operation.
    pub op: ResourceOp,
}

impl Classified {
    /// Whether the gateway must buffer the body and call [`Classified::attach_manifest`]
    /// before checking (only asset-upload sessions).
    pub fn needs_body(&self) -> bool {
        matches!(self.op, ResourceOp::AssetUpload { manifest: None, .. })
    }

    /// Attaches the asset manifest read from the request body of an asset-upload
    /// session (with [`crate::platform::parse_asset_manifest`]); does nothing for other
    /// operations.
    pub fn attach_manifest(&mut self, read: AssetManifest) {
        if let ResourceOp::AssetUpload { manifest, .. } = &mut self.op {
            *manifest = Some(read);
        }
    }
}

// ---------------------------------------------------------------------------------------
// [quotas]
// ---------------------------------------------------------------------------------------

/// Compiled per-account quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Worker scripts per account.
    pub max_worker_scripts: u64,
    /// KV namespaces per account.
    pub max_kv_namespaces: u64,
    /// D1 databases per account.
    pub max_d1_databases: u64,
    /// Queues per account.
    pub max_queues: u64,
    /// Hyperdrive configurations per account.
    pub max_hyperdrive_configs: u64,
    /// Static-asset files per account: per upload session, and over all its uploads.
    pub max_asset_files: u64,
    /// Bytes per static-asset file.
    pub max_asset_file_bytes: u64,
    /// Bytes per request body.
    pub max_body_bytes: u64,
}

/// The platform's published limits for temporary accounts: a policy may lower them but
/// not raise them (the platform would refuse anyway, with a less helpful message).
pub const PLATFORM_MAX_D1_DATABASES: u64 = 1;
/// Published: at most 10 Queues.
pub const PLATFORM_MAX_QUEUES: u64 = 10;
/// Published: at most 2 Hyperdrive configurations.
pub const PLATFORM_MAX_HYPERDRIVE_CONFIGS: u64 = 2;
/// Published: at most 1,000 static-asset files.
pub const PLATFORM_MAX_ASSET_FILES: u64 = 1000;
/// Published: each static-asset file at most 5 MiB.
pub const PLATFORM_MAX_ASSET_FILE_BYTES: u64 = 5 * MIB;

impl Default for QuotaSpec {
    /// Platform limits where published; for the rest:
    /// - 5 Worker scripts: a temporary deploy is one project, which is one Worker or a
    ///   few (a service binding pair); more is someone using throwaway accounts as
    ///   free hosting.
    /// - 10 KV namespaces: generous for one project, small enough that a sweep of
    ///   unclaimed accounts stays cheap.
    /// - 64 MiB per body: above wrangler's 50 MiB asset-upload buckets and the
    ///   platform's 10 MiB compressed script size plus multipart overhead, low enough
    ///   that one call cannot tie up the gateway with a huge upload.
    fn default() -> Self {
        QuotaSpec {
            max_worker_scripts: 5,
            max_kv_namespaces: 10,
            max_d1_databases: PLATFORM_MAX_D1_DATABASES,
            max_queues: PLATFORM_MAX_QUEUES,
            max_hyperdrive_configs: PLATFORM_MAX_HYPERDRIVE_CONFIGS,
            max_asset_files: PLATFORM_MAX_ASSET_FILES,
            max_asset_file_bytes: PLATFORM_MAX_ASSET_FILE_BYTES,
            max_body_bytes: 64 * MIB,
        }
    }
}

impl QuotaSpec {
    /// The per-account limit of one resource kind.
    pub fn limit_of(&self, kind: ResourceKind) -> u64 {
        match kind {
            ResourceKind::WorkerScript => self.max_worker_scripts,
            ResourceKind::KvNamespace => self.max_kv_namespaces,
            ResourceKind::D1Database => self.max_d1_databases,
            ResourceKind::Queue => self.max_queues,
            ResourceKind::HyperdriveConfig => self.max_hyperdrive_configs,
        }
    }

    /// Refuses a request body above `max_body_bytes` (check `Content-Length` before
    /// reading, and the running count while streaming a chunked body).
    pub fn check_body_size(&self, len: u64) -> Result<(), QuotaRefusal> {
        if len <= self.max_body_bytes {
            return Ok(());
        }
        Err(QuotaRefusal {
            quota: "body_bytes".into(),
            limit: self.max_body_bytes,
            current: len,
            message: format!(
                "Quota \"body_bytes\" reached: a request to a temporary account may be at most {} bytes \
                 (this one is {len}). Make the upload smaller or claim the account to lift temporary-account limits.",
                self.max_body_bytes
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------

/// A refused operation, with a message wrangler shows the user as is.
///
/// The gateway should answer 403 in the v4 error envelope, not 429: wrangler retries
/// 429s, and waiting does not lift a quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaRefusal {
    /// Quota name (`queues`, `asset_files`, ...).
    pub quota: String,
    /// The limit.
    pub limit: u64,
    /// The current count (or the size that is too large).
    pub current: u64,
    /// User-facing message saying what to do.
    pub message: String,
}

/// What an account holds: the input of its cleanup cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceCounts {
    /// Worker scripts.
    pub worker_scripts: u64,
    /// KV namespaces.
    pub kv_namespaces: u64,
    /// D1 databases.
    pub d1_databases: u64,
    /// Queues.
    pub queues: u64,
    /// Hyperdrive configurations.
    pub hyperdrive_configs: u64,
    /// Static-asset files, over all scripts.
    pub asset_files: u64,
    /// Bytes of the static-asset files uploaded (the part of storage the gateway sees).
    pub stored_bytes: u64,
}

/// One account's resources, as committed through the gateway. Serialized (for a
/// durable store) without its reservations: creates in flight do not outlive the
/// process that forwarded them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUsage {
    /// Ids (names for scripts) per kind.
    resources: BTreeMap<ResourceKind, BTreeSet<String>>,
    /// Static-asset files uploaded, by content hash -> bytes, over all sessions (as the
    /// platform counts them: one account-wide set).
    asset_files: BTreeMap<String, u64>,
    /// Creates whose answer carried no readable id, numbered so they still count.
    anonymous: u64,
    /// Creates checked and forwarded whose answer has not come yet, per kind.
    #[serde(skip)]
    reserved: BTreeMap<ResourceKind, u64>,
    /// Asset files of uploads in flight, by content hash (counted once however many
    /// uploads carry them).
    #[serde(skip)]
    reserved_files: BTreeMap<String, u64>,
}

impl AccountUsage {
    /// An account with nothing in it.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many resources of `kind` the account holds.
    pub fn count(&self, kind: ResourceKind) -> u64 {
        self.resources.get(&kind).map_or(0, |s| s.len() as u64)
    }

    /// Checks an operation before forwarding it. Deletes and other calls always pass;
    /// an asset upload whose manifest was not attached is refused (fail closed: an
    /// unread manifest could hide any number of files).
    pub fn check(&self, spec: &QuotaSpec, op: &ResourceOp) -> Result<(), QuotaRefusal> {
        match op {
            ResourceOp::Create { kind, name } => {
                if let Some(name) = name {
                    if self.resources.get(kind).is_some_and(|s| s.contains(name)) {
                        return Ok(()); // an update of an existing script
                    }
                }
                let limit = spec.limit_of(*kind);
                let current = self.count(*kind);
                if current < limit {
                    return Ok(());
                }
                let quota = kind.quota_name();
                let what = kind.plural();
                Err(QuotaRefusal {
                    quota: quota.into(),
                    limit,
                    current,
                    message: format!(
                        "Quota \"{quota}\" reached: a temporary account may have at most {limit} {what} \
                         (it has {current}). Delete one or claim the account to lift temporary-account limits."
                    ),
                })
            }
            ResourceOp::AssetUpload { manifest: None, .. } => Err(QuotaRefusal {
                quota: "asset_files".into(),
                limit: spec.max_asset_files,
                current: 0,
                message: "The static-asset manifest of this upload could not be checked; \
                          send it as JSON {\"manifest\": {...}} and try again."
                    .into(),
            }),
            ResourceOp::AssetUpload { manifest: Some(m), script } => {
                if m.files > spec.max_asset_files {
                    return Err(QuotaRefusal {
                        quota: "asset_files".into(),
                        limit: spec.max_asset_files,
                        current: m.files,
                        message: format!(
                            "Quota \"asset_files\" reached: a temporary account may upload at most {} static-asset \
                             files for Worker \"{script}\" (this upload has {}). Upload fewer files or claim the \
                             account to lift temporary-account limits.",
                            spec.max_asset_files, m.files
                        ),
                    });
                }
                if m.max_file_size > spec.max_asset_file_bytes {
                    return Err(QuotaRefusal {
                        quota: "asset_file_bytes".into(),
                        limit: spec.max_asset_file_bytes,
                        current: m.max_file_size,
                        message: format!(
                            "Quota \"asset_file_bytes\" reached: each static-asset file of a temporary account may be \
                             at most {} bytes (the largest in this upload is {}). Shrink or drop that file, or claim \
                             the account to lift temporary-account limits.",
                            spec.max_asset_file_bytes, m.max_file_size
                        ),
                    });
                }
                Ok(())
            }
            ResourceOp::Delete { .. } | ResourceOp::AssetFiles | ResourceOp::Other => Ok(()),
        }
    }

    /// Records an operation the platform answered 2xx. `created_id` is the id from the
    /// answer ([`created_id`]) for kinds whose id the platform assigns; without it the
    /// resource still counts, under a placeholder. Deleting an unknown id does nothing,
    /// so replays and deletes of resources made before the gateway are harmless.
    pub fn commit(&mut self, op: &ResourceOp, created_id: Option<&str>) {
        match op {
            ResourceOp::Create { kind, name } => {
                let id = match (name, created_id) {
                    (Some(n), _) => n.clone(),
                    (None, Some(id)) => id.to_string(),
                    (None, None) => {
                        self.anonymous += 1;
                        format!("\u{0}unknown-{}", self.anonymous)
                    }
                };
                self.resources.entry(*kind).or_default().insert(id);
            }
            ResourceOp::Delete { kind, id } => {
                if let Some(set) = self.resources.get_mut(kind) {
                    set.remove(id);
                }
            }
            ResourceOp::AssetUpload { .. } | ResourceOp::AssetFiles | ResourceOp::Other => {}
        }
    }

    /// What the account holds now (for the cleanup-cost ledger).
    pub fn counts(&self) -> ResourceCounts {
        ResourceCounts {
            worker_scripts: self.count(ResourceKind::WorkerScript),
            kv_namespaces: self.count(ResourceKind::KvNamespace),
            d1_databases: self.count(ResourceKind::D1Database),
            queues: self.count(ResourceKind::Queue),
            hyperdrive_configs: self.count(ResourceKind::HyperdriveConfig),
            asset_files: self.asset_files.len() as u64,
            stored_bytes: self.asset_files.values().fold(0u64, |acc, b| acc.saturating_add(*b)),
        }
    }
}
