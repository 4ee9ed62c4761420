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

use crate::agent::{run_agent, AgentCtx, Behaviour};
use crate::pow::Encoding;
use crate::progress::Progress;
use crate::protocol::Api;
use crate::report::Report;
use crate::scenario::{Scenario, Target};
use crate::stats::{GroupStats, RunStats};
use crate::target::{self, check_loopback_url};
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
    let (url, target_desc) = match (&opts.target_url, &scenario.target) {
        (Some(u), _) => (u.clone(), format!("url {u}")),
        (None, Target::Url(u)) => (u.clone(), format!("url {u}")),
        (None, Target::Spawn(spec)) => {
            let s = target::spawn(
                spec,
                opts.scenario_file.as_deref(),
                opts.gateway_bin.as_deref(),
            )
            .await?;
            let desc = format!(
                "spawned gateway at {} in front of reference platform at {} (pow k={} g={})",
                s.url, s.platform_url, spec.pow_k, spec.pow_g
            );
            let u = s.url.clone();
            spawned = Some(s);
            (u, desc)
        }
    };
    let result = drive(&scenario, opts, &url, duration, target_desc).await;
    if let Some(s) = spawned {
        s.shutdown().await;
    }
    result
}

async fn drive(
    scenario: &Scenario,
    opts: &RunOptions,
    url: &str,
    duration: f64,
    target_desc: String,
) -> Result<Report, String> {
    let root: Url = check_loopback_url(url)?;
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
    Ok(Report::build(
        scenario,
        &run,
        elapsed,
        duration,
        opts.scale,
        target_desc,
        stopped_by.to_string(),
    ))
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
