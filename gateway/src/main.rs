//! The `gateway` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gateway::clock::{Clock, SystemClock};
use gateway::config::GatewayConfig;
#[cfg(feature = "demo")]
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
    #[cfg(feature = "demo")]
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
        /// Forward everything: run without a policy.
        #[arg(long, conflicts_with = "policy")]
        no_policy: bool,
        /// Proof-of-work checkpoints the platform asks for.
        #[arg(long, default_value_t = 8)]
        pow_k: u32,
        /// Hashes between checkpoints.
        #[arg(long, default_value_t = 4096)]
        pow_g: u32,
        /// Where the admin listener (platform events, metrics, ledger) listens.
        #[arg(long, default_value = "127.0.0.1:8789")]
        admin_listen: std::net::SocketAddr,
    },
    /// Compile policy files; print every located error; exit 1 if any is invalid.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show how a policy treats a described request: route class, derived keys,
    /// matching rules and the decision.
    Explain(gateway::explain::ExplainArgs),
    /// Replay an access log through a candidate policy on the log's own clock and show
    /// how its decisions differ from the recorded ones, per rule and per source.
    Replay(gateway::replay::ReplayArgs),
    /// Query a cleanup-cost ledger file: who left the most cleanup, and what the
    /// gateway does about them now.
    Ledger {
        /// Ledger file (JSON lines, `[admin] ledger_file`).
        #[arg(long, required_unless_present = "store")]
        file: Option<PathBuf>,
        /// The embedded store (`[store] path`) instead of a ledger file; read-only,
        /// so it can be read while the gateway runs.
        #[arg(long, conflicts_with = "file")]
        store: Option<PathBuf>,
        /// Policy whose budgets say what is done about each source (default: budgets
        /// of an empty policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Look back this many seconds.
        #[arg(long, default_value_t = 3600)]
        since_secs: u64,
        /// Rows in the top table.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print totals per hour instead of the top sources.
        #[arg(long)]
        hourly: bool,
        /// Print the entries of one source key instead (`ip:192.0.2.1`,
        /// `ipv6/48:2001:db8::/48`, `http_fp:hf1_…`).
        #[arg(long, conflicts_with = "hourly")]
        source: Option<String>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// The enforcer, and the reloader of its policy file when there is one.
type Enforcement = (Arc<Enforcer>, Option<Arc<gateway::reload::Reloader>>);

/// Builds the enforcer for a policy file and starts its reloader.
fn enforcer_for(
    policy: Option<PathBuf>,
    trust_loopback: bool,
    watch: bool,
    ledger_file: Option<PathBuf>,
    journal_file: Option<PathBuf>,
    redis: Option<Arc<gateway::fleet::conn::Redis>>,
    store: Option<Arc<gateway::store::Embedded>>,
) -> Result<Enforcement, String> {
    let Some(path) = policy else {
        return Ok((Arc::new(Enforcer::passthrough().with_redis(redis)), None));
    };
    let source = gateway::reload::PolicySource { path, trust_loopback };
    let clock = SystemClock::shared();
    let enforcer = match store {
        Some(store) => Enforcer::from_source_with_store(&source, store, clock)?,
        None => Enforcer::from_source(&source, ledger_file, journal_file, clock)?,
    }
    .with_redis(redis);
    gateway::fleet::join::join(&enforcer)?;
    let mut handle = None;
    if let Some(engine) = enforcer.engine() {
        let reloader = gateway::reload::Reloader::for_source(
            engine.clone(),
            enforcer.tracker().cloned(),
            source,
        );
        reloader.start(watch).map_err(|e| format!("cannot start the policy reloader: {e}"))?;
        handle = Some(reloader);
    }
    Ok((Arc::new(enforcer), handle))
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config } => {
            let config = match GatewayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e, 2),
            };
            if let Err(e) = gateway::audit::start(&config.logs) {
                return fail(e, 2);
            }
            let ledger_file = config.admin.as_ref().and_then(|a| a.ledger_file.clone());
            let journal_file = config.admin.as_ref().and_then(|a| a.accounts_file.clone());
            let redis = match config.store.redis.as_ref().map(gateway::fleet::conn::Redis::connect)
            {
                Some(Ok(r)) => {
                    gateway::metrics::register_store_health(r.health().clone());
                    Some(Arc::new(r))
                }
                Some(Err(e)) => return fail(e, 2),
                None => None,
            };
            let store = match gateway::store::snapshots::open_configured(&config) {
                Ok(s) => s,
                Err(e) => return fail(e, 2),
            };
            let (enforcer, reloader) = match enforcer_for(
                config.policy_file.clone(),
                config.trust_loopback,
                config.watch_policy,
                ledger_file,
                journal_file,
                redis,
                store.clone(),
            ) {
                Ok(e) => e,
                Err(e) => return fail(e, 2),
            };
            let snapshots = match start_snapshots(&config, store, &enforcer) {
                Ok(s) => s,
                Err(e) => return fail(e, 2),
            };
            if let Some(admin) = &config.admin {
                let (Some(engine), Some(tracker)) = (enforcer.engine(), enforcer.tracker()) else {
                    return fail("[admin] needs a [policy]: the ledger and quotas come from it", 2);
                };
                let settings = gateway::admin::AdminConfig {
                    listen: admin.listen,
                    events_secret: admin.events_secret.clone(),
                    token: admin.token.clone(),
                    status_token: admin.status_token.clone(),
                    reloader,
                    silent_expiry_grace: admin.silent_expiry_grace,
                    reconcile_url: admin.reconcile_url.clone(),
                    reconcile_interval: admin.reconcile_interval,
                };
                if let Err(e) = gateway::admin::start(
                    settings,
                    engine.clone(),
                    tracker.clone(),
                    enforcer.clock().clone(),
                    enforcer.fleet_limits().cloned(),
                ) {
                    return fail(
                        format!("cannot start the admin listener on {}: {e}", admin.listen),
                        1,
                    );
                }
            }
            if let Some(telemetry) = &config.telemetry {
                if let Err(e) = gateway::telemetry::start(telemetry, &enforcer) {
                    return fail(e, 1);
                }
            }
            let ran = gateway::server::run(&config, enforcer);
            gateway::telemetry::shutdown();
            // Drained: the last word on the rate-limit state.
            if let (Ok(()), Some(Err(e))) = (&ran, snapshots.map(|s| s.take())) {
                return fail(format!("cannot snapshot the rate-limit state: {e}"), 1);
            }
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e, 1),
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            platform_listen,
            policy,
            no_policy,
            pow_k,
            pow_g,
            admin_listen,
        } => {
            let policy = if no_policy {
                None
            } else {
                policy.or_else(|| {
                    let default = PathBuf::from("rules/default.toml");
                    default.exists().then_some(default)
                })
            };
            // Loopback is trusted as a proxy, as in `demo::demo_config`.
            let (enforcer, reloader) =
                match enforcer_for(policy.clone(), true, true, None, None, None, None) {
                    Ok(e) => e,
                    Err(e) => return fail(e, 2),
                };
            let options =
                DemoOptions { listen, platform_listen, policy, pow_k, pow_g, admin_listen };
            match gateway::demo::run(options, enforcer, reloader) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e, 1),
            }
        }
        Command::Check { files } => {
            let mut bad = 0;
            for file in &files {
                match policy::compile_file(file) {
                    Ok(p) => println!("{}: ok ({} rules)", file.display(), p.rule_names().len()),
                    Err(errors) => {
                        bad += 1;
                        eprintln!("{errors}");
                    }
                }
            }
            if bad > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Ledger { file, store, policy, since_secs, top, hourly, source } => {
            match ledger_report(
                match (&store, &file) {
                    (Some(store), _) => LedgerSource::Store(store),
                    (None, Some(file)) => LedgerSource::File(file),
                    (None, None) => return fail("give --file or --store", 2),
                },
                policy.as_deref(),
                since_secs,
                top,
                hourly,
                source.as_deref(),
            ) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 2),
            }
        }
        Command::Replay(args) => match gateway::replay::run_cli(&args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 2),
        },
        Command::Explain(args) => match gateway::explain::run(&args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 2),
        },
    }
}

/// Restores the rate-limit state from the store and starts its periodic snapshots.
fn start_snapshots(
    config: &GatewayConfig,
    store: Option<Arc<gateway::store::Embedded>>,
    enforcer: &Enforcer,
) -> Result<Option<Arc<gateway::store::snapshots::Snapshots>>, String> {
    let (Some(store), Some(engine), Some(tracker)) = (store, enforcer.engine(), enforcer.tracker())
    else {
        return Ok(None);
    };
    let snapshots = gateway::store::snapshots::Snapshots::new(
        store,
        engine.clone(),
        tracker.clone(),
        enforcer.clock().clone(),
    );
    snapshots.restore().map_err(|e| format!("cannot restore the rate-limit state: {e}"))?;
    let secs = config.store.snapshot_secs.unwrap_or(gateway::config::DEFAULT_SNAPSHOT_SECS);
    snapshots
        .start(std::time::Duration::from_secs(secs))
        .map_err(|e| format!("cannot start the snapshot thread: {e}"))?;
    Ok(Some(snapshots))
}

/// Where `gateway ledger` reads from.
enum LedgerSource<'a> {
    File(&'a std::path::Path),
    Store(&'a std::path::Path),
}

fn ledger_report(
    from: LedgerSource<'_>,
    policy: Option<&std::path::Path>,
    since_secs: u64,
    top: usize,
    hourly: bool,
    source: Option<&str>,
) -> Result<String, String> {
    let ledger = match from {
        LedgerSource::File(file) => {
            let reader =
                std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
            policy::ledger::Ledger::read_json_lines(std::io::BufReader::new(reader))
                .map_err(|e| format!("{}: {e:?}", file.display()))?
        }
        LedgerSource::Store(path) => gateway::store::ledger::read_ledger_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?,
    };
    let compiled = match policy {
        Some(p) => policy::compile_file(p).map_err(|e| format!("invalid policy:\n{e}"))?,
        None => policy::compile_str("(defaults)", "version = 1\n").map_err(|e| e.to_string())?,
    };
    let now = SystemClock.now();
    let since = now.saturating_sub(since_secs);
    if let Some(key) = source {
        let key: policy::accounts::SourceKey =
            key.parse().map_err(|_| format!("\"{key}\" is not a source key (ip:192.0.2.1, ipv4/24:192.0.2.0/24, ipv6/48:2001:db8::/48, http_fp:…)"))?;
        let (debt, action) = gateway::report::action_for(&ledger, compiled.budgets(), &key, now);
        let mut out = format!("{key}: debt now {debt}, action now {action}\n");
        for e in ledger.by_source(&key).iter().filter(|e| e.at >= since) {
            out.push_str(&format!("{}\n", e.to_json_line()));
        }
        return Ok(out);
    }
    Ok(if hourly {
        gateway::report::format_hourly(&gateway::report::hourly(&ledger, since, now + 1))
    } else {
        gateway::report::format_top(&gateway::report::top_sources(
            &ledger,
            compiled.budgets(),
            top,
            since,
            now,
        ))
    })
}
