//! Everything the gateway assumes about the deploy platform's wire contract, in one
//! place: pointing the gateway at another platform means reading (and changing) this
//! file only.
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
//! | asset-upload manifest `{"manifest": {"/path": {"hash", "size"}}}` | | [`parse_asset_manifest`] |
//! | events `{type: claimed\|expired\|deleted, account_id, at?, removed?}` | gateway's `POST /events` | [`PlatformEvent`] |
//! | status API `GET {url}/{account_id}` -> `result: {status, removed?\|resources?}`, 404 = deleted | | [`StatusAnswer`] |
//! | v4 envelopes `{success, errors: [{code, message}], messages, result}` | every answer | [`error_body`], [`codes`] |
//!
//! Values arriving from the platform are parsed without panicking: anything that does
//! not have the expected shape is `None` or an error, never a guess.

use crate::economics::pow::{Challenge, PowError, WRANGLER_MAX_WORK};
use crate::economics::quota::{AssetManifest, Classified, ManifestError, ResourceCounts, ResourceKind, ResourceOp};
use crate::lang::route::{RouteClass, Routes};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;
use crate::wire::percent_decode;
use std::fmt;

pub use crate::wire::rfc3339_to_unix;

/// The API base the platform serves its v4 API under; it also answers the same paths
/// without it, so classification accepts both.
pub const API_BASE: &str = "/client/v4";

/// How long an account lives when its creation answer gives no `expiresAt`.
pub const DEFAULT_ACCOUNT_LIFETIME_SECS: u64 = 3600;

/// The built-in `METHOD /path` patterns of a route class, which `[routes]` may replace.
pub fn default_route_patterns(class: RouteClass) -> &'static [&'static str] {
    match class {
        RouteClass::ProvisionChallenge => &["POST /client/v4/provisioning/previews/challenge"],
        RouteClass::ProvisionCreate => &["POST /client/v4/provisioning/previews"],
        RouteClass::Claim => &["* /claim/**", "* /client/v4/provisioning/previews/*/claim/**"],
        RouteClass::DeployWrite => &[
            "PUT /client/v4/accounts/**",
            "POST /client/v4/accounts/**",
            "PATCH /client/v4/accounts/**",
            "DELETE /client/v4/accounts/**",
        ],
        RouteClass::DeployRead => &["GET /client/v4/accounts/**", "HEAD /client/v4/accounts/**"],
        RouteClass::Other => &[],
    }
}

/// Classifies a deploy-API call by method and path (query string allowed), with the
/// account-API prefix taken from the `deploy-write` and `deploy-read` patterns of
/// `routes` (a pattern `... /accounts/**` gives the prefix before `**`), so a `[routes]`
/// override moves classification with it. The same path without [`API_BASE`] is
/// accepted too. Segments are percent-decoded so `my%2Dworker` and `my-worker` count as
/// one script.
pub(crate) fn classify_resource(routes: &Routes, method: &str, path: &str) -> Classified {
    let other = Classified { account_id: None, op: ResourceOp::Other };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let base: Vec<&str> = API_BASE.split('/').filter(|s| !s.is_empty()).collect();
    let classes = [RouteClass::DeployWrite, RouteClass::DeployRead];
    let rest = match routes.rest_prefix_len(&classes, &segs) {
        Some(n) => &segs[n..],
        None => {
            let with_base: Vec<&str> = base.iter().chain(segs.iter()).copied().collect();
            match routes.rest_prefix_len(&classes, &with_base) {
                Some(n) if n >= base.len() => &segs[n - base.len()..],
                _ => return other,
            }
        }
    };
    let Some((account, rest)) = rest.split_first() else { return other };
    let m = method.to_ascii_uppercase();
    use ResourceKind::*;
    let create = |kind| ResourceOp::Create { kind, name: None };
    let delete = |kind, id: &str| ResourceOp::Delete { kind, id: id.to_string() };
    let op = match (m.as_str(), rest) {
        ("PUT", ["workers", "scripts", name]) => ResourceOp::Create { kind: WorkerScript, name: Some((*name).to_string()) },
        ("DELETE", ["workers", "scripts", name]) => delete(WorkerScript, name),
        ("POST", ["workers", "scripts", name, "assets-upload-session"]) => {
            ResourceOp::AssetUpload { script: (*name).to_string(), manifest: None }
        }
        ("POST", ["storage", "kv", "namespaces"]) => create(KvNamespace),
        ("DELETE", ["storage", "kv", "namespaces", id]) => delete(KvNamespace, id),
        ("POST", ["d1", "database"]) => create(D1Database),
        ("DELETE", ["d1", "database", id]) => delete(D1Database, id),
        ("POST", ["queues"]) => create(Queue),
        ("DELETE", ["queues", id]) => delete(Queue, id),
        ("POST", ["hyperdrive", "configs"]) => create(HyperdriveConfig),
        ("DELETE", ["hyperdrive", "configs", id]) => delete(HyperdriveConfig, id),
        _ => ResourceOp::Other,
    };
    Classified { account_id: Some((*account).to_string()), op }
}

/// [`crate::Policy::classify_resource`] with the built-in route patterns, for callers without a policy.
pub fn classify_default(method: &str, path: &str) -> Classified {
    static DEFAULTS: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
    classify_resource(DEFAULTS.get_or_init(Routes::defaults), method, path)
}

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
    let value: Value = serde_json::from_slice(body).map_err(|e| ManifestError(format!("invalid JSON: {e}")))?;
    let manifest = value
        .get("manifest")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ManifestError("no \"manifest\" object".into()))?;
    let mut out = AssetManifest::default();
    for (path, entry) in manifest {
        let size = entry
            .get("size")
            .and_then(|s| s.as_u64())
            .ok_or_else(|| ManifestError(format!("entry \"{path}\" has no non-negative integer \"size\"")))?;
        out.files += 1;
        out.max_file_size = out.max_file_size.max(size);
        out.total_bytes = out.total_bytes.saturating_add(size);
    }
    Ok(out)
}

/// base64url, padding optional (the platform sends it unpadded; be lenient on input).
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `result` object of a v4 envelope, or the value itself when it is not one.
fn result_of(v: &Value) -> &Value {
    match v.get("result") {
        Some(r) if r.is_object() => r,
        _ => v,
    }
}

fn get_u32(v: &Value, field: &str) -> Result<u32, PowError> {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| PowError::Malformed(format!("challenge has no valid \"{field}\"")))
}

/// Parses a challenge answer (the envelope or its `result`).
pub fn parse_challenge(json: &[u8]) -> Result<Challenge, PowError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| PowError::Malformed(format!("challenge is not JSON: {e}")))?;
    let r = result_of(&v);
    let field = |name: &str| {
        r.get(name).and_then(Value::as_str).ok_or_else(|| PowError::Malformed(format!("challenge has no \"{name}\"")))
    };
    let token = field("challengeToken")?;
    let seed = field("seed")?;
    Ok(Challenge { challenge_token: token.to_string(), seed: decode_seed(seed)?, k: get_u32(r, "k")?, g: get_u32(r, "g")? })
}

/// Decodes a base64url seed (padding optional).
pub fn decode_seed(seed: &str) -> Result<Vec<u8>, PowError> {
    URL_LENIENT.decode(seed.trim()).map_err(|e| PowError::Malformed(format!("seed is not base64url: {e}")))
}

/// Rewrites the `k` of a challenge answer (the envelope or its `result`) to `k_prime`,
/// keeping every other field. Refuses `k_prime < k` and `k_prime * g` above wrangler's
/// cap (wrangler would refuse the challenge, so the deploy would fail).
pub fn rewrite_challenge(json: &[u8], k_prime: u32) -> Result<Vec<u8>, PowError> {
    let mut v: Value = serde_json::from_slice(json).map_err(|e| PowError::Malformed(format!("challenge is not JSON: {e}")))?;
    let is_envelope = v.get("result").is_some_and(Value::is_object);
    let r = if is_envelope { v.get_mut("result") } else { Some(&mut v) };
    let r = r.ok_or_else(|| PowError::Malformed("challenge has no result".into()))?;
    let k = get_u32(r, "k")?;
    let g = get_u32(r, "g")?;
    check_difficulty(k, k_prime, g)?;
    let obj = r.as_object_mut().ok_or_else(|| PowError::Malformed("challenge result is not an object".into()))?;
    obj.insert("k".into(), Value::from(k_prime));
    serde_json::to_vec(&v).map_err(|e| PowError::Malformed(e.to_string()))
}

/// Refuses a `k'` below the platform's `k`, a `g` of 0, and `k' * g` above wrangler's cap.
pub(crate) fn check_difficulty(k: u32, k_prime: u32, g: u32) -> Result<(), PowError> {
    if k_prime < k || g == 0 || u64::from(k_prime) * u64::from(g) > WRANGLER_MAX_WORK {
        return Err(PowError::BadDifficulty { k, k_prime, g, max: WRANGLER_MAX_WORK });
    }
    Ok(())
}

/// One checkpoint: standard base64 of a 32-byte SHA-256 digest.
pub(crate) fn decode_checkpoint(s: &str, index: usize) -> Result<[u8; 32], PowError> {
    STANDARD
        .decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or(PowError::BadCheckpoint { index })
}

/// The body of `POST .../provisioning/previews`: `{challengeToken, solution:
/// {checkpoints}, ...}`. Everything but the checkpoints is forwarded as sent.
pub struct CreateBody {
    value: Value,
}

impl fmt::Debug for CreateBody {
    /// The body is left out: its challenge token is the handle to a solution in flight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateBody").finish_non_exhaustive()
    }
}

impl CreateBody {
    /// Parses the body; it must be JSON.
    pub fn parse(body: &[u8]) -> Result<CreateBody, PowError> {
        let value = serde_json::from_slice(body).map_err(|e| PowError::Malformed(format!("request body is not JSON: {e}")))?;
        Ok(CreateBody { value })
    }

    /// The challenge the solution answers, if the body names one.
    pub fn challenge_token(&self) -> Option<&str> {
        self.value.get("challengeToken").and_then(Value::as_str)
    }

    /// The checkpoints as per-digest strings, and whether the client sent them in
    /// wrangler's one-string form (every digest back to back, standard base64) rather
    /// than as a list; answer in the form the client used.
    pub fn checkpoints(&self) -> Result<(Vec<String>, bool), PowError> {
        let raw = self
            .value
            .get("solution")
            .and_then(|s| s.get("checkpoints"))
            .ok_or_else(|| PowError::Malformed("no solution.checkpoints".into()))?;
        match raw {
            Value::String(joined) => Ok((split_concatenated(joined)?, true)),
            Value::Array(items) => Ok((
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c.as_str().map(str::to_string).ok_or(PowError::BadCheckpoint { index: i }))
                    .collect::<Result<Vec<_>, _>>()?,
                false,
            )),
            _ => Err(PowError::Malformed("solution.checkpoints is neither a string nor a list".into())),
        }
    }

    /// The body to forward, with `checkpoints` in place of the client's (joined into
    /// one string when `concatenated`).
    pub fn with_checkpoints(mut self, checkpoints: &[String], concatenated: bool) -> Result<Vec<u8>, PowError> {
        let forwarded = if concatenated { Value::from(join_concatenated(checkpoints)?) } else { Value::from(checkpoints.to_vec()) };
        if let Some(sol) = self.value.get_mut("solution").and_then(Value::as_object_mut) {
            sol.insert("checkpoints".into(), forwarded);
        }
        serde_json::to_vec(&self.value).map_err(|e| PowError::Malformed(e.to_string()))
    }
}

/// Splits wrangler's one-string form into per-digest strings.
fn split_concatenated(joined: &str) -> Result<Vec<String>, PowError> {
    let bytes = STANDARD
        .decode(joined.trim())
        .map_err(|_| PowError::Malformed("solution.checkpoints is not base64".into()))?;
    if bytes.is_empty() || bytes.len() % 32 != 0 {
        return Err(PowError::Malformed(format!(
            "solution.checkpoints holds {} bytes, not a whole number of 32-byte digests",
            bytes.len()
        )));
    }
    Ok(bytes.chunks(32).map(|c| STANDARD.encode(c)).collect())
}

/// The inverse of [`split_concatenated`].
fn join_concatenated(checkpoints: &[String]) -> Result<String, PowError> {
    let mut bytes = Vec::with_capacity(checkpoints.len() * 32);
    for (i, c) in checkpoints.iter().enumerate() {
        bytes.extend_from_slice(&decode_checkpoint(c, i)?);
    }
    Ok(STANDARD.encode(bytes))
}

/// A temporary account from the platform's 2xx answer to `POST .../previews`.
///
/// `api_token` is a secret: whoever holds it owns the account. Hash it at once (with
/// [`crate::accounts::TokenHasher`]), drop this value, and never log it; `Debug`
/// prints it redacted for that reason.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedAccount {
    /// `result.account.id`.
    pub id: String,
    /// `result.account.apiToken`: secret, see the type's docs.
    pub api_token: String,
    /// `result.account.expiresAt` as unix seconds, when present and valid RFC 3339.
    pub expires_at: Option<u64>,
}

impl fmt::Debug for CreatedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedAccount")
            .field("id", &self.id)
            .field("api_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl CreatedAccount {
    /// Reads `result.account.{id, apiToken, expiresAt}`; `None` without an id or token.
    pub fn parse(answer: &[u8]) -> Option<CreatedAccount> {
        let v: Value = serde_json::from_slice(answer).ok()?;
        let account = v.get("result")?.get("account")?;
        Some(CreatedAccount {
            id: account.get("id")?.as_str()?.to_string(),
            api_token: account.get("apiToken")?.as_str()?.to_string(),
            expires_at: account.get("expiresAt").and_then(Value::as_str).and_then(rfc3339_to_unix),
        })
    }

    /// Expiry in unix seconds, or `now` plus [`DEFAULT_ACCOUNT_LIFETIME_SECS`] when the
    /// platform did not say.
    pub fn expires_at_or(&self, now: u64) -> u64 {
        self.expires_at.unwrap_or(now + DEFAULT_ACCOUNT_LIFETIME_SECS)
    }
}

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
        PlatformEvent { kind: self.status, account_id: account_id.to_string(), at: None, removed: self.removed }
    }
}

/// Error codes the gateway uses in its own envelopes. They sit in a range of their own
/// so that support staff can tell a gateway refusal from an API error at a glance.
pub mod codes {
    /// A rate limit refused the request.
    pub const RATE_LIMITED: u32 = 971;
    /// A deny list or deny rule refused the request.
    pub const DENIED: u32 = 972;
    /// A resource quota of the temporary account refused the request.
    pub const QUOTA: u32 = 973;
    /// The cleanup budget of the source is exhausted.
    pub const BUDGET: u32 = 974;
    /// The proof-of-work solution failed the gateway's own check.
    pub const POW: u32 = 975;
    /// The deploy API could not be reached.
    pub const UPSTREAM_UNREACHABLE: u32 = 980;
    /// The deploy API did not answer in time.
    pub const UPSTREAM_TIMEOUT: u32 = 981;
    /// The request could not be understood.
    pub const BAD_REQUEST: u32 = 982;
}

/// Builds `{"success":false,"errors":[{"code":..,"message":..}],"messages":[],"result":null}`:
/// wrangler prints the first error's message verbatim, so the gateway's own answers
/// use the envelope of the API it fronts.
pub fn error_body(code: u32, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    });
    body.to_string().into_bytes()
}
