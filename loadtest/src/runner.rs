//! Runs a scenario: sets up the target, releases agents on their arrival
//! schedules, waits for them within the run's bounds, tears down.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::agent::{run_agent, AgentCtx};
use crate::archetype::Behaviour;
use crate::ledger::GroupCleanup;
use crate::loopback::check_loopback_url;
use crate::pow::Encoding;
use crate::progress::Progress;
use crate::protocol::Api;
use crate::report::{LedgerInfo, Report};
use crate::scenario::{resolve_relative, Scenario, Target};
use crate::stats::{unix_now, AccountRecord, GroupStats, RunStats};
use crate::target;
use crate::wrangler::PowSettings;

/// Knobs given on the command line rather than in the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Multiply agent counts by this.
    pub scale: f64,
    /// Send to this loopback URL instead of the scenario's target.
    pub target_url: Option<String>,
    /// Gateway binary for `spawn` targets.
    pub gateway_bin: Option<PathBuf>,
    /// Cap the run's duration below the scenario's.
    pub max_duration_secs: Option<f64>,
    /// The scenario file, to resolve relative paths.
    pub scenario_file: Option<PathBuf>,
    /// Show live progress (when stderr is a terminal).
    pub progress: bool,
    /// How proof-of-work checkpoints go on the wire.
    pub pow_encoding: Encoding,
    /// The gateway's admin listener, with `target_url` (overrides the
    /// scenario's `admin_url`).
    pub admin_url: Option<String>,
    /// The policy the gateway at `target_url` enforces, for its budgets.
    pub policy: Option<PathBuf>,
    /// Copy a spawned gateway's log here at the end.
    pub gateway_log: Option<PathBuf>,
    /// Have a spawned gateway write its access log (`[access_log] file`) here, for
    /// `gateway replay`.
    pub access_log: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            target_url: None,
            gateway_bin: None,
            max_duration_secs: None,
            scenario_file: None,
            progress: false,
            pow_encoding: Encoding::Concatenated,
            admin_url: None,
            policy: None,
            gateway_log: None,
            access_log: None,
        }
    }
}

/// A loopback address to bind agent `i`'s sockets to: 127.x.y.z, never
/// the network or broadcast-looking .0/.255.
pub fn source_address(i: u64) -> IpAddr {
    let host = 1 + (i % 250) as u8;
    let third = ((i / 250) % 256) as u8;
    let second = 1 + ((i / 64_000) % 250) as u8;
    IpAddr::V4(Ipv4Addr::new(127, second, third, host))
}

/// Mean-`1/rate` exponential gap (Poisson arrivals), capped so one unlucky
/// draw cannot stall a group.
fn interarrival(rate: f64, rng: &mut StdRng) -> Duration {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let secs = (-u.ln() / rate).min(10.0 / rate).min(60.0);
    Duration::from_secs_f64(secs.max(0.0))
}

/// Run `scenario` and return its report.
pub async fn run(mut scenario: Scenario, opts: &RunOptions) -> Result<Report, String> {
    scenario.scale(opts.scale).map_err(|e| e.to_string())?;
    let mut duration = scenario.duration_secs;
    if let Some(cap) = opts.max_duration_secs {
        if !(cap.is_finite() && cap > 0.0) {
            return Err(format!("--max-duration must be positive, got {cap}"));
        }
        duration = duration.min(cap);
    }

    let mut spawned = None;
    let (url, target_desc, admin, policy) = match (&opts.target_url, &scenario.target) {
        (Some(u), _) => {
            (u.clone(), format!("url {u}"), opts.admin_url.clone(), opts.policy.clone())
        }
        (None, Target::Url(t)) => (
            t.url.clone(),
            format!("url {}", t.url),
            opts.admin_url.clone().or_else(|| t.admin_url.clone()),
            opts.policy.clone().or_else(|| t.policy.clone()),
        ),
        (None, Target::Spawn(spec)) => {
            let s = target::spawn(
                spec,
                opts.scenario_file.as_deref(),
                opts.gateway_bin.as_deref(),
                opts.access_log.as_deref(),
            )
            .await?;
            let desc = format!(
                "spawned gateway at {} in front of reference platform at {} (pow k={} g={}, accounts live {} s)",
                s.url, s.platform_url, spec.pow_k, spec.pow_g, spec.account_lifetime_secs
            );
            let u = s.url.clone();
            let admin = Some(s.admin_url.clone());
            let policy = s.policy.clone();
            spawned = Some(s);
            (u, desc, admin, policy)
        }
    };
    let policy = match policy {
        Some(p) => Some(
            resolve_relative(&p, opts.scenario_file.as_deref())
                .ok_or_else(|| format!("policy file {} not found", p.display()))?,
        ),
        None => None,
    };
    let settle = match &scenario.target {
        Target::Spawn(spec) if opts.target_url.is_none() => Settle {
            expire_at_end: spec.expire_at_end,
            wait: Duration::from_secs(spec.settle_secs),
        },
        _ => Settle { expire_at_end: false, wait: Duration::from_secs(2) },
    };
    let cost = CostSource { admin, policy, spawned: spawned.as_ref(), settle };
    let result = drive(&scenario, opts, &url, duration, target_desc, cost).await;
    if let (Some(s), Some(to)) = (&spawned, &opts.gateway_log) {
        if let Err(e) = s.keep_log(to) {
            eprintln!("warning: {e}");
        }
    }
    if let Some(s) = spawned {
        s.shutdown().await;
    }
    result
}

/// How the end of a run waits for the ledger.
struct Settle {
    /// Expire every account still unclaimed (spawned platform only).
    expire_at_end: bool,
    /// Longest wait for every account to be charged or credited.
    wait: Duration,
}

/// Where the run's cleanup cost comes from.
struct CostSource<'a> {
    admin: Option<String>,
    policy: Option<PathBuf>,
    spawned: Option<&'a target::Spawned>,
    settle: Settle,
}

/// Read the gateway's ledger at the end of a run (after expiring what is
/// left, when the tester owns the platform) and attribute it to groups.
async fn read_ledger(
    run: &RunStats,
    cost: &CostSource<'_>,
    run_start_unix: u64,
) -> Option<(Vec<GroupCleanup>, LedgerInfo)> {
    let admin = cost.admin.as_ref()?;
    let mut info = LedgerInfo { admin_url: Some(admin.clone()), ..LedgerInfo::default() };
    let admin = match check_loopback_url(admin) {
        Ok(u) => u,
        Err(e) => {
            info.error = Some(format!("admin_url: {e}"));
            return Some((Vec::new(), info));
        }
    };
    let budgets = match &cost.policy {
        Some(p) => match crate::ledger::budgets_from_policy(p) {
            Ok(b) => Some(b),
            Err(e) => {
                info.error = Some(e);
                None
            }
        },
        None => None,
    };
    info.budgets = budgets.clone().unwrap_or_default();
    // The admin API wants its bearer token: the spawned gateway's, or the operator's
    // from GATEWAY_ADMIN_TOKEN for a gateway the tester did not start.
    let token = cost
        .spawned
        .map(|s| s.admin_token.clone())
        .or_else(|| std::env::var("GATEWAY_ADMIN_TOKEN").ok());
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(Ok(mut value)) =
        token.map(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")))
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = match reqwest::Client::builder().no_proxy().default_headers(headers).build() {
        Ok(c) => c,
        Err(e) => {
            info.error = Some(format!("cannot build HTTP client: {}", e.without_url()));
            return Some((Vec::new(), info));
        }
    };
    if cost.settle.expire_at_end {
        if let Some(s) = cost.spawned {
            s.expire_all();
        }
    }
    let groups: Vec<Vec<AccountRecord>> = run.groups.iter().map(|g| g.accounts()).collect();
    // Accounts to wait for: all of them when the platform expires what is
    // left; otherwise only the claimed ones (live accounts cannot settle in
    // time, claims are reported at once).
    let ids: Vec<&str> = groups
        .iter()
        .flatten()
        .filter(|a| cost.settle.expire_at_end || a.claimed)
        .map(|a| a.id.as_str())
        .collect();
    let started = tokio::time::Instant::now();
    let until = started + cost.settle.wait;
    let mut last_ok: Option<(Vec<crate::ledger::Entry>, usize)> = None;
    let mut last_err = String::from("ledger not read");
    // Bounded: at most `settle.wait` (<= 300 s) of polls 250 ms apart.
    loop {
        match crate::ledger::fetch_entries(&client, &admin).await {
            Ok(v) => last_ok = Some(v),
            Err(e) => last_err = e,
        }
        let settled = match &last_ok {
            Some((entries, _)) => {
                let seen: std::collections::HashSet<&str> =
                    entries.iter().map(|e| e.account_id.as_str()).collect();
                ids.iter().all(|id| seen.contains(id))
            }
            None => false,
        };
        if settled || tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    info.settle_secs = started.elapsed().as_secs_f64();
    info.gateway_stats = crate::ledger::fetch_stats(&client, &admin).await;
    match last_ok {
        Some((entries, skipped)) => {
            info.entries = entries.len();
            info.skipped = skipped;
            let cleanup =
                crate::ledger::analyse(&entries, &groups, budgets.as_deref(), run_start_unix);
            Some((cleanup, info))
        }
        None => {
            let e = last_err;
            let tail = cost
                .spawned
                .map(|s| format!("\ngateway log:\n{}", s.log_tail(10)))
                .unwrap_or_default();
            info.error = Some(format!("{e}{tail}"));
            Some((Vec::new(), info))
        }
    }
}

async fn drive(
    scenario: &Scenario,
    opts: &RunOptions,
    url: &str,
    duration: f64,
    target_desc: String,
    cost: CostSource<'_>,
) -> Result<Report, String> {
    let root: Url = check_loopback_url(url)?;
    let run_start_unix = unix_now();
    let groups: Vec<Arc<GroupStats>> = scenario
        .agents
        .iter()
        .map(|g| Arc::new(GroupStats::new(g.label(), g.archetype, u64::from(g.count))))
        .collect();
    let run = Arc::new(RunStats::new(groups.clone(), scenario.max_requests));
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pow = Arc::new(PowSettings {
        permits: Arc::new(Semaphore::new(cores)),
        encoding: opts.pow_encoding,
        max_iterations: scenario.max_pow_iterations,
    });
    let timeout = Duration::from_millis(scenario.request_timeout_ms);
    let progress = Progress::start(run.clone(), duration, opts.progress);

    let mut launchers = JoinSet::new();
    let mut first_index = 0u64;
    for (gi, g) in scenario.agents.iter().enumerate() {
        let behaviour = Arc::new(Behaviour::for_group(g));
        let stats = groups[gi].clone();
        let run = run.clone();
        let pow = pow.clone();
        let root = root.clone();
        let count = u64::from(g.count);
        let rate = g.arrival_per_sec;
        let seed = scenario.seed;
        let network = scenario.network.clone();
        let base = first_index;
        first_index += count;
        launchers.spawn(async move {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (gi as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut agents = JoinSet::new();
            for n in 0..count {
                if n > 0 {
                    let gap = interarrival(rate, &mut rng);
                    if tokio::time::Instant::now() + gap >= deadline {
                        break;
                    }
                    tokio::time::sleep(gap).await;
                }
                if run.budget_spent() {
                    break;
                }
                let index = base + n;
                let mut builder = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(5)))
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(2);
                if network.bind_source {
                    builder = builder.local_address(source_address(index));
                }
                let client = match builder.build() {
                    Ok(c) => c,
                    Err(e) => {
                        stats.note_error(format!("cannot build HTTP client: {}", e.without_url()));
                        continue;
                    }
                };
                let api = match Api::new(
                    client,
                    &root,
                    stats.clone(),
                    run.clone(),
                    deadline,
                    network.forwarded_for,
                    behaviour.max_requests,
                ) {
                    Ok(a) => a,
                    Err(e) => {
                        stats.note_error(e);
                        continue;
                    }
                };
                agents.spawn(run_agent(AgentCtx {
                    index,
                    behaviour: behaviour.clone(),
                    api,
                    pow: pow.clone(),
                    seed: seed.wrapping_add(index.wrapping_mul(0x2545_F491_4F6C_DD1D)),
                    member: n,
                }));
            }
            while agents.join_next().await.is_some() {}
        });
    }

    // Everything inside stops at the deadline by itself; the grace period
    // only guards against a task stuck where no bound reaches.
    let grace = deadline + timeout + Duration::from_secs(5);
    let all_done = async { while launchers.join_next().await.is_some() {} };
    let finished_cleanly = tokio::time::timeout_at(grace, all_done).await.is_ok();
    if !finished_cleanly {
        launchers.abort_all();
    }
    let elapsed = run.start.elapsed();
    progress.finish();
    let stopped_by = if run.budget_spent() {
        "request budget spent"
    } else if tokio::time::Instant::now() >= deadline {
        "duration reached"
    } else {
        "all agents finished"
    };
    let mut report = Report::build(
        scenario,
        &run,
        elapsed,
        duration,
        opts.scale,
        target_desc,
        stopped_by.to_string(),
    );
    if let Some((cleanup, info)) = read_ledger(&run, &cost, run_start_unix).await {
        report.apply_ledger(cleanup, info);
    }
    report.attacks = Some(crate::attack::facts::collect(
        &run,
        cost.policy.as_deref(),
        cost.spawned.and_then(|s| s.platform()),
    ));
    report.evaluate();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_loopback_and_distinct() {
        let a = source_address(0);
        let b = source_address(251);
        assert!(a.is_loopback() && b.is_loopback());
        assert_ne!(a, b);
    }

    #[test]
    fn interarrival_is_bounded() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            assert!(interarrival(2.0, &mut rng) <= Duration::from_secs(5));
        }
    }
}
