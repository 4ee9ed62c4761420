//! Account resources with create/list/delete, on the real API's paths:
//! KV namespaces, D1 databases, Queues, Hyperdrive configs and static-asset
//! uploads.
//!
//! The platform does not enforce the published quotas (the gateway in
//! front does); it only records what exists so counts and bytes can be
//! checked and cleaned up.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::{D1Database, HyperdriveConfig, KvNamespace, Queue};
use crate::envelope::{ok, ok_list, ApiError, ApiResult, CODE_AUTH, CODE_CONFLICT};
use crate::multipart::read_all;
use crate::platform::{bearer_token, digest, random_hex, random_secret, random_uuid, rfc3339, AssetSession};
use crate::Platform;

type AcctPath = Path<String>;
type ItemPath = Path<(String, String)>;

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

// ---------- KV ----------

fn kv_json(ns: &KvNamespace) -> Value {
    json!({"id": ns.id, "title": ns.title, "supports_url_encoding": true})
}

/// `POST storage/kv/namespaces` with `{"title"}`.
pub(crate) async fn kv_create(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let body = json_body(body)?;
        let title = required_str(&body, "title")?;
        if acct.kv.values().any(|n| n.title == title) {
            return Err(conflict("a namespace with this account ID and title"));
        }
        let ns = KvNamespace {
            id: random_hex(16),
            title: title.to_string(),
        };
        let out = kv_json(&ns);
        acct.kv.insert(ns.id.clone(), ns);
        Ok(ok(out))
    })
}

/// `GET storage/kv/namespaces`
pub(crate) async fn kv_list(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        Ok(ok_list(acct.kv.values().map(kv_json).collect()))
    })
}

/// `GET storage/kv/namespaces/{id}`
pub(crate) async fn kv_get(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let ns = acct.kv.get(&id).ok_or_else(|| ApiError::not_found("namespace not found"))?;
        Ok(ok(kv_json(ns)))
    })
}

/// `DELETE storage/kv/namespaces/{id}`
pub(crate) async fn kv_delete(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        acct.kv.remove(&id).ok_or_else(|| ApiError::not_found("namespace not found"))?;
        Ok(ok(json!({})))
    })
}

// ---------- D1 ----------

fn d1_json(db: &D1Database) -> Value {
    json!({
        "uuid": db.uuid,
        "name": db.name,
        "created_at": rfc3339(db.created_at),
        "version": "production",
        "num_tables": 0,
        "file_size": db.file_size,
    })
}

/// `POST d1/database` with `{"name"}`.
pub(crate) async fn d1_create(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, now| {
        let body = json_body(body)?;
        let name = required_str(&body, "name")?;
        if acct.d1.values().any(|d| d.name == name) {
            return Err(conflict("a database with this name"));
        }
        let db = D1Database {
            uuid: random_uuid(),
            name: name.to_string(),
            created_at: now,
            file_size: 0,
        };
        let out = d1_json(&db);
        acct.d1.insert(db.uuid.clone(), db);
        Ok(ok(out))
    })
}

/// `GET d1/database`
pub(crate) async fn d1_list(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        Ok(ok_list(acct.d1.values().map(d1_json).collect()))
    })
}

/// `GET d1/database/{uuid}`
pub(crate) async fn d1_get(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let db = acct.d1.get(&id).ok_or_else(|| ApiError::not_found("database not found"))?;
        Ok(ok(d1_json(db)))
    })
}

/// `DELETE d1/database/{uuid}`
pub(crate) async fn d1_delete(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        acct.d1.remove(&id).ok_or_else(|| ApiError::not_found("database not found"))?;
        Ok(ok(Value::Null))
    })
}

// ---------- Queues ----------

fn queue_json(q: &Queue) -> Value {
    json!({
        "queue_id": q.id,
        "queue_name": q.name,
        "created_on": rfc3339(q.created_on),
        "modified_on": rfc3339(q.created_on),
        "producers": [],
        "producers_total_count": 0,
        "consumers": [],
        "consumers_total_count": 0,
        "settings": {"delivery_delay": 0, "message_retention_period": 345600},
    })
}

/// `POST queues` with `{"queue_name"}`.
pub(crate) async fn queue_create(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, now| {
        let body = json_body(body)?;
        let name = required_str(&body, "queue_name")?;
        if acct.queues.values().any(|q| q.name == name) {
            return Err(conflict("a queue with this name"));
        }
        let q = Queue {
            id: random_hex(16),
            name: name.to_string(),
            created_on: now,
        };
        let out = queue_json(&q);
        acct.queues.insert(q.id.clone(), q);
        Ok(ok(out))
    })
}

/// `GET queues`
pub(crate) async fn queue_list(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        Ok(ok_list(acct.queues.values().map(queue_json).collect()))
    })
}

/// `GET queues/{id}`
pub(crate) async fn queue_get(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let q = acct.queues.get(&id).ok_or_else(|| ApiError::not_found("queue not found"))?;
        Ok(ok(queue_json(q)))
    })
}

/// `DELETE queues/{id}`
pub(crate) async fn queue_delete(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        acct.queues.remove(&id).ok_or_else(|| ApiError::not_found("queue not found"))?;
        Ok(ok(Value::Null))
    })
}

// ---------- Hyperdrive ----------

fn hyperdrive_json(h: &HyperdriveConfig) -> Value {
    json!({"id": h.id, "name": h.name, "origin": h.origin, "caching": {"disabled": false}})
}

/// `POST hyperdrive/configs` with `{"name","origin":{...}}`. The origin
/// password is dropped on receipt: an emulator has no use for it and must
/// not echo or keep secrets.
pub(crate) async fn hyperdrive_create(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let body = json_body(body)?;
        let name = required_str(&body, "name")?;
        if acct.hyperdrive.values().any(|h| h.name == name) {
            return Err(conflict("a Hyperdrive config with this name"));
        }
        let mut origin = body.get("origin").cloned().unwrap_or_else(|| json!({}));
        if let Value::Object(m) = &mut origin {
            m.remove("password");
            m.remove("access_client_secret");
        }
        let h = HyperdriveConfig {
            id: random_hex(16),
            name: name.to_string(),
            origin,
        };
        let out = hyperdrive_json(&h);
        acct.hyperdrive.insert(h.id.clone(), h);
        Ok(ok(out))
    })
}

/// `GET hyperdrive/configs`
pub(crate) async fn hyperdrive_list(
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        Ok(ok_list(acct.hyperdrive.values().map(hyperdrive_json).collect()))
    })
}

/// `GET hyperdrive/configs/{id}`
pub(crate) async fn hyperdrive_get(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        let h = acct
            .hyperdrive
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Hyperdrive config not found"))?;
        Ok(ok(hyperdrive_json(h)))
    })
}

/// `DELETE hyperdrive/configs/{id}`
pub(crate) async fn hyperdrive_delete(
    State(p): State<Arc<Platform>>,
    Path((account, id)): ItemPath,
    headers: HeaderMap,
) -> ApiResult {
    p.with_account(&headers, &account, |acct, _| {
        acct.hyperdrive
            .remove(&id)
            .ok_or_else(|| ApiError::not_found("Hyperdrive config not found"))?;
        Ok(ok(Value::Null))
    })
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
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"exp": exp, "sid": random_hex(8)}).to_string().as_bytes(),
    );
    format!("{header}.{payload}.{}", random_secret())
}

/// `POST workers/scripts/{name}/assets-upload-session` with
/// `{"manifest": {"/path": {"hash","size"}}}`. Answers the files the
/// account does not have yet, in buckets, plus an upload token; when
/// nothing is missing the token is already the completion token.
pub(crate) async fn assets_session(
    State(p): State<Arc<Platform>>,
    Path((account, _script)): ItemPath,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> ApiResult {
    let body = json_body(body)?;
    let manifest: HashMap<String, ManifestEntry> = serde_json::from_value(
        body.get("manifest").cloned().unwrap_or_else(|| json!({})),
    )
    .map_err(|e| ApiError::bad_request(format!("bad manifest: {e}")))?;
    let exp = (p.now() + time::Duration::hours(1)).unix_timestamp();
    let (pending, upload_jwt, completion) = p.with_account(&headers, &account, |acct, _| {
        let mut pending: HashMap<String, u64> = HashMap::new();
        for e in manifest.values() {
            if !acct.asset_files.contains_key(&e.hash) {
                pending.insert(e.hash.clone(), e.size);
            }
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
            account_id: account.clone(),
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
    State(p): State<Arc<Platform>>,
    Path(account): AcctPath,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    mp: Multipart,
) -> ApiResult {
    let token = bearer_token(&headers).ok_or_else(ApiError::unauthenticated)?;
    let key = digest(token);
    {
        let st = p.state.lock();
        let s = st.asset_sessions.get(&key).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, CODE_AUTH, "invalid or expired asset upload token")
        })?;
        if s.account_id != account {
            return Err(ApiError::forbidden());
        }
    }
    let parts = read_all(mp).await?;
    let mut files = Vec::with_capacity(parts.len());
    for part in parts {
        let size = if q.base64.unwrap_or(false) {
            let text: Vec<u8> = part.bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            STANDARD
                .decode(&text)
                .map_err(|e| ApiError::bad_request(format!("part {} is not base64: {e}", part.name)))?
                .len() as u64
        } else {
            part.bytes.len() as u64
        };
        files.push((part.name, size));
    }
    let now = p.now();
    let mut st = p.state.lock();
    let usable = st.accounts.get(&account).map(|a| a.usable_at(now)).unwrap_or(false);
    if !usable {
        return Err(ApiError::unauthenticated());
    }
    let session = st.asset_sessions.get_mut(&key).ok_or_else(ApiError::unauthenticated)?;
    for (hash, _) in &files {
        if !session.pending.contains_key(hash) {
            return Err(ApiError::bad_request(format!("file {hash} is not part of this upload session")));
        }
    }
    for (hash, _) in &files {
        session.pending.remove(hash);
    }
    let done = session.pending.is_empty();
    let completion = session.completion_token.clone();
    if done {
        st.asset_sessions.remove(&key);
    }
    if let Some(acct) = st.accounts.get_mut(&account) {
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
