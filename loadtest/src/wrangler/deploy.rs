//! Deploying a script: the probes wrangler makes, then an upload (first
//! deploy) or a new version (redeploy), then the workers.dev subdomain.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{Account, Session, StepError};
use crate::protocol::{Body, Part};
use crate::stats::Verdict;

impl Session<'_> {
    /// Deploy `script` the way wrangler does: the first deploy probes and
    /// uploads with `PUT`; a redeploy uploads a version and deploys it.
    pub async fn deploy(
        &mut self,
        acct: &mut Account,
        script: &str,
        bindings: Value,
    ) -> Result<(), StepError> {
        let probe_path = format!("accounts/{}/workers/services/{script}", acct.id);
        let call = self.call(Method::GET, &probe_path, Body::Empty, Some(&acct.token))?;
        let probe = self.with_retries(&call).await?;
        let exists = match probe.status {
            s if s.is_success() => true,
            StatusCode::NOT_FOUND => false,
            _ => {
                Self::expect_ok("get service", probe)?;
                false
            }
        };
        self.acct_call(acct, "get subdomain", Method::GET, "workers/subdomain", Body::Empty)
            .await?;
        if exists {
            let parts = upload_parts(script, bindings);
            let v = self
                .acct_call(
                    acct,
                    "upload version",
                    Method::POST,
                    &format!("workers/scripts/{script}/versions"),
                    Body::Multipart(parts),
                )
                .await?;
            let Some(version) = v.result()["id"].as_str().map(str::to_string) else {
                return Err(StepError::Failed("upload version: no id".into()));
            };
            let body = json!({"strategy": "percentage", "versions": [{"version_id": version, "percentage": 100}]});
            self.acct_call(
                acct,
                "deploy version",
                Method::POST,
                &format!("workers/scripts/{script}/deployments"),
                Body::Json(body),
            )
            .await?;
            self.acct_call(
                acct,
                "script settings",
                Method::PATCH,
                &format!("workers/scripts/{script}/script-settings"),
                Body::Json(json!({"logpush": false, "observability": {"enabled": true}})),
            )
            .await?;
        } else {
            // A script that is absent 404s on these two; wrangler goes on.
            for tail in ["deployments", "settings"] {
                let p = format!("accounts/{}/workers/scripts/{script}/{tail}", acct.id);
                let call = self.call(Method::GET, &p, Body::Empty, Some(&acct.token))?;
                let reply = self.with_retries(&call).await?;
                if reply.verdict == Verdict::Refused {
                    return Err(StepError::Refused(reply.retry_after));
                }
            }
            self.acct_call(
                acct,
                "upload script",
                Method::PUT,
                &format!("workers/scripts/{script}?excludeScript=true&bindings_inherit=strict"),
                Body::Multipart(upload_parts(script, bindings)),
            )
            .await?;
        }
        let worker = self
            .acct_call(
                acct,
                "get worker",
                Method::GET,
                &format!("workers/workers/{script}"),
                Body::Empty,
            )
            .await?;
        if worker.result().get("subdomain").is_none() {
            return Err(StepError::Failed("get worker: answer has no `subdomain`".into()));
        }
        self.acct_call(
            acct,
            "enable subdomain",
            Method::POST,
            &format!("workers/scripts/{script}/subdomain"),
            Body::Json(json!({"enabled": true, "previews_enabled": true})),
        )
        .await?;
        acct.script_deployed = true;
        Ok(())
    }
}

/// The multipart parts of a script upload: `metadata`, the module and its
/// source map, as wrangler sends them.
fn upload_parts(script: &str, bindings: Value) -> Vec<Part> {
    let source = format!(
        "export default {{\n  async fetch(request, env) {{\n    return new Response(\"hello from {script}\");\n  }},\n}};\n//# sourceMappingURL=index.js.map\n"
    );
    let map = json!({"version": 3, "sources": ["index.js"], "names": [], "mappings": ""});
    let metadata = json!({
        "main_module": "index.js",
        "bindings": bindings,
        "compatibility_date": "2026-07-01",
        "compatibility_flags": [],
        "observability": {"enabled": true},
    });
    vec![
        Part {
            name: "metadata".into(),
            filename: None,
            content_type: "application/json".into(),
            bytes: metadata.to_string().into_bytes(),
        },
        Part {
            name: "index.js".into(),
            filename: Some("index.js".into()),
            content_type: "application/javascript+module".into(),
            bytes: source.into_bytes(),
        },
        Part {
            name: "index.js.map".into(),
            filename: Some("index.js.map".into()),
            content_type: "application/source-map".into(),
            bytes: map.to_string().into_bytes(),
        },
    ]
}
