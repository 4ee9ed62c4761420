//! `refplatform`: run the reference temporary-deploy platform.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use refplatform::{spawn, EventsConfig, PlatformConfig, SystemClock};

/// Emulated temporary-deploy API that real wrangler can deploy to.
#[derive(Debug, Parser)]
#[command(name = "refplatform", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    /// Proof-of-work segments.
    #[arg(long, default_value_t = 8)]
    k: u32,
    /// Proof-of-work hashes per segment.
    #[arg(long, default_value_t = 4096)]
    g: u32,
    /// Segments spot-checked per verification.
    #[arg(long, default_value_t = 3)]
    spot_checks: usize,
    /// Challenge token lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    challenge_ttl_secs: u64,
    /// Lifetime of an unclaimed account in seconds.
    #[arg(long, default_value_t = 3600)]
    lifetime_secs: u64,
    /// How often to sweep expired accounts, in seconds.
    #[arg(long, default_value_t = 10)]
    sweep_interval_secs: u64,
    /// Base URL for claim links (default: http://{listen address}).
    #[arg(long)]
    public_base_url: Option<String>,
    /// Where to POST lifecycle events.
    #[arg(long, requires = "events_secret")]
    events_url: Option<String>,
    /// HMAC secret for events; also the internal API's bearer token unless
    /// `--status-token` is given.
    #[arg(long)]
    events_secret: Option<String>,
    /// Bearer token of the internal status API, apart from the events secret.
    #[arg(long, requires = "events_secret")]
    status_token: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let events = match (args.events_url, args.events_secret) {
        (Some(url), Some(secret)) => Some(EventsConfig { url, secret }),
        // A secret alone still enables the internal reconciliation API;
        // events then go nowhere.
        (None, Some(secret)) => Some(EventsConfig { url: String::new(), secret }),
        _ => None,
    };
    let config = PlatformConfig {
        pow_k: args.k,
        pow_g: args.g,
        pow_spot_checks: args.spot_checks,
        challenge_ttl: Duration::from_secs(args.challenge_ttl_secs),
        account_lifetime: Duration::from_secs(args.lifetime_secs),
        public_base_url: args.public_base_url,
        sweep_interval: Duration::from_secs(args.sweep_interval_secs.max(1)),
        events,
        status_token: args.status_token,
        ..PlatformConfig::default()
    };
    let running = spawn(config, Arc::new(SystemClock), args.listen).await?;
    println!("refplatform listening on http://{}", running.addr());
    println!("CLOUDFLARE_API_BASE_URL={}", running.api_base_url());
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}
