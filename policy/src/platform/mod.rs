//! Everything the gateway assumes about the deploy platform's wire contract, in one
//! place: pointing the gateway at another platform means reading (and changing) this
//! module only, one file per part of the contract.
//!
//! What a platform must provide:
//!
//! | What | Where | Read by |
//! |---|---|---|
//! | API base `/client/v4` (paths also served without it) | every path | [`crate::Policy::classify_resource`] |
//! | `POST {base}/provisioning/previews/challenge` -> `result: {challengeToken, seed (base64url), k, g}` | [`default_route_patterns`] | [`parse_challenge`], [`rewrite_challenge`] |
//! | `POST {base}/provisioning/previews`, body `{challengeToken, solution: {checkpoints}}` (one base64 string of 32-byte digests, or a list) | [`default_route_patterns`] | [`CreateBody`] |
//! | its 2xx answer `result.account: {id, apiToken, expiresAt (RFC 3339)}` | | [`CreatedAccount::parse`] |
//! | claim flows under `/claim/**` and `{base}/provisioning/previews/*/claim/**` | [`default_route_patterns`] | |
//! | the account API `{base}/accounts/{id}/...` (the prefix follows `[routes]`) | [`default_route_patterns`] | [`crate::Policy::classify_resource`] |
//! | resource paths under it: `workers/scripts/{name}` (PUT/DELETE, `.../assets-upload-session` POST), `storage/kv/namespaces`, `d1/database`, `queues`, `hyperdrive/configs` (POST creates, DELETE `.../{id}`) | | [`crate::Policy::classify_resource`] |
//! | creation answers naming the new id: KV `id`, D1 `uuid`, Queues `queue_id`, Hyperdrive `id` | | [`created_id`] |
//! | asset-upload manifest `{"manifest": {"/path": {"hash", "size"}}}` | | [`parse_asset_manifest`], [`manifest_sizes`] |
//! | its answer `result: {jwt, buckets}`: the JWT authorizes `POST {base}/accounts/{id}/workers/assets/upload[?base64=true]` (multipart, one part per file named by its hash) | | [`session_jwt`], [`AssetUploadScanner`] |
//! | events `{type: claimed\|expired\|deleted, account_id, at?, removed?}` | gateway's `POST /events` | [`PlatformEvent`] |
//! | status API `GET {url}/{account_id}` -> `result: {status, removed?\|resources?}`, 404 = deleted | | [`StatusAnswer`] |
//! | v4 envelopes `{success, errors: [{code, message}], messages, result}` | every answer | [`error_body`], [`codes`] |
//!
//! Values arriving from the platform are parsed without panicking: anything that does
//! not have the expected shape is `None` or an error, never a guess.

mod asset_upload;
mod envelope;
mod events;
mod provisioning;
mod resources;
mod routes;

pub use asset_upload::{multipart_boundary, AssetUploadScanner, ScannedFile, UploadError};
pub use envelope::{codes, error_body};
pub use events::{PlatformEvent, RemovedCounts, StatusAnswer};
pub use provisioning::{
    decode_seed, parse_challenge, rewrite_challenge, trim_create_body, CreateBody, CreatedAccount,
    Redeemer,
};
pub use resources::{created_id, manifest_sizes, parse_asset_manifest, session_jwt};
pub use routes::{classify_default, default_route_patterns};
pub(crate) use routes::{classify_resource, default_routes};

use serde_json::Value;

pub use crate::wire::rfc3339_to_unix;

/// The API base the platform serves its v4 API under; it also answers the same paths
/// without it, so classification accepts both.
pub const API_BASE: &str = "/client/v4";

/// How long an account lives when its creation answer gives no `expiresAt`.
pub const DEFAULT_ACCOUNT_LIFETIME_SECS: u64 = 3600;

/// The `result` object of a v4 envelope, or the value itself when it is not one.
pub(crate) fn result_of(v: &Value) -> &Value {
    match v.get("result") {
        Some(r) if r.is_object() => r,
        _ => v,
    }
}
