//! Opens the operator logs named by the configuration and installs them.

use std::time::Duration;

use super::{install, AuditLog, LineSink};
use crate::config::LogSettings;

/// The audit log's file name when `[audit] file` is not given (beside the config).
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Opens and installs the audit log and the access log file of `logs`. An error names
/// the file that cannot be opened: a gateway asked to keep an audit log does not run
/// without one.
pub fn start(logs: &LogSettings) -> Result<(), String> {
    let open = |path: &std::path::Path, what: &str| {
        LineSink::open(path).map_err(|e| format!("cannot open the {what} {}: {e}", path.display()))
    };
    let audit = match &logs.audit_file {
        Some(path) => AuditLog::to_sink(open(path, "audit log").map_err(|e| {
            format!("{e} (set [audit] file to a writable path, or [audit] enabled = false)")
        })?),
        None => AuditLog::off(),
    };
    install(audit);
    if let Some(path) = &logs.access_log_file {
        crate::access_log::install_file(open(path, "access log")?);
    }
    Ok(())
}

/// Writes out what the audit and access logs still hold (at shutdown), waiting at
/// most `limit` for each.
pub fn flush_all(limit: Duration) {
    let sinks = [super::log().sink(), crate::access_log::file_sink()];
    for sink in sinks.into_iter().flatten() {
        if !sink.flush(limit) {
            tracing::warn!(file = %sink.path().display(), "log file not flushed before exit");
        }
        let dropped = sink.dropped();
        if dropped > 0 {
            tracing::warn!(file = %sink.path().display(), dropped, "lines dropped because the writer fell behind");
        }
    }
}
