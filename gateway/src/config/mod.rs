//! The gateway's own configuration file (`gateway run --config FILE`).
//!
//! Follows River's pattern: a raw, serde-shaped [`RawConfig`] read with
//! `deny_unknown_fields`, then compiled into [`GatewayConfig`], whose fields are
//! already checked (a resolvable upstream, non-empty listeners, sane timeouts) so the
//! rest of the gateway never validates again. Every error names the file, line and
//! column, because operators edit this file by hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod compile;
mod logs;
mod raw;
mod store;
mod telemetry;
#[cfg(test)]
mod tests;

pub use admin::ADMIN_TOKEN_ENV;
use compile::{compile_tls, compile_upstream, rewrite_toml_message};
use logs::compile_logs;
pub use logs::LogSettings;
use raw::*;
use store::compile_store;
pub use store::{RedisTarget, StoreSettings, DEFAULT_SNAPSHOT_SECS};
use telemetry::compile_telemetry;
pub use telemetry::TelemetrySettings;

/// A configuration error, displayed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: String,
    /// 1-based line (0 when the error is about the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Converts a byte offset in `source` into a 1-based (line, column), the column counted
/// in characters as an editor shows it. Offsets past the end or inside a UTF-8
/// sequence are clamped, so no offset can make this panic.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Where and how the gateway forwards.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Resolved address of the deploy API.
    pub addr: SocketAddr,
    /// Whether to speak TLS to the upstream.
    pub tls: bool,
    /// SNI (and certificate name) for TLS; the URL's host unless overridden.
    pub sni: String,
    /// Verify the upstream certificate (default true).
    pub verify_cert: bool,
    /// Host header sent upstream (the URL's authority unless overridden), like
    /// nginx's default `proxy_set_header Host $proxy_host`.
    pub host_header: String,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Time to wait for each read from the upstream.
    pub read_timeout: Duration,
    /// Time to wait for each write to the upstream.
    pub write_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub pool_idle_timeout: Duration,
}

/// The smallest `server.max_held_body_bytes`: below it even small manifests and
/// account-creation bodies could not be held.
pub const MIN_HELD_BODY_BYTES: u64 = 64 * 1024;

/// The compiled gateway configuration: valid by construction.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Plain-HTTP listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// How long SIGTERM/SIGINT waits for in-flight requests.
    pub grace_period: Duration,
    /// Request-body bytes all requests together may hold in memory
    /// ([`crate::held`]); past it a request that needs its body held gets 503.
    pub max_held_body_bytes: u64,
    /// The deploy API.
    pub upstream: UpstreamConfig,
    /// Policy file, if any (absolute or relative to the config file).
    pub policy_file: Option<PathBuf>,
    /// Reload the policy when the file changes (SIGHUP always reloads).
    pub watch_policy: bool,
    /// `[policy] trust_loopback`: believe forwarding headers from loopback peers too,
    /// for clients simulated on one machine (see `policy::Policy::trust_loopback`).
    pub trust_loopback: bool,
    /// TLS listeners (`[[server.tls]]`), each computing a JA4 per connection.
    pub tls: Vec<TlsListener>,
    /// The admin listener (platform events, metrics, ledger), if configured.
    pub admin: Option<AdminSettings>,
    /// `[store]`: the embedded database and/or the fleet's Redis.
    pub store: StoreSettings,
    /// `[telemetry]`: OpenTelemetry export, off when absent.
    pub telemetry: Option<TelemetrySettings>,
    /// `[audit]` and `[access_log]`: the operator logs.
    pub logs: LogSettings,
}

/// `[admin]`: the admin listener and the cleanup-cost ledger.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where the admin listener binds (keep it on loopback or a management network).
    pub listen: SocketAddr,
    /// Shared secret that signs platform events (HMAC-SHA256).
    pub events_secret: Option<String>,
    /// Bearer token of every operator call (`token`, or `GATEWAY_ADMIN_TOKEN`, which
    /// wins when set); `None` refuses every operator call.
    pub token: Option<String>,
    /// Bearer token of the platform's account-status API (reconciliation), apart
    /// from `events_secret`.
    pub status_token: Option<String>,
    /// Append-only ledger file (JSON lines), loaded at start.
    pub ledger_file: Option<PathBuf>,
    /// Account journal (who created which account), replayed at start.
    pub accounts_file: Option<PathBuf>,
    /// How long after expiry, with no event, an account is charged anyway.
    pub silent_expiry_grace: Duration,
    /// The platform's account-status API asked about accounts with no event.
    pub reconcile_url: Option<String>,
    /// How often reconciliation runs.
    pub reconcile_interval: Duration,
}

/// `[[server.tls]]`: a listener that terminates TLS and fingerprints clients (JA4).
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Where it binds.
    pub listen: SocketAddr,
    /// PEM certificate chain (relative paths are resolved against the config file).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Offer HTTP/2 by ALPN (default false: HTTP/1.1 only, like Pingora's default).
    pub h2: bool,
    /// Line and column of `cert`, so errors found when the files are read are located.
    pub cert_at: (usize, usize),
}

/// Default grace period: long enough for a deploy upload to finish, short enough that
/// an operator's Ctrl-C feels immediate (Pingora's own default is minutes).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

impl GatewayConfig {
    /// Reads and compiles a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        let source = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            // The prefix before the first bad byte is valid UTF-8 by definition.
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let (line, column) = line_col(valid, valid.len());
            let byte = e.as_bytes().get(valid.len()).copied().unwrap_or_default();
            ConfigError {
                file: name.clone(),
                line,
                column,
                message: format!("not UTF-8 text (byte 0x{byte:02X})"),
            }
        })?;
        let mut config = Self::parse(&name, &source)?;
        if let (Some(file), Some(dir)) = (config.store.path.as_mut(), path.parent()) {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        config.logs.resolve(path.parent().unwrap_or(Path::new("")));
        if let Some(admin) = config.admin.as_mut() {
            for file in
                [admin.ledger_file.as_mut(), admin.accounts_file.as_mut()].into_iter().flatten()
            {
                if file.is_relative() {
                    if let Some(dir) = path.parent() {
                        *file = dir.join(&*file);
                    }
                }
            }
        }
        for tls in &mut config.tls {
            let dir = path.parent().unwrap_or(Path::new(""));
            tls.cert = dir.join(&tls.cert);
            tls.key = dir.join(&tls.key);
            crate::certs::check_cert_and_key(&tls.cert, &tls.key).map_err(|message| {
                ConfigError {
                    file: name.clone(),
                    line: tls.cert_at.0,
                    column: tls.cert_at.1,
                    message,
                }
            })?;
        }
        if let Some(policy) = config.policy_file.as_mut() {
            if policy.is_relative() {
                if let Some(dir) = path.parent() {
                    *policy = dir.join(&*policy);
                }
            }
        }
        Ok(config)
    }

    /// Compiles configuration text; `file` is only used in error messages. The admin
    /// token may come from the environment ([`ADMIN_TOKEN_ENV`]).
    pub fn parse(file: &str, source: &str) -> Result<Self, ConfigError> {
        let env_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Self::parse_with_env(file, source, env_token)
    }

    /// [`GatewayConfig::parse`] with the environment's admin token given.
    pub fn parse_with_env(
        file: &str,
        source: &str,
        env_token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let err_at = |offset: usize, message: String| {
            let (line, column) = line_col(source, offset);
            ConfigError { file: file.to_string(), line, column, message }
        };
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            err_at(offset, rewrite_toml_message(e.message()))
        })?;
        let Some(server) = raw.server else {
            return Err(err_at(0, "missing section [server] (the listen addresses)".into()));
        };
        let Some(upstream) = raw.upstream else {
            return Err(err_at(0, "missing section [upstream] (the deploy API's url)".into()));
        };

        let mut listen = Vec::new();
        for addr in server.listen.get_ref() {
            let parsed = addr.get_ref().parse::<SocketAddr>().map_err(|_| {
                err_at(
                    addr.span().start,
                    format!(
                        "listen address \"{}\" is not IP:PORT (for example \"127.0.0.1:8787\")",
                        addr.get_ref()
                    ),
                )
            })?;
            if listen.contains(&parsed) {
                return Err(err_at(
                    addr.span().start,
                    format!("{parsed} is already a listen address"),
                ));
            }
            listen.push(parsed);
        }
        let tls = compile_tls(&server.tls, &listen, &err_at)?;
        if listen.is_empty() && tls.is_empty() {
            return Err(err_at(
                server.listen.span().start,
                "server.listen needs at least one address".into(),
            ));
        }
        let threads = match &server.threads {
            Some(t) if *t.get_ref() == 0 => {
                return Err(err_at(t.span().start, "server.threads must be at least 1".into()))
            }
            Some(t) => *t.get_ref(),
            None => 1,
        };
        let max_held_body_bytes = match &server.max_held_body_bytes {
            Some(v) if *v.get_ref() < MIN_HELD_BODY_BYTES => {
                return Err(err_at(
                    v.span().start,
                    format!(
                        "server.max_held_body_bytes must be at least {MIN_HELD_BODY_BYTES} (64 KiB)"
                    ),
                ))
            }
            Some(v) => *v.get_ref(),
            None => crate::held::DEFAULT_MAX_HELD_BODY_BYTES,
        };

        let upstream = compile_upstream(&upstream, &err_at)?;
        let (policy_file, watch_policy, trust_loopback) = match raw.policy {
            Some(p) => (
                Some(PathBuf::from(p.file)),
                p.watch.unwrap_or(true),
                p.trust_loopback.unwrap_or(false),
            ),
            None => (None, false, false),
        };
        let admin = match raw.admin {
            Some(a) if policy_file.is_none() => {
                return Err(err_at(
                    a.listen.span().start,
                    "[admin] needs a [policy]: the ledger and quotas come from it".into(),
                ))
            }
            Some(a) => Some(admin::compile_admin(a, env_token, &err_at)?),
            None => None,
        };
        let store = compile_store(raw.store, &err_at)?;
        let telemetry = compile_telemetry(raw.telemetry, &err_at)?;
        let logs = compile_logs(raw.audit, raw.access_log, &err_at)?;
        Ok(GatewayConfig {
            telemetry,
            store,
            logs,
            admin,
            listen,
            threads,
            grace_period: server.grace_period_secs.map_or(DEFAULT_GRACE, Duration::from_secs),
            max_held_body_bytes,
            upstream,
            policy_file,
            watch_policy,
            trust_loopback,
            tls,
        })
    }
}
