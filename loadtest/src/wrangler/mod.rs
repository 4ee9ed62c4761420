//! What one `wrangler deploy --temporary` does, step by step: provision an
//! account (challenge, proof of work, create), deploy a script, add
//! resources, and claim the account.
//!
//! The sequence mirrors the calls real wrangler 4.164 makes (see the
//! temporary-deploy API notes), because a gateway may key its decisions on
//! them: a tester that skipped the probes wrangler makes would measure a
//! different load than real agents put on it.
//!
//! This module holds the session and how it sends a call (retries,
//! refusals); each step is an `impl Session` block of its own submodule.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tokio::sync::Semaphore;

use crate::pow;
use crate::protocol::{Api, Body, Call, CallError, Identity, Reply};
use crate::stats::{GroupStats, Verdict};

mod claim;
mod deploy;
mod provision;
mod resources;

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

impl Account {
    /// The account's bearer token, for attack agents that write requests
    /// by hand. A secret: never print or log it.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }
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
    pub(crate) async fn with_retries(&mut self, call: &Call) -> Result<Reply, StepError> {
        let mut tries = 0;
        loop {
            let reply = self.once(call).await?;
            if reply.verdict != Verdict::Refused || tries >= WRANGLER_RETRIES {
                return Ok(reply);
            }
            tries += 1;
            let wait = if self.honour_retry_after {
                reply.retry_after.unwrap_or(Duration::from_secs(1)).min(WRANGLER_MAX_WAIT)
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

    pub(crate) fn call(
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

    pub(crate) async fn acct_call(
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
}
