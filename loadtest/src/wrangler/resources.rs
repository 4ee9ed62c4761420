//! Resources on an account: KV namespaces, D1 databases, queues, and
//! static assets uploaded through an upload session.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Account, Session, StepError};
use crate::protocol::{Body, Part};
use crate::stats::GroupStats;

impl Session<'_> {
    /// Create one resource; counts it as created or refused. Returns the
    /// id the platform gave it, if any.
    pub async fn create_resource(
        &mut self,
        acct: &Account,
        what: &str,
        path: &str,
        body: Value,
    ) -> Result<Option<String>, StepError> {
        let group = self.group();
        match self.acct_call(acct, what, Method::POST, path, Body::Json(body)).await {
            Ok(reply) => {
                GroupStats::bump(&group.resources_created);
                let r = reply.result();
                Ok(r["id"]
                    .as_str()
                    .or_else(|| r["uuid"].as_str())
                    .or_else(|| r["queue_id"].as_str())
                    .map(str::to_string))
            }
            Err(StepError::Stopped) => Err(StepError::Stopped),
            Err(e) => {
                GroupStats::bump(&group.resources_refused);
                if let StepError::Failed(m) = &e {
                    group.note_error(m.clone());
                }
                Err(e)
            }
        }
    }

    /// Upload `files` small static-asset files through an upload session.
    /// Returns how many the platform accepted.
    pub async fn upload_assets(
        &mut self,
        acct: &Account,
        script: &str,
        files: u32,
    ) -> Result<u64, StepError> {
        let group = self.group();
        let mut contents = std::collections::HashMap::new();
        let mut manifest = serde_json::Map::new();
        for n in 0..files {
            let content = format!("<!doctype html><p>asset {n} of {script}</p>\n").into_bytes();
            let hash = hex::encode(&Sha256::digest(&content)[..16]);
            manifest
                .insert(format!("/page-{n}.html"), json!({"hash": hash, "size": content.len()}));
            contents.insert(hash, content);
        }
        let session = match self
            .acct_call(
                acct,
                "assets session",
                Method::POST,
                &format!("workers/scripts/{script}/assets-upload-session"),
                Body::Json(json!({"manifest": manifest})),
            )
            .await
        {
            Ok(r) => r,
            Err(StepError::Stopped) => return Err(StepError::Stopped),
            Err(e) => {
                GroupStats::bump(&group.resources_refused);
                return Err(e);
            }
        };
        let Some(jwt) = session.result()["jwt"].as_str().map(str::to_string) else {
            return Err(StepError::Failed("assets session: no jwt".into()));
        };
        let buckets: Vec<Vec<String>> = session.result()["buckets"]
            .as_array()
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        b.as_array()
                            .map(|hs| {
                                hs.iter().filter_map(|h| h.as_str().map(str::to_string)).collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut uploaded = 0u64;
        let path = format!("accounts/{}/workers/assets/upload?base64=true", acct.id);
        for bucket in buckets {
            let parts: Vec<Part> = bucket
                .iter()
                .filter_map(|h| {
                    contents.get(h).map(|c| Part {
                        name: h.clone(),
                        filename: Some(h.clone()),
                        content_type: "text/html".into(),
                        bytes: STANDARD.encode(c).into_bytes(),
                    })
                })
                .collect();
            let n = parts.len() as u64;
            let call = self.call(Method::POST, &path, Body::Multipart(parts), Some(&jwt))?;
            match self.with_retries(&call).await.and_then(|r| Self::expect_ok("assets upload", r)) {
                Ok(_) => {
                    uploaded += n;
                    group.resources_created.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                Err(StepError::Stopped) => return Err(StepError::Stopped),
                Err(e) => {
                    group.resources_refused.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(uploaded)
    }
}
