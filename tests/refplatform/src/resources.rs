//! Account resources with create/list/get/delete, on the real API's paths:
//! KV namespaces, D1 databases, Queues, Hyperdrive configs and static-asset
//! uploads.
//!
//! The platform enforces the limits of temporary accounts
//! ([`crate::PlatformLimits`]: the published ones, body size by the router's
//! body limit) as the real one does, so a gateway in front that miscounts is
//! caught by comparing its counts with the platform's.
//!
//! The four resource kinds behave alike (a per-account map by id, a unique
//! name, a JSON view, a not-found message), so one set of generic handlers
//! serves them all through [`Resource`]; each kind states only its paths,
//! wording and JSON shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Multipart, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::accounts::{Account, D1Database, HyperdriveConfig, KvNamespace, Queue};
use crate::call::{AccountItem, AccountRoot};
use crate::config::PlatformLimits;
use crate::envelope::{limit_reached, ok, ok_list, ApiError, ApiResult, CODE_AUTH, CODE_CONFLICT};
use crate::multipart::read_all;
use crate::platform::{
    bearer_token, digest, random_hex, random_secret, random_uuid, rfc3339, AssetSession,
};
use crate::Platform;

fn json_body(body: Option<Json<Value>>) -> Result<Value, ApiError> {
    match body {
        Some(Json(v)) if v.is_object() => Ok(v),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` is required")))
}

fn conflict(what: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, CODE_CONFLICT, format!("{what} already exists"))
}

/// One kind of account resource: kept in a per-account map by id, named
/// uniquely within the account, shown as JSON. The constants are wire
/// text that wrangler and the tests read, so each kind keeps the real
/// API's own wording.
pub(crate) trait Resource: Sized + 'static {
    /// The collection's path below `/accounts/{account}/`.
    const PATH: &'static str;
    /// The create body's field holding the (unique) name.
    const NAME_FIELD: &'static str;
    /// What a duplicate name collides with; the conflict error reads
    /// "{CONFLICT} already exists".
    const CONFLICT: &'static str;
    /// The 404 message for an unknown id.
    const NOT_FOUND: &'static str;

    /// The account's resources of this kind, by id.
    fn store(acct: &mut Account) -> &mut BTreeMap<String, Self>;
    /// How many of this kind an account may have, and their name in a refusal.
    fn limit(limits: &PlatformLimits) -> (usize, &'static str);
    /// The id it is stored (and addressed) under.
    fn id(&self) -> &str;
    /// The name that must be unique within the account.
    fn name(&self) -> &str;
    /// A new resource called `name`; `body` is the whole create request,
    /// for kinds that take more than a name.
    fn build(name: &str, body: &Value, now: OffsetDateTime) -> Self;
    /// The API's view of it.
    fn to_json(&self) -> Value;
    /// The `result` of a successful delete: `null`, except where the real
    /// API answers otherwise.
    fn deleted() -> Value {
        Value::Null
    }
}

fn missing<R: Resource>() -> ApiError {
    ApiError::not_found(R::NOT_FOUND)
}

/// The collection route (list, create) and item route (get, delete) of
/// kind `R` under the account prefix `acct`.
pub(crate) fn routes<R: Resource>(acct: &str) -> Router<Arc<Platform>> {
    Router::new()
        .route(&format!("{acct}/{}", R::PATH), get(list::<R>).post(create::<R>))
        .route(&format!("{acct}/{}/{{id}}", R::PATH), get(get_one::<R>).delete(delete::<R>))
}

/// `POST {PATH}` with `{NAME_FIELD: ...}`: the body is read only once the
/// caller is authorized, and a taken name is a conflict.
async fn create<R: Resource>(call: AccountRoot, body: Option<Json<Value>>) -> ApiResult {
    let (limit, what) = R::limit(&call.platform.config.limits);
    call.with_account(|acct, now| {
        let body = json_body(body)?;
        let name = required_str(&body, R::NAME_FIELD)?;
        let store = R::store(acct);
        if store.values().any(|r| r.name() == name) {
            return Err(conflict(R::CONFLICT));
        }
        if store.len() >= limit {
            return Err(limit_reached(what, limit));
        }
        let r = R::build(name, &body, now);
        let out = r.to_json();
        store.insert(r.id().to_string(), r);
        Ok(ok(out))
    })
}

/// `GET {PATH}`
async fn list<R: Resource>(call: AccountRoot) -> ApiResult {
    call.with_account(|acct, _| Ok(ok_list(R::store(acct).values().map(R::to_json).collect())))
}

/// `GET {PATH}/{id}`
async fn get_one<R: Resource>(call: AccountItem) -> ApiResult {
    call.with_account(|acct, _| {
        let r = R::store(acct).get(call.item()).ok_or_else(missing::<R>)?;
        Ok(ok(r.to_json()))
    })
}

/// `DELETE {PATH}/{id}`
async fn delete<R: Resource>(call: AccountItem) -> ApiResult {
    call.with_account(|acct, _| {
        R::store(acct).remove(call.item()).ok_or_else(missing::<R>)?;
        Ok(ok(R::deleted()))
    })
}

/// `storage/kv/namespaces`, with `{"title"}`.
impl Resource for KvNamespace {
    const PATH: &'static str = "storage/kv/namespaces";
    const NAME_FIELD: &'static str = "title";
    const CONFLICT: &'static str = "a namespace with this account ID and title";
    const NOT_FOUND: &'static str = "namespace not found";

    fn store(acct: &mut Account) -> &mut BTreeMap<String, Self> {
        &mut acct.kv
    }
    fn limit(limits: &PlatformLimits) -> (usize, &'static str) {
        (limits.kv_namespaces, "KV namespaces")
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.title
    }
    fn build(title: &str, _: &Value, _: OffsetDateTime) -> Self {
        KvNamespace { id: random_hex(16), title: title.to_string() }
    }
    fn to_json(&self) -> Value {
        json!({"id": self.id, "title": self.title, "supports_url_encoding": true})
    }
    /// KV's delete answers an empty object, not `null`.
    fn deleted() -> Value {
        json!({})
    }
}

/// `d1/database`, with `{"name"}`.
impl Resource for D1Database {
    const PATH: &'static str = "d1/database";
    const NAME_FIELD: &'static str = "name";
    const CONFLICT: &'static str = "a database with this name";
    const NOT_FOUND: &'static str = "database not found";

    fn store(acct: &mut Account) -> &mut BTreeMap<String, Self> {
        &mut acct.d1
    }
    fn limit(limits: &PlatformLimits) -> (usize, &'static str) {
        (limits.d1_databases, "D1 databases")
    }
    fn id(&self) -> &str {
        &self.uuid
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn build(name: &str, _: &Value, now: OffsetDateTime) -> Self {
        D1Database { uuid: random_uuid(), name: name.to_string(), created_at: now, file_size: 0 }
    }
    fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "name": self.name,
            "created_at": rfc3339(self.created_at),
            "version": "production",
            "num_tables": 0,
            "file_size": self.file_size,
        })
    }
}

/// `queues`, with `{"queue_name"}`.
impl Resource for Queue {
    const PATH: &'static str = "queues";
    const NAME_FIELD: &'static str = "queue_name";
    const CONFLICT: &'static str = "a queue with this name";
    const NOT_FOUND: &'static str = "queue not found";

    fn store(acct: &mut Account) -> &mut BTreeMap<String, Self> {
        &mut acct.queues
    }
    fn limit(limits: &PlatformLimits) -> (usize, &'static str) {
        (limits.queues, "Queues")
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn build(name: &str, _: &Value, now: OffsetDateTime) -> Self {
        Queue { id: random_hex(16), name: name.to_string(), created_on: now }
    }
    fn to_json(&self) -> Value {
        json!({
            "queue_id": self.id,
            "queue_name": self.name,
            "created_on": rfc3339(self.created_on),
            "modified_on": rfc3339(self.created_on),
            "producers": [],
            "producers_total_count": 0,
            "consumers": [],
            "consumers_total_count": 0,
            "settings": {"delivery_delay": 0, "message_retention_period": 345600},
        })
    }
}

/// `hyperdrive/configs`, with `{"name","origin":{...}}`.
impl Resource for HyperdriveConfig {
    const PATH: &'static str = "hyperdrive/configs";
    const NAME_FIELD: &'static str = "name";
    const CONFLICT: &'static str = "a Hyperdrive config with this name";
    const NOT_FOUND: &'static str = "Hyperdrive config not found";

    fn store(acct: &mut Account) -> &mut BTreeMap<String, Self> {
        &mut acct.hyperdrive
    }
    fn limit(limits: &PlatformLimits) -> (usize, &'static str) {
        (limits.hyperdrive_configs, "Hyperdrive configurations")
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    /// The origin's password and access secret are dropped on receipt: an
    /// emulator has no use for them and must not echo or keep secrets.
    fn build(name: &str, body: &Value, _: OffsetDateTime) -> Self {
        let mut origin = body.get("origin").cloned().unwrap_or_else(|| json!({}));
        if let Value::Object(m) = &mut origin {
            m.remove("password");
            m.remove("access_client_secret");
        }
        HyperdriveConfig { id: random_hex(16), name: name.to_string(), origin }
    }
    fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "origin": self.origin, "caching": {"disabled": false}})
    }
}

// ---------- Static assets ----------

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    hash: String,
    size: u64,
}

/// Files per upload bucket handed back to the client.
const BUCKET_SIZE: usize = 50;

/// A JWT-shaped token: wrangler decodes the payload (for `exp` and upload
/// mode flags) but cannot check the signature, so the third segment is
/// just random.
fn session_jwt(exp: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(json!({"exp": exp, "sid": random_hex(8)}).to_string().as_bytes());
    format!("{header}.{payload}.{}", random_secret())
}

/// `POST workers/scripts/{name}/assets-upload-session` with
/// `{"manifest": {"/path": {"hash","size"}}}`. Answers the files the
/// account does not have yet, in buckets, plus an upload token; when
/// nothing is missing the token is already the completion token.
pub(crate) async fn assets_session(call: AccountItem, body: Option<Json<Value>>) -> ApiResult {
    let p = &call.platform;
    let body = json_body(body)?;
    let manifest: HashMap<String, ManifestEntry> =
        serde_json::from_value(body.get("manifest").cloned().unwrap_or_else(|| json!({})))
            .map_err(|e| ApiError::bad_request(format!("bad manifest: {e}")))?;
    let exp = (p.now() + time::Duration::hours(1)).unix_timestamp();
    let limits = &p.config.limits;
    if let Some(e) = manifest.values().find(|e| e.size > limits.asset_file_bytes) {
        return Err(limit_reached(
            "bytes per static-asset file",
            format!("{} (a file of {} was declared)", limits.asset_file_bytes, e.size),
        ));
    }
    let (pending, upload_jwt, completion) = call.with_account(|acct, _| {
        let mut pending: HashMap<String, u64> = HashMap::new();
        for e in manifest.values() {
            if !acct.asset_files.contains_key(&e.hash) {
                pending.insert(e.hash.clone(), e.size);
            }
        }
        if acct.asset_files.len() + pending.len() > limits.asset_files {
            return Err(limit_reached("static-asset files", limits.asset_files));
        }
        Ok((pending, session_jwt(exp), session_jwt(exp)))
    })?;
    if pending.is_empty() {
        return Ok(ok(json!({"jwt": completion, "buckets": []})));
    }
    let mut hashes: Vec<String> = pending.keys().cloned().collect();
    hashes.sort();
    let buckets: Vec<Vec<String>> = hashes.chunks(BUCKET_SIZE).map(<[String]>::to_vec).collect();
    p.state.lock().asset_sessions.insert(
        digest(&upload_jwt),
        AssetSession {
            account_id: call.account_id().to_string(),
            pending,
            completion_token: completion,
        },
    );
    Ok(ok(json!({"jwt": upload_jwt, "buckets": buckets})))
}

/// Query of the bulk upload call.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    base64: Option<bool>,
}

/// `POST workers/assets/upload?base64=true` (multipart, one part per file
/// named by its hash), authorized by the session's upload token rather
/// than the account token. Answers 201 with the completion token once
/// every pending file has arrived, 202 before that.
pub(crate) async fn assets_upload(
    call: AccountRoot,
    Query(q): Query<UploadQuery>,
    mp: Multipart,
) -> ApiResult {
    let (p, account) = (&call.platform, call.account_id());
    let token = bearer_token(&call.headers).ok_or_else(ApiError::unauthenticated)?;
    let key = digest(token);
    {
        let st = p.state.lock();
        let s = st.asset_sessions.get(&key).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                CODE_AUTH,
                "invalid or expired asset upload token",
            )
        })?;
        if s.account_id != account {
            return Err(ApiError::forbidden());
        }
    }
    let parts = read_all(mp).await?;
    let mut files = Vec::with_capacity(parts.len());
    for part in parts {
        let size = if q.base64.unwrap_or(false) {
            let text: Vec<u8> =
                part.bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            STANDARD
                .decode(&text)
                .map_err(|e| {
                    ApiError::bad_request(format!("part {} is not base64: {e}", part.name))
                })?
                .len() as u64
        } else {
            part.bytes.len() as u64
        };
        files.push((part.name, size));
    }
    let now = p.now();
    let mut st = p.state.lock();
    let usable = st.accounts.get(account).map(|a| a.usable_at(now)).unwrap_or(false);
    if !usable {
        return Err(ApiError::unauthenticated());
    }
    let session = st.asset_sessions.get(&key).ok_or_else(ApiError::unauthenticated)?;
    let limits = &p.config.limits;
    for (hash, size) in &files {
        let Some(declared) = session.pending.get(hash) else {
            return Err(ApiError::bad_request(format!(
                "file {hash} is not part of this upload session"
            )));
        };
        if *size > limits.asset_file_bytes || size > declared {
            return Err(limit_reached(
                "bytes per static-asset file, and no more than its manifest declared",
                limits.asset_file_bytes,
            ));
        }
    }
    let held = st.accounts.get(account).map(|a| a.asset_files.clone()).unwrap_or_default();
    let new_files = files.iter().filter(|(h, _)| !held.contains_key(h)).count();
    if held.len() + new_files > limits.asset_files {
        return Err(limit_reached("static-asset files", limits.asset_files));
    }
    let Some(session) = st.asset_sessions.get_mut(&key) else {
        return Err(ApiError::unauthenticated());
    };
    for (hash, _) in &files {
        session.pending.remove(hash);
    }
    let done = session.pending.is_empty();
    let completion = session.completion_token.clone();
    if done {
        st.asset_sessions.remove(&key);
    }
    if let Some(acct) = st.accounts.get_mut(account) {
        for (hash, size) in files {
            acct.asset_files.insert(hash, size);
        }
    }
    drop(st);
    if done {
        Ok((StatusCode::CREATED, ok(json!({"jwt": completion}))).into_response())
    } else {
        Ok((StatusCode::ACCEPTED, ok(json!({"jwt": null}))).into_response())
    }
}
