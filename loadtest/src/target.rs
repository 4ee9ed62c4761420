//! The system under test: a loopback URL, or a platform + gateway that the
//! tester starts itself.
//!
//! Traffic from this tool may only ever reach this machine: a load test
//! aimed at someone else's server is an attack. Every URL the tester sends
//! to (the target and each claim URL a platform hands out) goes through
//! [`check_loopback_url`](crate::loopback::check_loopback_url) first.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenario::{resolve_relative, SpawnTarget};

/// The platform's clock: the system clock plus an offset the tester can
/// move forward at the end of a run, so every account still unclaimed
/// expires at once instead of a lifetime later.
#[derive(Debug, Default)]
pub struct ShiftableClock {
    offset_secs: AtomicI64,
}

impl ShiftableClock {
    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

impl refplatform::Clock for ShiftableClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
            + time::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }
}

/// Things started for a `spawn` target; dropping it stops them.
pub struct Spawned {
    /// URL agents send to (the gateway).
    pub url: String,
    /// URL of the platform behind the gateway.
    pub platform_url: String,
    /// The gateway's admin listener (events in, ledger out).
    pub admin_url: String,
    /// The bearer token of that listener's admin API (made for this run).
    pub admin_token: String,
    /// The policy file the gateway enforces.
    pub policy: Option<PathBuf>,
    /// Account lifetime the platform was given.
    pub account_lifetime: Duration,
    clock: Arc<ShiftableClock>,
    gateway: Option<tokio::process::Child>,
    platform: Option<refplatform::RunningPlatform>,
    dir: tempfile::TempDir,
}

impl Spawned {
    /// Expire every account still unclaimed now: move the platform's clock
    /// past the lifetime and sweep. The platform sends an `expired` event
    /// to the gateway for each. Returns how many were expired.
    pub fn expire_all(&self) -> usize {
        let Some(p) = &self.platform else { return 0 };
        self.clock.advance(self.account_lifetime + Duration::from_secs(1));
        p.platform().sweep().len()
    }

    /// The reference platform's state (accounts, cleanup records), read
    /// by checks that compare against the platform's own count.
    pub fn platform(&self) -> Option<Arc<refplatform::Platform>> {
        self.platform.as_ref().map(|p| p.platform())
    }

    /// Copy the gateway's log to `to` (it lives in a temporary folder that
    /// goes away with the run).
    pub fn keep_log(&self, to: &Path) -> Result<(), String> {
        std::fs::copy(self.dir.path().join("gateway.log"), to)
            .map(|_| ())
            .map_err(|e| format!("cannot copy the gateway log to {}: {e}", to.display()))
    }

    /// The last lines of the gateway's log (for error messages).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("gateway.log"), lines)
    }

    /// Stop the gateway, then the platform. The gateway is killed outright:
    /// the run is over, and nothing it still holds matters. If this is
    /// never called (the run future was dropped, e.g. on Ctrl-C), the
    /// child is still killed on drop (`kill_on_drop`).
    pub async fn shutdown(mut self) {
        if let Some(mut child) = self.gateway.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        if let Some(p) = self.platform.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.shutdown()).await;
        }
    }
}

/// A free loopback port, found by binding port 0 and letting go. Another
/// process could grab it in between; on a test machine that is rare enough.
fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Where the gateway binary is: `--gateway-bin`, else next to this
/// executable (cargo puts both binaries in one target folder).
pub fn find_gateway_bin(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--gateway-bin {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = exe.parent() {
        dirs.push(d.to_path_buf());
        // Integration tests run from target/debug/deps.
        if let Some(up) = d.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    for d in dirs {
        let p = d.join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "gateway binary not found next to {}; build it (`cargo build -p gateway`) or pass --gateway-bin PATH",
        exe.display()
    ))
}

/// Start the reference platform in-process and the gateway binary in
/// front of it; wait until the gateway answers.
pub async fn spawn(
    spec: &SpawnTarget,
    scenario_file: Option<&Path>,
    gateway_bin: Option<&Path>,
    access_log: Option<&Path>,
) -> Result<Spawned, String> {
    let bin = find_gateway_bin(gateway_bin)?;
    let policy = match &spec.policy {
        Some(p) => Some(resolve_relative(p, scenario_file).ok_or_else(|| {
            format!(
                "policy file {} not found (tried the current directory and the scenario's folders)",
                p.display()
            )
        })?),
        None => None,
    };

    let gw_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let admin_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    // A fresh secret per run: it only has to be shared by the platform and
    // the gateway this run starts.
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect()
    };
    // The admin API's token, apart from the events secret.
    let admin_token: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect()
    };

    let platform_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let account_lifetime = Duration::from_secs(spec.account_lifetime_secs);
    let config = refplatform::PlatformConfig {
        pow_k: spec.pow_k,
        pow_g: spec.pow_g,
        account_lifetime,
        sweep_interval: Duration::from_secs(spec.sweep_interval_secs),
        events: Some(refplatform::EventsConfig {
            url: format!("{admin_url}/events"),
            secret: secret.clone(),
        }),
        ..refplatform::PlatformConfig::default()
    };
    let clock = Arc::new(ShiftableClock::default());
    let handle = refplatform::spawn(config, clock.clone(), platform_addr)
        .await
        .map_err(|e| format!("cannot start the reference platform: {e}"))?;
    let platform_url = format!("http://{}", handle.addr());

    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let cfg_path = dir.path().join("gateway.toml");
    // Accounts are charged from platform events; the gateway's own fallback
    // for lost events waits well past the end of any run.
    let mut cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:{gw_port}\"]\nthreads = {}\ngrace_period_secs = 2\n\n\
         [upstream]\nurl = \"{platform_url}\"\nconnect_timeout_ms = 2000\nread_timeout_ms = 30000\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{admin_token}\"\nevents_secret = \"{secret}\"\nsilent_expiry_grace_secs = 3600\n",
        spec.gateway_threads
    );
    let policy = policy.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    if let Some(abs) = &policy {
        let escaped = abs.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        // Agents announce their simulated addresses in X-Forwarded-For from loopback;
        // the shipped policies trust no proxy, so the gateway is told to trust loopback.
        cfg.push_str(&format!("\n[policy]\nfile = \"{escaped}\"\ntrust_loopback = true\n"));
    }
    if let Some(file) = access_log {
        let abs = if file.is_absolute() {
            file.to_path_buf()
        } else {
            std::env::current_dir().map(|d| d.join(file)).unwrap_or_else(|_| file.to_path_buf())
        };
        let escaped = abs.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        cfg.push_str(&format!("\n[access_log]\nfile = \"{escaped}\"\n"));
    }
    std::fs::write(&cfg_path, cfg).map_err(|e| format!("cannot write gateway config: {e}"))?;

    let log = std::fs::File::create(dir.path().join("gateway.log"))
        .map_err(|e| format!("cannot create gateway log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot create gateway log: {e}"))?;
    let mut child = tokio::process::Command::new(&bin)
        .arg("run")
        .arg("--config")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;

    let gw_addr = SocketAddr::from(([127, 0, 0, 1], gw_port));
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = tail(&dir.path().join("gateway.log"), 20);
            return Err(format!("gateway exited early ({status}):\n{tail}"));
        }
        if tokio::net::TcpStream::connect(gw_addr).await.is_ok()
            && tokio::net::TcpStream::connect(admin_addr).await.is_ok()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.start_kill();
            return Err(format!(
                "gateway did not answer on {gw_addr} and {admin_addr} within 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    Ok(Spawned {
        url: format!("http://{gw_addr}"),
        platform_url,
        admin_url,
        admin_token,
        policy,
        account_lifetime,
        clock,
        gateway: Some(child),
        platform: Some(handle),
        dir,
    })
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
