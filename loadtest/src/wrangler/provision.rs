//! Provisioning a temporary account: challenge, proof of work, creation.

use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use super::{Account, PowSettings, Session, StepError};
use crate::pow;
use crate::protocol::Body;
use crate::stats::GroupStats;

impl Session<'_> {
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
        let (Some(token), Some(seed), Some(k), Some(g)) =
            (r["challengeToken"].as_str(), r["seed"].as_str(), r["k"].as_u64(), r["g"].as_u64())
        else {
            return Err(StepError::Failed("challenge: malformed answer".into()));
        };
        let (Ok(k), Ok(g)) = (u32::try_from(k), u32::try_from(g)) else {
            return Err(StepError::Failed("challenge: difficulty out of range".into()));
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
        let call = self.call(Method::POST, "provisioning/previews", Body::Json(body), None)?;
        let reply = Self::expect_ok("create account", self.once(&call).await?)?;
        let r = reply.result();
        let (Some(id), Some(token)) =
            (r["account"]["id"].as_str(), r["account"]["apiToken"].as_str())
        else {
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
}
