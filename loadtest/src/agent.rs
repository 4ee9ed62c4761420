//! The loop one agent runs.
//!
//! The loop is the same for every archetype; only the [`Behaviour`]
//! differs, so the report compares like with like. An agent is handed its
//! behaviour, connection and proof-of-work settings as values
//! ([`AgentCtx`]) and reports only through its group's counters.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{json, Value};

pub use crate::agent_ctx::AgentCtx;
/// The archetype types, also reachable from here: an agent is described by
/// them.
pub use crate::archetype::{Addressing, Archetype, Behaviour, Special};
use crate::protocol::{Api, Identity};
use crate::stats::{AgentWindow, GroupStats};
use crate::wrangler::{pause, Account, Session, StepError};

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
        (reqwest::header::ACCEPT_LANGUAGE, HeaderValue::from_static("en-US,en;q=0.8")),
        (HeaderName::from_static("sec-fetch-mode"), HeaderValue::from_static("cors")),
        (reqwest::header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("x-client-run"), HeaderValue::from(rng.gen::<u32>())),
    ];
    extra.shuffle(rng);
    let keep = rng.gen_range(1..=extra.len());
    extra.truncate(keep);
    Identity {
        forwarded_for: addr,
        provisioning_ua: if rng.gen_bool(0.5) { "undici".into() } else { ua.into() },
        wrangler_ua: ua.into(),
        extra,
        ua_last: rng.gen_bool(0.5),
    }
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
    let from_ms = ctx.api.since_start_ms();
    if b.special != Special::None {
        let completed = crate::attack::run(&mut ctx).await;
        finish(&ctx.api, &group, &b, from_ms, completed);
        return;
    }
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

    if let Some(net) = crate::archetype::ipv4_24(first_addr) {
        group.note_network(net);
    }
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
                if let Some(net) = crate::archetype::ipv4_24(addr) {
                    group.note_network(net);
                }
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
    finish(session.api, &group, &b, from_ms, completed);
}

/// Count an agent's end and remember when it ran.
fn finish(api: &Api, group: &GroupStats, b: &Behaviour, from_ms: u64, completed: u32) {
    if completed >= b.deploys {
        GroupStats::bump(&group.agents_succeeded);
    }
    GroupStats::bump(&group.agents_finished);
    group.record_window(AgentWindow {
        from_ms,
        until_ms: api.since_start_ms(),
        wanted: u64::from(b.deploys),
        completed: u64::from(completed),
    });
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
async fn add_resources(session: &mut Session<'_>, acct: &Account, b: &Behaviour, script: &str) {
    for n in 0..b.d1_databases {
        let body = json!({"name": format!("{script}-db-{n}")});
        if session.create_resource(acct, "create d1", "d1/database", body).await
            == Err(StepError::Stopped)
        {
            return;
        }
    }
    for n in 0..b.queues {
        let body = json!({"queue_name": format!("{script}-q-{n}")});
        if session.create_resource(acct, "create queue", "queues", body).await
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
