//! `gateway replay`: recorded traffic through a candidate policy.
//!
//! Reads an access log file ([`crate::access_log`], `[access_log] file`), judges every
//! request again under the candidate policy on the log's own clock ([`run`]), and
//! reports how the decisions differ from the recorded ones, per rule and per source
//! ([`report`]). Replaying a log through the policy that recorded it reports no
//! difference: that is what makes a difference under another policy mean something.

pub mod parse;
pub mod report;
pub mod run;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

/// `gateway replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The candidate policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The access log file to replay (`[access_log] file` of gateway.toml).
    #[arg(long)]
    pub log: PathBuf,
    /// Print the report as JSON (a stable shape, `version` 1).
    #[arg(long)]
    pub json: bool,
    /// Sources listed in the report.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// Replays `log` through the policy at `policy`. Skipped lines are located in the
/// report's `errors`; only an unreadable file or an invalid policy is an error.
pub fn replay_files(policy: &Path, log: &Path, top: usize) -> Result<report::Report, String> {
    let candidate = policy::compile_file(policy).map_err(|e| format!("invalid policy:\n{e}"))?;
    let file = std::fs::File::open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let parsed = parse::parse(std::io::BufReader::new(file));
    let judged = run::run(candidate, parsed.records);
    Ok(report::summarize(&judged, parsed.lines, &parsed.errors, top))
}

/// Runs `gateway replay`: the report on stdout (text or JSON), one located line per
/// skipped log line on stderr (`FILE:LINE: what is wrong`).
pub fn run_cli(args: &ReplayArgs) -> Result<String, String> {
    let report = replay_files(&args.policy, &args.log, args.top)?;
    for e in &report.errors {
        eprintln!("{}:{}: {} (line skipped)", args.log.display(), e.line, e.message);
    }
    Ok(if args.json { report.to_json() + "\n" } else { report.to_text() })
}
