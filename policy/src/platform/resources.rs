//! What resource calls send and answer: created ids, asset manifests.

use crate::economics::quota::{AssetManifest, ManifestError, ResourceKind};
use serde_json::Value;

/// Where the platform puts the new id in a creation answer's `result` (scripts are
/// named by the client, so they have none).
fn id_field(kind: ResourceKind) -> Option<&'static str> {
    match kind {
        ResourceKind::WorkerScript => None,
        ResourceKind::KvNamespace | ResourceKind::HyperdriveConfig => Some("id"),
        ResourceKind::D1Database => Some("uuid"),
        ResourceKind::Queue => Some("queue_id"),
    }
}

/// The id of a resource from the platform's 2xx creation answer (the v4 envelope or
/// just its `result`), for [`crate::quota::AccountUsage::commit`].
pub fn created_id(kind: ResourceKind, answer: &[u8]) -> Option<String> {
    let field = id_field(kind)?;
    let value: Value = serde_json::from_slice(answer).ok()?;
    let result = value.get("result").unwrap_or(&value);
    result.get(field)?.as_str().map(str::to_string)
}

/// Reads an asset-upload manifest `{"manifest": {"/path": {"hash": "...", "size": N}}}`.
///
/// A manifest that does not have this shape is an error rather than "0 files": the
/// gateway must not let an unreadable manifest through unchecked.
pub fn parse_asset_manifest(body: &[u8]) -> Result<AssetManifest, ManifestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ManifestError(format!("invalid JSON: {e}")))?;
    let manifest = value
        .get("manifest")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ManifestError("no \"manifest\" object".into()))?;
    let mut out = AssetManifest::default();
    for (path, entry) in manifest {
        let size = entry.get("size").and_then(|s| s.as_u64()).ok_or_else(|| {
            ManifestError(format!("entry \"{path}\" has no non-negative integer \"size\""))
        })?;
        out.files += 1;
        out.max_file_size = out.max_file_size.max(size);
        out.total_bytes = out.total_bytes.saturating_add(size);
    }
    Ok(out)
}
