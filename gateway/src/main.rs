//! The `gateway` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gateway::config::GatewayConfig;
use gateway::demo::DemoOptions;
use gateway::enforce::Enforcer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Abuse-control and quota gateway for anonymous deploys.
#[derive(Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        /// Gateway configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the reference platform and the gateway in front of it, on loopback.
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Where the reference platform listens.
        #[arg(long, default_value = "127.0.0.1:8788")]
        platform_listen: std::net::SocketAddr,
        /// Policy file (default: rules/default.toml when it exists).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Proof-of-work checkpoints the platform asks for.
        #[arg(long, default_value_t = 8)]
        pow_k: u32,
        /// Hashes between checkpoints.
        #[arg(long, default_value_t = 4096)]
        pow_g: u32,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config } => {
            let config = match GatewayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let enforcer = Arc::new(Enforcer::passthrough());
            match gateway::server::run(&config, enforcer) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { listen, platform_listen, policy, pow_k, pow_g } => {
            let policy = policy.or_else(|| {
                let default = PathBuf::from("rules/default.toml");
                default.exists().then_some(default)
            });
            let options = DemoOptions { listen, platform_listen, policy, pow_k, pow_g };
            match gateway::demo::run(options, Arc::new(Enforcer::passthrough())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
