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

/// The declared size of every file of an asset-upload manifest, by content hash (the
/// largest, should a hash appear twice): what the uploads of that session may carry.
pub fn manifest_sizes(
    body: &[u8],
) -> Result<std::collections::BTreeMap<String, u64>, ManifestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ManifestError(format!("invalid JSON: {e}")))?;
    let manifest = value
        .get("manifest")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ManifestError("no \"manifest\" object".into()))?;
    let mut out = std::collections::BTreeMap::new();
    for (path, entry) in manifest {
        let size = entry.get("size").and_then(|s| s.as_u64());
        let hash = entry.get("hash").and_then(|h| h.as_str());
        let (Some(size), Some(hash)) = (size, hash) else {
            return Err(ManifestError(format!("entry \"{path}\" needs a \"hash\" and a \"size\"")));
        };
        let slot = out.entry(hash.to_string()).or_insert(0u64);
        *slot = (*slot).max(size);
    }
    Ok(out)
}

/// The upload token of an asset-upload session's 2xx answer (`result.jwt`), which
/// authorizes that session's file uploads.
pub fn session_jwt(answer: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(answer).ok()?;
    let result = value.get("result").unwrap_or(&value);
    result.get("jwt")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}
