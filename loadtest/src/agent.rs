//! Agent archetypes and the loop one agent runs.
//!
//! Each archetype stands for a kind of client the gateway has to tell
//! apart: people who deploy once and claim, buggy CI loops (polite or rude
//! about `Retry-After`), evaders rotating IPv6 addresses or header
//! fingerprints, botnets spread over many networks, and accounts that fill
//! every quota. The loop is the same for all; only the [`Behaviour`]
//! differs, so the report compares like with like.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::{Api, Identity};
use crate::scenario::AgentGroup;
use crate::stats::GroupStats;
use crate::wrangler::{pause, PowSettings, Session, StepError};

/// The kinds of agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Archetype {
    /// Deploys once, honours `Retry-After`, claims its account.
    #[serde(rename = "well-behaved")]
    WellBehaved,
    /// A buggy loop that redeploys from a fresh account over and over but
    /// waits as long as it is told.
    #[serde(rename = "retry-loop-polite")]
    RetryLoopPolite,
    /// The same loop, ignoring `Retry-After`.
    #[serde(rename = "retry-loop-rude")]
    RetryLoopRude,
    /// Rotates its address inside one IPv6 /64 for every account.
    #[serde(rename = "rotate-ipv6-64")]
    RotateIpv6In64,
    /// Rotates its address across a whole IPv6 /48.
    #[serde(rename = "rotate-ipv6-48")]
    RotateIpv6In48,
    /// Keeps its address but changes User-Agent, headers and their order.
    #[serde(rename = "rotate-fingerprint")]
    RotateFingerprint,
    /// A swarm spread over many IPv4 /24s, one address per account.
    #[serde(rename = "distributed")]
    Distributed,
    /// One account that tries to fill every quota.
    #[serde(rename = "resource-hog")]
    ResourceHog,
}

impl Archetype {
    /// Every archetype, in report order.
    pub const ALL: [Archetype; 8] = [
        Archetype::WellBehaved,
        Archetype::RetryLoopPolite,
        Archetype::RetryLoopRude,
        Archetype::RotateIpv6In64,
        Archetype::RotateIpv6In48,
        Archetype::RotateFingerprint,
        Archetype::Distributed,
        Archetype::ResourceHog,
    ];

    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Archetype::WellBehaved => "well-behaved",
            Archetype::RetryLoopPolite => "retry-loop-polite",
            Archetype::RetryLoopRude => "retry-loop-rude",
            Archetype::RotateIpv6In64 => "rotate-ipv6-64",
            Archetype::RotateIpv6In48 => "rotate-ipv6-48",
            Archetype::RotateFingerprint => "rotate-fingerprint",
            Archetype::Distributed => "distributed",
            Archetype::ResourceHog => "resource-hog",
        }
    }

    /// The archetype's defaults.
    pub fn behaviour(self) -> Behaviour {
        let base = Behaviour {
            deploys: 1,
            max_runs: 6,
            max_requests: 200,
            honour_retry_after: true,
            claim: false,
            fresh_account_per_run: false,
            kv_namespaces: 0,
            d1_databases: 0,
            queues: 0,
            asset_files: 0,
            retry_delay: Duration::from_millis(50),
            addressing: Addressing::FixedV4,
            rotate_fingerprint: false,
        };
        let looping = Behaviour {
            deploys: 20,
            max_runs: 40,
            max_requests: 600,
            fresh_account_per_run: true,
            ..base.clone()
        };
        match self {
            Archetype::WellBehaved => Behaviour {
                claim: true,
                kv_namespaces: 1,
                ..base
            },
            Archetype::RetryLoopPolite => looping,
            Archetype::RetryLoopRude => Behaviour {
                honour_retry_after: false,
                ..looping
            },
            Archetype::RotateIpv6In64 => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV6In64,
                ..looping
            },
            Archetype::RotateIpv6In48 => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV6In48,
                ..looping
            },
            Archetype::RotateFingerprint => Behaviour {
                honour_retry_after: false,
                rotate_fingerprint: true,
                ..looping
            },
            Archetype::Distributed => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV4Subnets,
                ..looping
            },
            Archetype::ResourceHog => Behaviour {
                max_requests: 400,
                honour_retry_after: false,
                kv_namespaces: 12,
                d1_databases: 2,
                queues: 12,
                asset_files: 1100,
                ..base
            },
        }
    }
}

/// Where an agent's simulated addresses come from. The IPv4 pools are
/// ranges no real client uses (198.18.0.0/15 is reserved for benchmarks,
/// 100.64.0.0/10 is carrier-grade NAT); IPv6 uses 2001:db8::/32, the
/// documentation prefix. Only the `X-Forwarded-For` header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One IPv4 address per agent, each agent in its own /24.
    FixedV4,
    /// A new IPv4 address in a random /24 of 100.64.0.0/10 per account.
    RotateV4Subnets,
    /// A new interface id inside the agent's own /64 per account.
    RotateV6In64,
    /// A new /64 inside the agent's own /48 per account.
    RotateV6In48,
}

impl Addressing {
    /// The agent's address for its `run`-th account.
    pub fn address(self, agent: u64, rng: &mut StdRng) -> IpAddr {
        match self {
            Addressing::FixedV4 => {
                let subnet = agent % 512;
                let host = 10 + (agent / 512) % 240;
                IpAddr::V4(Ipv4Addr::new(
                    198,
                    18 + (subnet / 256) as u8,
                    (subnet % 256) as u8,
                    host as u8,
                ))
            }
            Addressing::RotateV4Subnets => IpAddr::V4(Ipv4Addr::new(
                100,
                rng.gen_range(64..128),
                rng.gen(),
                rng.gen_range(1..255),
            )),
            Addressing::RotateV6In64 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0x0db8,
                0x0064,
                (agent % 0x1_0000) as u16,
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
            )),
            Addressing::RotateV6In48 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0x0db8,
                0x4800 | (agent % 0x800) as u16,
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
            )),
        }
    }

    /// Whether every account gets a new address.
    pub fn rotates(self) -> bool {
        self != Addressing::FixedV4
    }
}

/// How an agent behaves; archetype defaults with scenario overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Successful deploys wanted.
    pub deploys: u32,
    /// Deploy runs allowed, successful or not.
    pub max_runs: u32,
    /// Requests allowed in total.
    pub max_requests: u32,
    /// Wait as `Retry-After` says.
    pub honour_retry_after: bool,
    /// Claim accounts after deploying.
    pub claim: bool,
    /// New account for each run.
    pub fresh_account_per_run: bool,
    /// KV namespaces per account.
    pub kv_namespaces: u32,
    /// D1 databases per account.
    pub d1_databases: u32,
    /// Queues per account.
    pub queues: u32,
    /// Asset files per account.
    pub asset_files: u32,
    /// Delay between retries when not honouring `Retry-After`.
    pub retry_delay: Duration,
    /// Address plan.
    pub addressing: Addressing,
    /// Change the header fingerprint every run.
    pub rotate_fingerprint: bool,
}

impl Behaviour {
    /// The archetype's defaults with the group's overrides applied.
    pub fn for_group(g: &AgentGroup) -> Self {
        let mut b = g.archetype.behaviour();
        if let Some(v) = g.deploys {
            b.deploys = v;
            b.max_runs = b.max_runs.max(v);
        }
        if let Some(v) = g.max_runs {
            b.max_runs = v;
        }
        if let Some(v) = g.max_requests {
            b.max_requests = v;
        }
        if let Some(v) = g.honour_retry_after {
            b.honour_retry_after = v;
        }
        if let Some(v) = g.claim {
            b.claim = v;
        }
        if let Some(v) = g.fresh_account_per_run {
            b.fresh_account_per_run = v;
        }
        if let Some(v) = g.kv_namespaces {
            b.kv_namespaces = v;
        }
        if let Some(v) = g.d1_databases {
            b.d1_databases = v;
        }
        if let Some(v) = g.queues {
            b.queues = v;
        }
        if let Some(v) = g.asset_files {
            b.asset_files = v;
        }
        if let Some(v) = g.retry_delay_ms {
            b.retry_delay = Duration::from_millis(v);
        }
        b
    }
}

/// User-Agents a fingerprint rotator picks from.
const USER_AGENTS: [&str; 6] = [
    "wrangler/4.164.0",
    "wrangler/4.163.2",
    "wrangler/3.114.9",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "curl/8.14.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
];

/// A random header fingerprint: User-Agent, a subset of common headers in
/// shuffled order, sometimes an extra custom header.
pub fn random_identity(addr: Option<IpAddr>, rng: &mut StdRng) -> Identity {
    use rand::seq::SliceRandom;
    let ua = USER_AGENTS.choose(rng).copied().unwrap_or("undici");
    let mut extra: Vec<(HeaderName, HeaderValue)> = vec![
        (reqwest::header::ACCEPT, HeaderValue::from_static("*/*")),
        (
            reqwest::header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,en;q=0.8"),
        ),
        (
            HeaderName::from_static("sec-fetch-mode"),
            HeaderValue::from_static("cors"),
        ),
        (
            reqwest::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ),
        (
            HeaderName::from_static("x-client-run"),
            HeaderValue::from(rng.gen::<u32>()),
        ),
    ];
    extra.shuffle(rng);
    let keep = rng.gen_range(1..=extra.len());
    extra.truncate(keep);
    Identity {
        forwarded_for: addr,
        provisioning_ua: if rng.gen_bool(0.5) {
            "undici".into()
        } else {
            ua.into()
        },
        wrangler_ua: ua.into(),
        extra,
        ua_last: rng.gen_bool(0.5),
    }
}

/// Everything one agent needs.
pub struct AgentCtx {
    /// Global agent number (for addresses and names).
    pub index: u64,
    /// Its group's behaviour.
    pub behaviour: Arc<Behaviour>,
    /// Connection to the target.
    pub api: Api,
    /// Proof-of-work settings of the run.
    pub pow: Arc<PowSettings>,
    /// Seed for this agent's randomness.
    pub seed: u64,
}

fn bindings(acct_kv: &[String]) -> Value {
    Value::Array(
        acct_kv
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"type": "kv_namespace", "name": format!("KV{i}"), "namespace_id": id}))
            .collect(),
    )
}

/// What to do after a refusal: wait as told (polite), or the agent's own
/// short delay (rude, rotators: they change identity instead of waiting).
/// False when the agent has to stop.
async fn back_off(api: &Api, b: &Behaviour, retry_after: Option<Duration>, streak: u32) -> bool {
    let wait = if b.honour_retry_after {
        retry_after.unwrap_or_else(|| Duration::from_secs(1u64 << streak.min(5)))
    } else {
        b.retry_delay
    };
    pause(api, wait).await
}

/// Run one agent until it has its deploys, runs out of runs or requests,
/// or the run ends.
pub async fn run_agent(mut ctx: AgentCtx) {
    let group: Arc<GroupStats> = ctx.api.group().clone();
    GroupStats::bump(&group.agents_started);
    group
        .deploys_wanted
        .fetch_add(u64::from(ctx.behaviour.deploys), std::sync::atomic::Ordering::Relaxed);
    let b = ctx.behaviour.clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let label = group.label.clone();
    let script = format!("{label}-{}", ctx.index);
    let first_addr = b.addressing.address(ctx.index, &mut rng);
    let mut ident = if b.rotate_fingerprint {
        random_identity(Some(first_addr), &mut rng)
    } else {
        Identity::wrangler(Some(first_addr))
    };
    let mut session = Session {
        api: &mut ctx.api,
        ident: ident.clone(),
        honour_retry_after: b.honour_retry_after,
        retry_delay: b.retry_delay,
    };

    let mut account = None;
    let mut kv_ids: Vec<String> = Vec::new();
    let mut kv_attempted = false;
    let mut completed = 0u32;
    let mut refusal_streak = 0u32;
    for run in 0..b.max_runs {
        if completed >= b.deploys || session.api.stopped() {
            break;
        }
        GroupStats::bump(&group.deploys_attempted);
        if b.fresh_account_per_run || account.is_none() {
            if run > 0 {
                let addr = if b.addressing.rotates() {
                    b.addressing.address(ctx.index, &mut rng)
                } else {
                    first_addr
                };
                if b.rotate_fingerprint {
                    ident = random_identity(Some(addr), &mut rng);
                } else {
                    ident.forwarded_for = Some(addr);
                }
                session.ident = ident.clone();
            }
            match session.provision(&ctx.pow).await {
                Ok(a) => {
                    account = Some(a);
                    kv_ids.clear();
                    kv_attempted = false;
                }
                Err(e) => {
                    if !handle_failure(&mut session, &b, &group, e, &mut refusal_streak).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(acct) = account.as_mut() else {
            continue;
        };

        if !kv_attempted && b.kv_namespaces > 0 {
            kv_attempted = true;
            for n in 0..b.kv_namespaces {
                let body = json!({"title": format!("{script}-kv-{n}")});
                match session
                    .create_resource(acct, "create kv", "storage/kv/namespaces", body)
                    .await
                {
                    Ok(Some(id)) => kv_ids.push(id),
                    Ok(None) | Err(StepError::Refused(_)) | Err(StepError::Failed(_)) => {}
                    Err(StepError::Stopped) => break,
                }
            }
        }
        match session.deploy(acct, &script, bindings(&kv_ids)).await {
            Ok(()) => {
                completed += 1;
                refusal_streak = 0;
                GroupStats::bump(&group.deploys_completed);
            }
            Err(e) => {
                let auth_lost = matches!(&e, StepError::Failed(m) if m.contains("HTTP 401") || m.contains("HTTP 403"));
                if auth_lost {
                    account = None;
                }
                if !handle_failure(&mut session, &b, &group, e, &mut refusal_streak).await {
                    break;
                }
                continue;
            }
        }
        if !acct.resources_done {
            acct.resources_done = true;
            add_resources(&mut session, acct, &b, &script).await;
        }
        if b.claim && !acct.claimed {
            if let Err(StepError::Failed(m)) = session.claim(acct).await {
                group.note_error(m);
            }
        }
    }
    if completed >= b.deploys {
        GroupStats::bump(&group.agents_succeeded);
    }
    GroupStats::bump(&group.agents_finished);
}

/// Count a failed step and wait as the archetype would. False: stop.
async fn handle_failure(
    session: &mut Session<'_>,
    b: &Behaviour,
    group: &GroupStats,
    e: StepError,
    streak: &mut u32,
) -> bool {
    match e {
        StepError::Stopped => false,
        StepError::Refused(ra) => {
            *streak += 1;
            back_off(session.api, b, ra, *streak).await
        }
        StepError::Failed(m) => {
            group.note_error(m);
            *streak += 1;
            // Failures that are not refusals get a short pause so a broken
            // target does not turn the loop into a spin.
            pause(session.api, Duration::from_millis(100).max(b.retry_delay)).await
        }
    }
}

/// D1 databases, queues and static assets, created after the first deploy
/// on an account. Refusals are counted and the agent moves on, as a
/// quota-filling client would.
async fn add_resources(
    session: &mut Session<'_>,
    acct: &crate::wrangler::Account,
    b: &Behaviour,
    script: &str,
) {
    for n in 0..b.d1_databases {
        let body = json!({"name": format!("{script}-db-{n}")});
        if session
            .create_resource(acct, "create d1", "d1/database", body)
            .await
            == Err(StepError::Stopped)
        {
            return;
        }
    }
    for n in 0..b.queues {
        let body = json!({"queue_name": format!("{script}-q-{n}")});
        if session
            .create_resource(acct, "create queue", "queues", body)
            .await
            == Err(StepError::Stopped)
        {
            return;
        }
    }
    if b.asset_files > 0 {
        if let Err(StepError::Failed(m)) = session.upload_assets(acct, script, b.asset_files).await
        {
            session.api.group().note_error(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_rotation_stays_in_its_prefix() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let IpAddr::V6(a) = Addressing::RotateV6In64.address(7, &mut rng) else {
                panic!("not v6")
            };
            assert_eq!(&a.segments()[..4], &[0x2001, 0xdb8, 0x64, 7]);
            let IpAddr::V6(b) = Addressing::RotateV6In48.address(7, &mut rng) else {
                panic!("not v6")
            };
            assert_eq!(&b.segments()[..3], &[0x2001, 0xdb8, 0x4807]);
        }
    }

    #[test]
    fn distributed_spreads_over_many_24s() {
        let mut rng = StdRng::seed_from_u64(3);
        let nets: std::collections::HashSet<[u8; 3]> = (0..200)
            .map(|_| match Addressing::RotateV4Subnets.address(0, &mut rng) {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    [o[0], o[1], o[2]]
                }
                IpAddr::V6(_) => [0, 0, 0],
            })
            .collect();
        assert!(nets.len() > 150);
    }

    #[test]
    fn fixed_agents_get_distinct_24s() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = Addressing::FixedV4.address(1, &mut rng);
        let b = Addressing::FixedV4.address(2, &mut rng);
        assert_ne!(a, b);
    }
}
