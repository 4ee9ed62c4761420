//! What one `wrangler deploy --temporary` does, step by step: provision an
//! account (challenge, proof of work, create), deploy a script, add
//! resources, and claim the account.
//!
//! The sequence mirrors the calls real wrangler 4.164 makes (see the
//! temporary-deploy API notes), because a gateway may key its decisions on
//! them: a tester that skipped the probes wrangler makes would measure a
//! different load than real agents put on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::loopback::check_loopback_url;
use crate::pow;
use crate::protocol::{Api, Body, Call, CallError, Identity, Part, Reply};
use crate::stats::{GroupStats, Verdict};

/// Retries wrangler makes of an ordinary call refused with 429.
const WRANGLER_RETRIES: u32 = 3;
/// Longest `Retry-After` wrangler honours on ordinary calls.
const WRANGLER_MAX_WAIT: Duration = Duration::from_secs(60);

/// A temporary account an agent holds. Its token and claim URL are secrets:
/// `Debug` leaves them out, and nothing prints them.
pub struct Account {
    /// Account id.
    pub id: String,
    token: String,
    claim_url: Option<String>,
    /// Claimed by this agent.
    pub claimed: bool,
    /// The agent's script exists on the account (next deploy is a redeploy).
    pub script_deployed: bool,
    /// Resources were created on this account already.
    pub resources_done: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("claim_url", &"<redacted>")
            .field("claimed", &self.claimed)
            .finish()
    }
}

/// Why a step did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum StepError {
    /// Refused by policy; `Retry-After` if the answer had one.
    Refused(Option<Duration>),
    /// Failed otherwise (message is secret-free).
    Failed(String),
    /// The run or the agent is out of time or requests.
    Stopped,
}

impl From<CallError> for StepError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Stopped => StepError::Stopped,
            CallError::Transport(m) => StepError::Failed(m),
        }
    }
}

/// Proof-of-work settings shared by a run: a semaphore so agents do not
/// solve more chains at once than there are cores (the swarm would then
/// measure the scheduler instead of the gateway), the wire encoding, and
/// the most work an agent accepts.
pub struct PowSettings {
    /// Concurrent solves allowed.
    pub permits: Arc<Semaphore>,
    /// Checkpoint encoding.
    pub encoding: pow::Encoding,
    /// Largest `k*g` accepted.
    pub max_iterations: u64,
}

/// An agent's session: its API connection, identity and retry manners.
pub struct Session<'a> {
    /// Connection.
    pub api: &'a mut Api,
    /// Current identity.
    pub ident: Identity,
    /// Wait as told by `Retry-After`.
    pub honour_retry_after: bool,
    /// Delay between retries when not honouring `Retry-After`.
    pub retry_delay: Duration,
}

/// Sleep `d`, but not past the deadline. False if the deadline came first.
pub async fn pause(api: &Api, d: Duration) -> bool {
    let until = tokio::time::Instant::now() + d;
    if until >= api.deadline() {
        tokio::time::sleep_until(api.deadline()).await;
        return false;
    }
    tokio::time::sleep_until(until).await;
    true
}

impl Session<'_> {
    fn group(&self) -> Arc<GroupStats> {
        self.api.group().clone()
    }

    /// Send once, no retries.
    async fn once(&mut self, call: &Call) -> Result<Reply, StepError> {
        Ok(self.api.send(&self.ident, call).await?)
    }

    /// Send an ordinary (non-provisioning) call the way wrangler does:
    /// up to three retries on a refusal. A polite agent waits `Retry-After`
    /// (capped at 60 s, as wrangler does); a rude one waits its own short
    /// delay.
    async fn with_retries(&mut self, call: &Call) -> Result<Reply, StepError> {
        let mut tries = 0;
        loop {
            let reply = self.once(call).await?;
            if reply.verdict != Verdict::Refused || tries >= WRANGLER_RETRIES {
                return Ok(reply);
            }
            tries += 1;
            let wait = if self.honour_retry_after {
                reply
                    .retry_after
                    .unwrap_or(Duration::from_secs(1))
                    .min(WRANGLER_MAX_WAIT)
            } else {
                self.retry_delay
            };
            if !pause(self.api, wait).await {
                return Err(StepError::Stopped);
            }
        }
    }

    /// Turn a reply into success or a step error.
    fn expect_ok(what: &str, reply: Reply) -> Result<Reply, StepError> {
        match reply.verdict {
            Verdict::Refused => Err(StepError::Refused(reply.retry_after)),
            _ if reply.status.is_success() => Ok(reply),
            _ => Err(StepError::Failed(format!(
                "{what}: HTTP {} {}",
                reply.status.as_u16(),
                reply.error_message()
            ))),
        }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
        bearer: Option<&str>,
    ) -> Result<Call, StepError> {
        Ok(Call {
            method,
            url: self.api.url(path)?,
            body,
            provisioning: bearer.is_none(),
            bearer: bearer.map(str::to_string),
        })
    }

    /// Challenge, proof of work, account creation. Never retried here:
    /// wrangler treats any failure of these two calls as fatal.
    pub async fn provision(&mut self, pow: &PowSettings) -> Result<Account, StepError> {
        let call = self.call(
            Method::POST,
            "provisioning/previews/challenge",
            Body::Json(json!({})),
            None,
        )?;
        let reply = Self::expect_ok("challenge", self.once(&call).await?)?;
        let r = reply.result();
        let (Some(token), Some(seed), Some(k), Some(g)) = (
            r["challengeToken"].as_str(),
            r["seed"].as_str(),
            r["k"].as_u64(),
            r["g"].as_u64(),
        ) else {
            return Err(StepError::Failed("challenge: malformed answer".into()));
        };
        let (Ok(k), Ok(g)) = (u32::try_from(k), u32::try_from(g)) else {
            return Err(StepError::Failed(
                "challenge: difficulty out of range".into(),
            ));
        };
        if u64::from(k) * u64::from(g) > pow.max_iterations {
            return Err(StepError::Failed(format!(
                "challenge: k*g = {} exceeds the {} an agent accepts",
                u64::from(k) * u64::from(g),
                pow.max_iterations
            )));
        }
        let seed = pow::decode_seed(seed).map_err(StepError::Failed)?;
        let token = token.to_string();

        let permit = tokio::select! {
            p = pow.permits.clone().acquire_owned() => p.map_err(|_| StepError::Stopped)?,
            _ = tokio::time::sleep_until(self.api.deadline()) => return Err(StepError::Stopped),
        };
        let started = Instant::now();
        let solved = tokio::task::spawn_blocking(move || {
            let cps = pow::solve(&seed, k, g);
            drop(permit);
            cps
        })
        .await
        .map_err(|e| StepError::Failed(format!("proof of work task: {e}")))?;
        let group = self.group();
        GroupStats::bump(&group.pow_solved);
        group.pow_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );

        let body = json!({
            "termsOfService": "https://www.cloudflare.com/terms/",
            "privacyPolicy": "https://www.cloudflare.com/privacypolicy/",
            "acceptTermsOfService": "yes",
            "challengeToken": token,
            "solution": {"checkpoints": pow::encode(&solved, pow.encoding)},
        });
        let call = self.call(
            Method::POST,
            "provisioning/previews",
            Body::Json(body),
            None,
        )?;
        let reply = Self::expect_ok("create account", self.once(&call).await?)?;
        let r = reply.result();
        let (Some(id), Some(token)) = (
            r["account"]["id"].as_str(),
            r["account"]["apiToken"].as_str(),
        ) else {
            return Err(StepError::Failed("create account: malformed answer".into()));
        };
        GroupStats::bump(&group.accounts_created);
        group.record_account(id);
        Ok(Account {
            id: id.to_string(),
            token: token.to_string(),
            claim_url: r["claim"]["url"].as_str().map(str::to_string),
            claimed: false,
            script_deployed: false,
            resources_done: false,
        })
    }

    async fn acct_call(
        &mut self,
        acct: &Account,
        what: &str,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply, StepError> {
        let path = format!("accounts/{}/{}", acct.id, path);
        let call = self.call(method, &path, body, Some(&acct.token))?;
        let reply = self.with_retries(&call).await?;
        Self::expect_ok(what, reply)
    }

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
        self.acct_call(
            acct,
            "get subdomain",
            Method::GET,
            "workers/subdomain",
            Body::Empty,
        )
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
            return Err(StepError::Failed(
                "get worker: answer has no `subdomain`".into(),
            ));
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
        match self
            .acct_call(acct, what, Method::POST, path, Body::Json(body))
            .await
        {
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
            manifest.insert(
                format!("/page-{n}.html"),
                json!({"hash": hash, "size": content.len()}),
            );
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
                                hs.iter()
                                    .filter_map(|h| h.as_str().map(str::to_string))
                                    .collect()
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
            match self
                .with_retries(&call)
                .await
                .and_then(|r| Self::expect_ok("assets upload", r))
            {
                Ok(_) => {
                    uploaded += n;
                    group
                        .resources_created
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                Err(StepError::Stopped) => return Err(StepError::Stopped),
                Err(e) => {
                    group
                        .resources_refused
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(uploaded)
    }

    /// Claim the account through its claim URL, as a person would from a
    /// browser. Only loopback claim URLs are followed.
    pub async fn claim(&mut self, acct: &mut Account) -> Result<(), StepError> {
        let group = self.group();
        GroupStats::bump(&group.claims_attempted);
        let Some(url) = acct.claim_url.clone() else {
            return Err(StepError::Failed(
                "claim: account came without a claim URL".into(),
            ));
        };
        let url = check_loopback_url(&url).map_err(|_| {
            StepError::Failed("claim: claim URL is not on loopback; not following it".into())
        })?;
        let mut ident = self.ident.clone();
        ident.extra.retain(|(k, _)| k != reqwest::header::ACCEPT);
        ident.extra.push((
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        ));
        ident.wrangler_ua = "Mozilla/5.0 (X11; Linux x86_64) loadtest-claim".into();
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Empty,
            provisioning: false,
            bearer: None,
        };
        let reply = self.api.send(&ident, &call).await?;
        let reply = Self::expect_ok("claim", reply)?;
        if reply.body["claimed"].as_bool() == Some(false) {
            return Err(StepError::Failed("claim: platform said not claimed".into()));
        }
        acct.claimed = true;
        GroupStats::bump(&group.accounts_claimed);
        group.mark_claimed(&acct.id);
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
