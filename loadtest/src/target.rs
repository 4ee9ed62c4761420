//! The system under test: a loopback URL, or a platform + gateway that the
//! tester starts itself.
//!
//! Traffic from this tool may only ever reach this machine: a load test
//! aimed at someone else's server is an attack. Every URL the tester sends
//! to (the target and each claim URL a platform hands out) goes through
//! [`check_loopback_url`] first.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::scenario::{resolve_relative, SpawnTarget};

/// Refuse any URL that is not plain HTTP(S) to 127.0.0.0/8, ::1 or
/// `localhost`.
pub fn check_loopback_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("`{url}`: only http and https are supported"));
    }
    let host = parsed.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !ok {
        return Err(format!(
            "refusing target host {:?}: the load tester only sends to loopback (127.0.0.0/8, ::1, localhost)",
            parsed.host_str().unwrap_or("")
        ));
    }
    Ok(parsed)
}

/// Things started for a `spawn` target; dropping it stops them.
pub struct Spawned {
    /// URL agents send to (the gateway).
    pub url: String,
    /// URL of the platform behind the gateway.
    pub platform_url: String,
    gateway: Option<tokio::process::Child>,
    platform: Option<refplatform::RunningPlatform>,
    _dir: tempfile::TempDir,
}

impl Spawned {
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

    let platform_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = refplatform::PlatformConfig {
        pow_k: spec.pow_k,
        pow_g: spec.pow_g,
        ..refplatform::PlatformConfig::default()
    };
    let clock: Arc<dyn refplatform::Clock> = Arc::new(refplatform::SystemClock);
    let handle = refplatform::spawn(config, clock, platform_addr)
        .await
        .map_err(|e| format!("cannot start the reference platform: {e}"))?;
    let platform_url = format!("http://{}", handle.addr());

    let gw_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let cfg_path = dir.path().join("gateway.toml");
    let mut cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:{gw_port}\"]\nthreads = {}\ngrace_period_secs = 2\n\n\
         [upstream]\nurl = \"{platform_url}\"\nconnect_timeout_ms = 2000\nread_timeout_ms = 30000\n",
        spec.gateway_threads
    );
    if let Some(p) = &policy {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let escaped = abs
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        cfg.push_str(&format!("\n[policy]\nfile = \"{escaped}\"\n"));
    }
    std::fs::write(&cfg_path, cfg).map_err(|e| format!("cannot write gateway config: {e}"))?;

    let log = std::fs::File::create(dir.path().join("gateway.log"))
        .map_err(|e| format!("cannot create gateway log: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot create gateway log: {e}"))?;
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
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            return Err(format!("gateway exited early ({status}):\n{tail}"));
        }
        if tokio::net::TcpStream::connect(gw_addr).await.is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.start_kill();
            return Err(format!("gateway did not answer on {gw_addr} within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    Ok(Spawned {
        url: format!("http://{gw_addr}"),
        platform_url,
        gateway: Some(child),
        platform: Some(handle),
        _dir: dir,
    })
}
