//! `loadtest`: run a swarm scenario against a gateway on loopback.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use loadtest::pow::Encoding;
use loadtest::{chart, RunOptions, Scenario};

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Swarm load tester for the temporary-deploy gateway (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum PowEncoding {
    /// One base64 string of all digests (what wrangler 4.164 sends).
    Concatenated,
    /// A list of base64 digests.
    List,
}

// Parsed once per process: the size of the `run` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print a summary table.
    Run {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Write the full report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write an SVG chart here.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Multiply every group's agent count by this (0 < F <= 100).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Send to this loopback URL instead of the scenario's target.
        #[arg(long)]
        target_url: Option<String>,
        /// The gateway's admin listener (with --target-url or a url target),
        /// to read its cleanup-cost ledger at the end.
        #[arg(long)]
        admin_url: Option<String>,
        /// The policy file that gateway enforces, for its budgets.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Exit with status 1 when an acceptance line fails.
        #[arg(long)]
        check: bool,
        /// Keep a spawned gateway's log here.
        #[arg(long)]
        gateway_log: Option<PathBuf>,
        /// Have a spawned gateway write its access log here (for `gateway replay`).
        #[arg(long)]
        access_log: Option<PathBuf>,
        /// Gateway binary for `spawn` targets (default: next to loadtest).
        #[arg(long)]
        gateway_bin: Option<PathBuf>,
        /// Cap the run at this many seconds.
        #[arg(long)]
        max_duration: Option<f64>,
        /// Hide live progress even on a terminal.
        #[arg(long)]
        quiet: bool,
        /// Wire form of proof-of-work checkpoints.
        #[arg(long, value_enum, default_value = "concatenated")]
        pow_encoding: PowEncoding,
    },
    /// Parse and check a scenario without running it.
    Check {
        /// Scenario file (TOML).
        scenario: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { scenario } => match Scenario::load(&scenario) {
            Ok(s) => {
                println!(
                    "{}: ok ({} groups, {} agents, up to {} s)",
                    scenario.display(),
                    s.agents.len(),
                    s.total_agents(),
                    s.duration_secs
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            scenario,
            json,
            chart: chart_path,
            scale,
            target_url,
            admin_url,
            policy,
            check,
            gateway_log,
            access_log,
            gateway_bin,
            max_duration,
            quiet,
            pow_encoding,
        } => {
            let parsed = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = RunOptions {
                scale,
                target_url,
                gateway_bin,
                max_duration_secs: max_duration,
                scenario_file: Some(scenario),
                progress: !quiet,
                pow_encoding: match pow_encoding {
                    PowEncoding::Concatenated => Encoding::Concatenated,
                    PowEncoding::List => Encoding::List,
                },
                admin_url,
                policy,
                gateway_log,
                access_log,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // On Ctrl-C the run future is dropped, which kills a spawned
            // gateway (kill_on_drop) instead of leaving it orphaned.
            let outcome = runtime.block_on(async {
                tokio::select! {
                    r = loadtest::run(parsed, &opts) => Some(r),
                    _ = tokio::signal::ctrl_c() => None,
                }
            });
            let report = match outcome {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
                None => {
                    eprintln!("interrupted");
                    return ExitCode::from(130);
                }
            };
            print!("{}", report.table());
            let mut ok = true;
            if let Some(p) = json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => {
                        if let Err(e) = std::fs::write(&p, text + "\n") {
                            eprintln!("error: cannot write {}: {e}", p.display());
                            ok = false;
                        }
                    }
                    Err(e) => {
                        eprintln!("error: cannot serialise the report: {e}");
                        ok = false;
                    }
                }
            }
            if let Some(p) = chart_path {
                if let Err(e) = chart::write_svg(&report, &p) {
                    eprintln!("error: {e}");
                    ok = false;
                }
            }
            if !ok {
                ExitCode::FAILURE
            } else if check && !report.accepted() {
                eprintln!("acceptance failed (--check)");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
