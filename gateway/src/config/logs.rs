//! `[audit]` and `[access_log]`: the two JSON-lines files the gateway writes for its
//! operators.
//!
//! ```toml
//! [audit]
//! # enabled = true              # default: on
//! # file = "audit.jsonl"        # default: beside this file
//!
//! [access_log]
//! file = "access.jsonl"         # default: none (one line per request is a lot of disk)
//! ```
//!
//! The audit log is on unless turned off: it is small (refusals, blocks and ledger
//! entries only) and it is what is asked for after an incident, when it is too late
//! to turn it on. The access log (one line per request, what `gateway replay` reads)
//! is written only when a file is named.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// `[audit]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    file: Option<Spanned<String>>,
}

/// `[access_log]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessLog {
    file: Spanned<String>,
}

/// Where the operator logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The audit log (`None`: turned off). Relative paths are resolved against the
    /// config file's folder by [`super::GatewayConfig::load`].
    pub audit_file: Option<PathBuf>,
    /// The JSON-lines access log, when configured.
    pub access_log_file: Option<PathBuf>,
}

impl Default for LogSettings {
    /// The audit log on, beside the config file; no access log.
    fn default() -> Self {
        LogSettings {
            audit_file: Some(PathBuf::from(crate::audit::AUDIT_FILE)),
            access_log_file: None,
        }
    }
}

impl LogSettings {
    /// Resolves relative paths against `dir` (the config file's folder).
    pub(super) fn resolve(&mut self, dir: &Path) {
        for file in [self.audit_file.as_mut(), self.access_log_file.as_mut()].into_iter().flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
    }
}

/// Checks `[audit]` and `[access_log]`: file names must not be empty.
pub(super) fn compile_logs(
    audit: Option<RawAudit>,
    access: Option<RawAccessLog>,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<LogSettings, ConfigError> {
    let named = |f: &Spanned<String>, what: &str| {
        if f.get_ref().trim().is_empty() {
            Err(err_at(f.span().start, format!("{what} must name a file")))
        } else {
            Ok(PathBuf::from(f.get_ref()))
        }
    };
    let mut settings = LogSettings::default();
    if let Some(audit) = audit {
        if let Some(file) = &audit.file {
            settings.audit_file = Some(named(file, "audit.file")?);
        }
        if audit.enabled == Some(false) {
            settings.audit_file = None;
        }
    }
    if let Some(access) = access {
        settings.access_log_file = Some(named(&access.file, "access_log.file")?);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use crate::config::GatewayConfig;

    const BASE: &str =
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[upstream]\nurl = \"http://127.0.0.1:2\"\n";

    #[test]
    fn the_audit_log_is_on_by_default_and_the_access_log_off() {
        let c = GatewayConfig::parse("g.toml", BASE).expect("config");
        assert_eq!(c.logs.audit_file.as_deref(), Some(std::path::Path::new("audit.jsonl")));
        assert_eq!(c.logs.access_log_file, None);
        let off = format!("{BASE}[audit]\nenabled = false\n[access_log]\nfile = \"a.jsonl\"\n");
        let c = GatewayConfig::parse("g.toml", &off).expect("config");
        assert_eq!(c.logs.audit_file, None);
        assert_eq!(c.logs.access_log_file.as_deref(), Some(std::path::Path::new("a.jsonl")));
        let bad = format!("{BASE}[access_log]\nfile = \"\"\n");
        let e = GatewayConfig::parse("g.toml", &bad).expect_err("empty file");
        assert!(e.to_string().starts_with("g.toml:6:"), "{e}");
    }
}
