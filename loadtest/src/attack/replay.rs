//! `pow-replay`: tries to get an account for less proof-of-work than the
//! policy asks of its source.
//!
//! The gateway asks an indebted source for a longer chain (`k' > k`) by
//! rewriting the challenge answer and remembering `k'` for that challenge
//! token. Three shortcuts try to get around it:
//!
//! * **moved challenge**: fetch a challenge from a clean address (plain
//!   `k`), solve it, redeem it from the indebted address;
//! * **resent body**: send the indebted source's create with only the
//!   platform's `k + 1` checkpoints, and when it is refused send the very
//!   same body again (from the same address, then from the clean one);
//! * **reused tail**: solve the first `k + 1` checkpoints honestly and fill
//!   the extra `k' - k` with a tail precomputed for another seed, which is
//!   a valid chain everywhere except where it joins.
//!
//! First the agent makes two addresses of its own indebted the honest way:
//! one account each, filled with resources and left to expire unclaimed.
//! Any account a shortcut obtains cost less than the policy's work: a
//! *cheated* account, which the check requires to be zero.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent_ctx::AgentCtx;
use crate::pow;
use crate::protocol::{Body, Call, Identity, Reply};
use crate::stats::{GroupStats, Verdict};
use crate::wrangler::{pause, Session, StepError};

/// Findings: sources whose challenge came back harder than the platform's.
pub const INDEBTED: &str = "replay_indebted_sources";
/// Shortcuts tried against an indebted source.
pub const TRIED: &str = "replay_shortcuts_tried";
/// Shortcut creates the gateway refused.
pub const REFUSED: &str = "replay_shortcuts_refused";
/// Of those, refused by a rate limit (429) before their work was judged.
pub const RATE_LIMITED: &str = "replay_shortcuts_rate_limited";
/// Accounts obtained with a moved challenge.
pub const CHEAT_MOVED: &str = "replay_cheated_moved_challenge";
/// Accounts obtained by resending a refused body.
pub const CHEAT_RESENT: &str = "replay_cheated_resent_body";
/// Accounts obtained with a reused tail.
pub const CHEAT_TAIL: &str = "replay_cheated_reused_tail";
/// All cheat findings, for the check.
pub const CHEATS: [&str; 3] = [CHEAT_MOVED, CHEAT_RESENT, CHEAT_TAIL];

/// How long after creating its last setup account the agent waits for the
/// accounts to expire and be charged (the spawned platform's default
/// lifetime is 25 s, its sweep runs every second).
const EXPIRY_WAIT: Duration = Duration::from_secs(26);

/// The two addresses made indebted (198.18.0.0/15, unused by other
/// groups) and the clean one (TEST-NET-3) of agent `member`.
fn addresses(member: u64) -> [IpAddr; 3] {
    let m = (member % 250) as u8;
    [
        IpAddr::V4(Ipv4Addr::new(198, 18, m, 10)),
        IpAddr::V4(Ipv4Addr::new(198, 19, m, 10)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + m)),
    ]
}

/// A challenge as the client sees it.
#[derive(Debug, Clone)]
struct Challenge {
    token: String,
    seed: Vec<u8>,
    k: u32,
    g: u32,
}

/// The state of one agent's attack.
struct Replayer<'a> {
    ctx: &'a mut AgentCtx,
    /// The platform's own `k`, from a clean challenge.
    base_k: Option<u32>,
}

impl Replayer<'_> {
    fn call(&self, path: &str, body: Value) -> Option<Call> {
        let url = self.ctx.api.url(path).ok()?;
        Some(Call {
            method: Method::POST,
            url,
            body: Body::Json(body),
            provisioning: true,
            bearer: None,
        })
    }

    async fn send(&mut self, from: IpAddr, call: &Call) -> Option<Reply> {
        self.ctx.api.send(&Identity::wrangler(Some(from)), call).await.ok()
    }

    async fn challenge(&mut self, from: IpAddr) -> Option<Challenge> {
        let call = self.call("provisioning/previews/challenge", json!({}))?;
        let reply = self.send(from, &call).await?;
        if !reply.status.is_success() {
            return None;
        }
        let r = reply.result();
        Some(Challenge {
            token: r["challengeToken"].as_str()?.to_string(),
            seed: pow::decode_seed(r["seed"].as_str()?).ok()?,
            k: u32::try_from(r["k"].as_u64()?).ok()?,
            g: u32::try_from(r["g"].as_u64()?).ok()?,
        })
    }

    /// Solve `k` segments of `seed` (bounded by the agent's work cap).
    async fn solve(&self, seed: &[u8], k: u32, g: u32) -> Option<Vec<[u8; 32]>> {
        if u64::from(k) * u64::from(g) > self.ctx.pow.max_iterations {
            return None;
        }
        let seed = seed.to_vec();
        let permit = self.ctx.pow.permits.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let cps = pow::solve(&seed, k, g);
            drop(permit);
            cps
        })
        .await
        .ok()
    }

    fn create_body(&self, token: &str, cps: &[[u8; 32]]) -> Value {
        json!({
            "termsOfService": "https://www.cloudflare.com/terms/",
            "privacyPolicy": "https://www.cloudflare.com/privacypolicy/",
            "acceptTermsOfService": "yes",
            "challengeToken": token,
            "solution": {"checkpoints": pow::encode(cps, self.ctx.pow.encoding)},
        })
    }

    /// Send a shortcut create; true when it yielded an account.
    async fn try_create(&mut self, from: IpAddr, body: &Value, cheat: &str) -> bool {
        let group = self.ctx.api.group().clone();
        let Some(call) = self.call("provisioning/previews", body.clone()) else { return false };
        let Some(reply) = self.send(from, &call).await else { return false };
        if reply.verdict == Verdict::Refused {
            group.add_finding(REFUSED, 1);
            if reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                group.add_finding(RATE_LIMITED, 1);
            }
        }
        let got = reply.status.is_success() && reply.result()["account"]["id"].is_string();
        if got {
            group.add_finding(cheat, 1);
            if let Some(id) = reply.result()["account"]["id"].as_str() {
                GroupStats::bump(&group.accounts_created);
                group.record_account(id);
            }
        }
        got
    }

    /// Make `addr` indebted: an account with 66 units of resources under
    /// the shipped costs (account 10, script 5, 10 KV 30, 8 queues 16, D1 5),
    /// left unclaimed (the ip harder_pow budget is 60). Returns when the
    /// account was created, if it was and its script deployed.
    async fn make_debt(&mut self, addr: IpAddr) -> Option<Instant> {
        let pow = self.ctx.pow.clone();
        let label = self.ctx.api.group().label.clone();
        let script = format!("{label}-{}-{addr}", self.ctx.index).replace(['.', ':'], "-");
        let mut session = Session {
            api: &mut self.ctx.api,
            ident: Identity::wrangler(Some(addr)),
            honour_retry_after: false,
            retry_delay: Duration::from_millis(50),
        };
        let group = session.api.group().clone();
        GroupStats::bump(&group.deploys_attempted);
        let Ok(mut acct) = session.provision(&pow).await else { return None };
        let created = Instant::now();
        if session.deploy(&mut acct, &script, json!([])).await.is_err() {
            return None;
        }
        GroupStats::bump(&group.deploys_completed);
        for n in 0..10 {
            let kv = json!({"title": format!("{script}-kv-{n}")});
            let q = json!({"queue_name": format!("{script}-q-{n}")});
            let mut calls = vec![("create kv", "storage/kv/namespaces", kv)];
            if n < 8 {
                calls.push(("create queue", "queues", q));
            }
            for (what, path, body) in calls {
                if session.create_resource(&acct, what, path, body).await == Err(StepError::Stopped)
                {
                    return Some(created);
                }
            }
        }
        let db = json!({"name": format!("{script}-db")});
        let _ = session.create_resource(&acct, "create d1", "d1/database", db).await;
        Some(created)
    }

    /// The harder challenge an indebted `addr` gets now, if it is harder.
    async fn harder_challenge(&mut self, addr: IpAddr, attempts: u32) -> Option<Challenge> {
        let base = self.base_k?;
        for attempt in 0..attempts {
            if attempt > 0 && !pause(&self.ctx.api, Duration::from_secs(4)).await {
                return None;
            }
            if let Some(c) = self.challenge(addr).await {
                if c.k > base {
                    self.ctx.api.group().add_finding(INDEBTED, 1);
                    return Some(c);
                }
            }
        }
        None
    }
}

/// Set up two indebted addresses, then try the three shortcuts.
pub async fn run(ctx: &mut AgentCtx) -> u32 {
    let [debtor_a, debtor_b, clean] = addresses(ctx.member);
    let group = ctx.api.group().clone();
    for a in [debtor_a, debtor_b, clean] {
        if let Some(net) = crate::archetype::ipv4_24(a) {
            group.note_network(net);
        }
    }
    let mut r = Replayer { ctx, base_k: None };
    let created_a = r.make_debt(debtor_a).await;
    let created_b = r.make_debt(debtor_b).await;
    let completed = u32::from(created_a.is_some()) + u32::from(created_b.is_some());
    let Some(last) = created_b.or(created_a) else { return 0 };
    let wait = (last + EXPIRY_WAIT).saturating_duration_since(Instant::now());
    if !pause(&r.ctx.api, wait).await {
        return completed;
    }

    // Moved challenge: solved for the clean address, redeemed by debtor A.
    let Some(clean_c) = r.challenge(clean).await else { return completed };
    r.base_k = Some(clean_c.k);
    // A second look after a few seconds, in case the last expiry was not
    // charged yet; debtor B's account expired at about the same time.
    let harder_a = r.harder_challenge(debtor_a, 2).await;
    let harder_b = r.harder_challenge(debtor_b, 1).await;
    let Some(clean_cps) = r.solve(&clean_c.seed, clean_c.k, clean_c.g).await else {
        return completed;
    };
    if let Some(h) = &harder_a {
        group.add_finding(TRIED, 1);
        let body = r.create_body(&clean_c.token, &clean_cps);
        r.try_create(debtor_a, &body, CHEAT_MOVED).await;

        // Reused tail: honest first k+1, the rest from another seed's chain.
        if let Some(other) = r.solve(&clean_c.seed, h.k, h.g).await {
            if let Some(mut cps) = r.solve(&h.seed, clean_c.k, h.g).await {
                cps.extend_from_slice(&other[cps.len().min(other.len())..]);
                group.add_finding(TRIED, 1);
                let body = r.create_body(&h.token, &cps);
                r.try_create(debtor_a, &body, CHEAT_TAIL).await;
            }
        }
    }

    // Resent body: the platform's k+1 checkpoints for a harder challenge,
    // refused; then the same bytes again, from the debtor and the clean
    // address.
    if let Some(h) = &harder_b {
        if let Some(cps) = r.solve(&h.seed, clean_c.k, h.g).await {
            let body = r.create_body(&h.token, &cps);
            group.add_finding(TRIED, 1);
            if !r.try_create(debtor_b, &body, CHEAT_RESENT).await {
                group.add_finding(TRIED, 1);
                if !r.try_create(debtor_b, &body, CHEAT_RESENT).await {
                    group.add_finding(TRIED, 1);
                    r.try_create(clean, &body, CHEAT_RESENT).await;
                }
            }
        }
    }
    completed
}
