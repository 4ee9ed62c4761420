//! Worker script endpoints: what wrangler calls to deploy and redeploy.
//!
//! Shapes follow the real API closely enough for wrangler 4.164: it reads
//! `default_environment.script.tag` from the service, `subdomain` from the
//! account subdomain, `deployments[]` / `versions[]` ids, and
//! `result.subdomain.{enabled,previews_enabled}` from `workers/workers`.
//! A missing script is a 404 with code 10007, which wrangler reads as
//! "first deploy".

use axum::extract::Multipart;
use axum::Json;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::accounts::{Account, Script, ScriptDeployment, ScriptVersion};
use crate::call::{AccountCall, AccountItem, AccountRoot};
use crate::envelope::{ok, ok_list, ApiError, ApiResult};
use crate::multipart::{read_all, Part};
use crate::platform::{random_hex, random_uuid, rfc3339};

fn script_missing(name: &str) -> ApiError {
    ApiError::not_found(format!("This Worker does not exist on your account. (script: {name})"))
}

fn script_mut<'a>(acct: &'a mut Account, name: &str) -> Result<&'a mut Script, ApiError> {
    acct.scripts.get_mut(name).ok_or_else(|| script_missing(name))
}

fn script_ref<'a>(acct: &'a Account, name: &str) -> Result<&'a Script, ApiError> {
    acct.scripts.get(name).ok_or_else(|| script_missing(name))
}

fn has_assets(s: &Script) -> bool {
    s.metadata.get("assets").is_some()
}

fn script_json(s: &Script) -> Value {
    json!({
        "id": s.name,
        "tag": s.tag,
        "tags": [],
        "etag": s.versions.last().map(|v| v.id.replace('-', "")).unwrap_or_default(),
        "handlers": ["fetch"],
        "created_on": rfc3339(s.created_on),
        "modified_on": rfc3339(s.modified_on),
        "usage_model": "standard",
        "compatibility_date": s.metadata.get("compatibility_date").cloned().unwrap_or(Value::Null),
        "compatibility_flags": s.metadata.get("compatibility_flags").cloned().unwrap_or(json!([])),
        "has_assets": has_assets(s),
        "has_modules": true,
        "last_deployed_from": "wrangler",
        "startup_time_ms": 1,
        "deployment_id": s.deployments.last().map(|d| d.id.clone()),
    })
}

fn version_json(s: &Script, v: &ScriptVersion) -> Value {
    json!({
        "id": v.id,
        "number": v.number,
        "metadata": {
            "author_email": "temporary@example.invalid",
            "author_id": "temporary",
            "source": "wrangler",
            "created_on": rfc3339(v.created_on),
            "modified_on": rfc3339(v.created_on),
            "hasPreview": false,
        },
        "annotations": {},
        "resources": {
            "script": {"etag": v.id.replace('-', ""), "handlers": ["fetch"], "last_deployed_from": "wrangler"},
            "script_runtime": {
                "compatibility_date": s.metadata.get("compatibility_date").cloned().unwrap_or(Value::Null),
                "compatibility_flags": s.metadata.get("compatibility_flags").cloned().unwrap_or(json!([])),
                "usage_model": "standard",
            },
            "bindings": s.metadata.get("bindings").cloned().unwrap_or(json!([])),
        },
        "startup_time_ms": 1,
    })
}

fn deployment_json(d: &ScriptDeployment) -> Value {
    json!({
        "id": d.id,
        "source": "wrangler",
        "strategy": "percentage",
        "author_email": "temporary@example.invalid",
        "created_on": rfc3339(d.created_on),
        "annotations": {"workers/triggered_by": "deployment"},
        "versions": d.versions.iter().map(|(id, pct)| json!({"version_id": id, "percentage": pct})).collect::<Vec<_>>(),
    })
}

fn settings_json(s: &Script) -> Value {
    let mut base = json!({
        "bindings": s.metadata.get("bindings").cloned().unwrap_or(json!([])),
        "compatibility_date": s.metadata.get("compatibility_date").cloned().unwrap_or(Value::Null),
        "compatibility_flags": s.metadata.get("compatibility_flags").cloned().unwrap_or(json!([])),
        "logpush": false,
        "placement": {},
        "tail_consumers": null,
        "usage_model": "standard",
        "observability": {"enabled": false},
        "tags": [],
    });
    if let Value::Object(map) = &mut base {
        for (k, v) in &s.settings {
            map.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Split an upload into its `metadata` JSON and the total size of the
/// code parts.
fn parse_upload(parts: &[Part]) -> Result<(Value, u64), ApiError> {
    let meta = parts
        .iter()
        .find(|p| p.name == "metadata")
        .ok_or_else(|| ApiError::bad_request("multipart upload has no `metadata` part"))?;
    let metadata: Value = serde_json::from_slice(&meta.bytes)
        .map_err(|e| ApiError::bad_request(format!("`metadata` part is not JSON: {e}")))?;
    if !metadata.is_object() {
        return Err(ApiError::bad_request("`metadata` part must be a JSON object"));
    }
    let bytes = parts.iter().filter(|p| p.name != "metadata").map(|p| p.bytes.len() as u64).sum();
    Ok((metadata, bytes))
}

fn new_version(s: &mut Script, now: OffsetDateTime, content_bytes: u64) -> ScriptVersion {
    let v = ScriptVersion {
        id: random_uuid(),
        number: s.versions.len() as u64 + 1,
        created_on: now,
        content_bytes,
    };
    s.versions.push(v.clone());
    s.modified_on = now;
    v
}

fn deploy_all(s: &mut Script, version_id: &str, now: OffsetDateTime) -> ScriptDeployment {
    let d = ScriptDeployment {
        id: random_uuid(),
        created_on: now,
        versions: vec![(version_id.to_string(), 100.0)],
    };
    s.deployments.push(d.clone());
    d
}

/// A call on one script: `{account}` then the script name.
type ScriptCall = AccountItem;

/// Answer with `view` of the named script: the read-only script endpoints
/// differ only in the view.
fn view_script(call: &ScriptCall, view: impl FnOnce(&Script) -> Value) -> ApiResult {
    call.with_account(|acct, _| Ok(ok(view(script_ref(acct, call.item())?))))
}

/// Apply `edit` to the named script and answer with what it returns: the
/// write endpoints on an existing script differ only in the edit.
fn edit_script(
    call: &ScriptCall,
    edit: impl FnOnce(&mut Script, OffsetDateTime) -> Value,
) -> ApiResult {
    call.with_account(|acct, now| Ok(ok(edit(script_mut(acct, call.item())?, now))))
}

/// Authorize, then read a multipart upload into its metadata and code
/// size. Authorizing first means an unauthenticated client is refused
/// before its body is read, and learns nothing from a parse error.
async fn read_upload(call: &ScriptCall, mp: Multipart) -> Result<(Value, u64), ApiError> {
    call.authorize()?;
    let parts = read_all(mp).await?;
    parse_upload(&parts)
}

/// `GET workers/services/{name}`
pub(crate) async fn get_service(call: ScriptCall) -> ApiResult {
    view_script(&call, |s| {
        json!({
            "id": s.name,
            "default_environment": {
                "environment": "production",
                "created_on": rfc3339(s.created_on),
                "modified_on": rfc3339(s.modified_on),
                "script": script_json(s),
            },
            "environments": [{"environment": "production"}],
            "created_on": rfc3339(s.created_on),
            "modified_on": rfc3339(s.modified_on),
        })
    })
}

/// `GET workers/subdomain`
pub(crate) async fn get_account_subdomain(call: AccountRoot) -> ApiResult {
    call.with_account(|acct, _| Ok(ok(json!({"subdomain": acct.subdomain}))))
}

/// `PUT workers/subdomain`: temporary accounts keep their assigned label;
/// the call answers with it so clients that try to register one proceed.
pub(crate) async fn put_account_subdomain(call: AccountRoot) -> ApiResult {
    get_account_subdomain(call).await
}

/// `GET workers/scripts`
pub(crate) async fn list_scripts(call: AccountRoot) -> ApiResult {
    call.with_account(|acct, _| Ok(ok_list(acct.scripts.values().map(script_json).collect())))
}

/// `GET workers/scripts/{name}` — the real API returns the script source;
/// this returns its metadata in an envelope, which is enough for probes.
pub(crate) async fn get_script(call: ScriptCall) -> ApiResult {
    view_script(&call, script_json)
}

/// `PUT workers/scripts/{name}` (multipart): create or replace the script,
/// as a new version deployed at 100%.
pub(crate) async fn put_script(call: ScriptCall, mp: Multipart) -> ApiResult {
    let (metadata, bytes) = read_upload(&call, mp).await?;
    let name = call.item();
    let limit = call.platform.config.limits.worker_scripts;
    call.with_account(|acct, now| {
        if !acct.scripts.contains_key(name) && acct.scripts.len() >= limit {
            return Err(crate::envelope::limit_reached("Worker scripts", limit));
        }
        let s = acct.scripts.entry(name.to_string()).or_insert_with(|| Script {
            name: name.to_string(),
            tag: random_hex(16),
            created_on: now,
            modified_on: now,
            metadata: Value::Null,
            versions: Vec::new(),
            deployments: Vec::new(),
            subdomain_enabled: false,
            previews_enabled: false,
            settings: serde_json::Map::new(),
        });
        s.metadata = metadata;
        let v = new_version(s, now, bytes);
        deploy_all(s, &v.id, now);
        tracing::info!(account = %acct.id, script = %name, bytes, "script uploaded");
        Ok(ok(script_json(s)))
    })
}

/// `DELETE workers/scripts/{name}`
pub(crate) async fn delete_script(call: ScriptCall) -> ApiResult {
    call.with_account(|acct, _| {
        let name = call.item();
        let s = acct.scripts.remove(name).ok_or_else(|| script_missing(name))?;
        Ok(ok(json!({"id": s.tag})))
    })
}

/// `GET workers/scripts/{name}/deployments`
pub(crate) async fn list_deployments(call: ScriptCall) -> ApiResult {
    view_script(&call, |s| {
        let newest_first: Vec<Value> = s.deployments.iter().rev().map(deployment_json).collect();
        json!({"deployments": newest_first})
    })
}

/// `POST workers/scripts/{name}/deployments` with
/// `{"strategy","versions":[{"version_id","percentage"}]}`. Not an
/// `edit_script`: a missing body is refused before the script is looked
/// up, so a missing script with no body reads as a bad body.
pub(crate) async fn create_deployment(call: ScriptCall, body: Option<Json<Value>>) -> ApiResult {
    call.with_account(|acct, now| {
        let Some(Json(body)) = body else {
            return Err(ApiError::bad_request("deployment body must be JSON"));
        };
        let s = script_mut(acct, call.item())?;
        let mut versions = Vec::new();
        for v in body.get("versions").and_then(Value::as_array).into_iter().flatten() {
            let id = v
                .get("version_id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("versions[].version_id missing"))?;
            if !s.versions.iter().any(|x| x.id == id) {
                return Err(ApiError::bad_request(format!("unknown version {id}")));
            }
            let pct = v.get("percentage").and_then(Value::as_f64).unwrap_or(100.0);
            versions.push((id.to_string(), pct));
        }
        if versions.is_empty() {
            return Err(ApiError::bad_request("a deployment needs at least one version"));
        }
        let d = ScriptDeployment { id: random_uuid(), created_on: now, versions };
        s.deployments.push(d.clone());
        s.modified_on = now;
        Ok(ok(deployment_json(&d)))
    })
}

/// `POST workers/scripts/{name}/versions` (multipart): a new, undeployed
/// version of an existing script.
pub(crate) async fn create_version(call: ScriptCall, mp: Multipart) -> ApiResult {
    let (metadata, bytes) = read_upload(&call, mp).await?;
    edit_script(&call, |s, now| {
        s.metadata = metadata;
        let v = new_version(s, now, bytes);
        version_json(s, &v)
    })
}

/// `GET workers/scripts/{name}/versions`
pub(crate) async fn list_versions(call: ScriptCall) -> ApiResult {
    view_script(&call, |s| {
        let items: Vec<Value> = s.versions.iter().rev().map(|v| version_json(s, v)).collect();
        json!({"items": items})
    })
}

/// `GET workers/scripts/{name}/versions/{id}`
pub(crate) async fn get_version(call: AccountCall<(String, String, String)>) -> ApiResult {
    let (_, name, id) = &call.path;
    call.with_account(|acct, _| {
        let s = script_ref(acct, name)?;
        let v = s
            .versions
            .iter()
            .find(|v| &v.id == id)
            .ok_or_else(|| ApiError::not_found(format!("version {id} not found")))?;
        Ok(ok(version_json(s, v)))
    })
}

/// `GET workers/scripts/{name}/settings` and `.../script-settings`
pub(crate) async fn get_settings(call: ScriptCall) -> ApiResult {
    view_script(&call, settings_json)
}

/// `PATCH workers/scripts/{name}/settings` and `.../script-settings`: JSON
/// body, or multipart with a `settings` part (the real API takes both).
pub(crate) async fn patch_settings(call: ScriptCall, body: axum::body::Bytes) -> ApiResult {
    call.authorize()?;
    let patch: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).or_else(|_| {
            extract_settings_part(&body)
                .ok_or_else(|| ApiError::bad_request("settings body must be JSON"))
        })?
    };
    edit_script(&call, |s, now| {
        if let Value::Object(map) = patch {
            for (k, v) in map {
                s.settings.insert(k, v);
            }
        }
        s.modified_on = now;
        settings_json(s)
    })
}

/// Best-effort pull of a JSON `settings` part out of a raw multipart body.
fn extract_settings_part(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

fn subdomain_json(s: &Script) -> Value {
    json!({"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled})
}

/// `GET workers/scripts/{name}/subdomain`
pub(crate) async fn get_script_subdomain(call: ScriptCall) -> ApiResult {
    view_script(&call, subdomain_json)
}

/// `POST workers/scripts/{name}/subdomain` with `{enabled, previews_enabled}`.
pub(crate) async fn post_script_subdomain(
    call: ScriptCall,
    body: Option<Json<Value>>,
) -> ApiResult {
    let body = body.map(|Json(b)| b).unwrap_or_else(|| json!({}));
    edit_script(&call, |s, _| {
        if let Some(e) = body.get("enabled").and_then(Value::as_bool) {
            s.subdomain_enabled = e;
        }
        if let Some(e) = body.get("previews_enabled").and_then(Value::as_bool) {
            s.previews_enabled = e;
        }
        subdomain_json(s)
    })
}

/// `GET workers/workers/{name}` (the newer Workers API): wrangler needs
/// `result.subdomain`.
pub(crate) async fn get_worker(call: ScriptCall) -> ApiResult {
    call.with_account(|acct, _| {
        let sub = acct.subdomain.clone();
        let s = script_ref(acct, call.item())?;
        let mut subdomain = subdomain_json(s);
        if s.subdomain_enabled {
            subdomain["url"] = json!(format!("https://{}.{}.workers.dev", s.name, sub));
        }
        Ok(ok(json!({
            "id": s.tag,
            "name": s.name,
            "created_on": rfc3339(s.created_on),
            "updated_on": rfc3339(s.modified_on),
            "subdomain": subdomain,
            "tags": [],
            "logpush": false,
            "observability": {"enabled": false},
        })))
    })
}

/// `GET workers/scripts/{name}/secrets`: wrangler lists secrets before
/// provisioning bindings. This emulator stores no secret values; it lists
/// the `secret_text` bindings of the last upload by name only.
pub(crate) async fn list_secrets(call: ScriptCall) -> ApiResult {
    view_script(&call, |s| {
        s.metadata
            .get("bindings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("secret_text"))
            .map(|b| json!({"name": b.get("name").cloned().unwrap_or(Value::Null), "type": "secret_text"}))
            .collect()
    })
}
