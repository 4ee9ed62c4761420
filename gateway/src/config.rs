//! The gateway's own configuration file (`gateway run --config FILE`).
//!
//! Follows River's pattern: a raw, serde-shaped [`RawConfig`] read with
//! `deny_unknown_fields`, then compiled into [`GatewayConfig`], whose fields are
//! already checked (a resolvable upstream, non-empty listeners, sane timeouts) so the
//! rest of the gateway never validates again. Every error names the file, line and
//! column, because operators edit this file by hand.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    // Optional here so that a missing section gets its own message, not serde's.
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    upstream: Option<RawUpstream>,
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default)]
    admin: Option<RawAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Spanned<String>,
    #[serde(default)]
    events_secret: Option<Spanned<String>>,
    #[serde(default)]
    ledger_file: Option<String>,
    #[serde(default)]
    accounts_file: Option<String>,
    #[serde(default)]
    silent_expiry_grace_secs: Option<u64>,
    #[serde(default)]
    reconcile_url: Option<String>,
    #[serde(default)]
    reconcile_interval_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    threads: Option<Spanned<usize>>,
    #[serde(default)]
    grace_period_secs: Option<u64>,
    #[serde(default)]
    max_held_body_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    tls: Vec<RawTls>,
}

/// One `[[server.tls]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    listen: Spanned<String>,
    cert: Spanned<String>,
    key: Spanned<String>,
    #[serde(default)]
    h2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Spanned<String>,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    verify_cert: Option<bool>,
    #[serde(default)]
    host_header: Option<String>,
    #[serde(default)]
    connect_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    read_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    write_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pool_idle_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    file: String,
    #[serde(default)]
    watch: Option<bool>,
    #[serde(default)]
    trust_loopback: Option<bool>,
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
}

/// `[admin]`: the admin listener and the cleanup-cost ledger.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where the admin listener binds (keep it on loopback or a management network).
    pub listen: SocketAddr,
    /// Shared secret that signs platform events (HMAC-SHA256).
    pub events_secret: Option<String>,
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

    /// Compiles configuration text; `file` is only used in error messages.
    pub fn parse(file: &str, source: &str) -> Result<Self, ConfigError> {
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
            Some(a) => {
                let listen = a.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
                    err_at(
                        a.listen.span().start,
                        format!("admin.listen \"{}\" is not IP:PORT", a.listen.get_ref()),
                    )
                })?;
                if let Some(secret) = &a.events_secret {
                    if secret.get_ref().chars().count() < 16 {
                        return Err(err_at(
                            secret.span().start,
                            "admin.events_secret must be at least 16 characters".into(),
                        ));
                    }
                }
                let reconcile_interval = match &a.reconcile_interval_secs {
                    Some(v) if *v.get_ref() == 0 => {
                        return Err(err_at(
                            v.span().start,
                            "admin.reconcile_interval_secs must be above 0".into(),
                        ))
                    }
                    Some(v) => Duration::from_secs(*v.get_ref()),
                    None => Duration::from_secs(30),
                };
                Some(AdminSettings {
                    reconcile_url: a.reconcile_url,
                    reconcile_interval,
                    listen,
                    events_secret: a.events_secret.map(|s| s.into_inner()),
                    ledger_file: a.ledger_file.map(PathBuf::from),
                    accounts_file: a.accounts_file.map(PathBuf::from),
                    silent_expiry_grace: Duration::from_secs(
                        a.silent_expiry_grace_secs.unwrap_or(600),
                    ),
                })
            }
            None => None,
        };
        Ok(GatewayConfig {
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

/// Rewrites a TOML or serde message in the policy compiler's style: names in double
/// quotes, one line, and a suggestion for a misspelt key.
///
/// serde says ``unknown field `conect_timeout_ms`, expected one of `url`, … ``; this
/// says `unknown field "conect_timeout_ms", expected one of "url", …; did you mean
/// "connect_timeout_ms"?`.
fn rewrite_toml_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let got = &rest[..end];
            // Backtick-quoted names sit at the odd positions of the split.
            let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
            let best = expected
                .iter()
                .map(|c| (strsim::jaro_winkler(got, c), *c))
                .filter(|(score, _)| *score >= 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let list = expected.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            let hint = best.map(|(_, c)| format!("; did you mean \"{c}\"?")).unwrap_or_default();
            return if expected.is_empty() {
                format!("unknown field \"{got}\", there are no fields here")
            } else {
                format!("unknown field \"{got}\", expected one of {list}{hint}")
            };
        }
    }
    message
        .replace('`', "\"")
        .replace("expected usize", "expected a whole number")
        .replace("expected u64", "expected a whole number")
}

/// Checks `[[server.tls]]` tables: IP:PORT addresses, distinct from every other
/// listener, non-empty file names. The files themselves are read by `load`, which
/// knows the configuration's folder.
fn compile_tls(
    raw: &[RawTls],
    plain: &[SocketAddr],
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Vec<TlsListener>, ConfigError> {
    let mut out: Vec<TlsListener> = Vec::new();
    for t in raw {
        let at = t.listen.span().start;
        let listen = t.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            err_at(at, format!("server.tls listen address \"{}\" is not IP:PORT (for example \"0.0.0.0:8443\")", t.listen.get_ref()))
        })?;
        if plain.contains(&listen) || out.iter().any(|o| o.listen == listen) {
            return Err(err_at(at, format!("{listen} is already a listen address")));
        }
        for (field, value) in [("cert", &t.cert), ("key", &t.key)] {
            if value.get_ref().trim().is_empty() {
                return Err(err_at(
                    value.span().start,
                    format!("server.tls {field} must name a PEM file"),
                ));
            }
        }
        // `err_at` is the one place that maps offsets to line and column.
        let source_at = err_at(t.cert.span().start, String::new());
        out.push(TlsListener {
            listen,
            cert: PathBuf::from(t.cert.get_ref()),
            key: PathBuf::from(t.key.get_ref()),
            h2: t.h2.unwrap_or(false),
            cert_at: (source_at.line, source_at.column),
        });
    }
    Ok(out)
}

fn compile_upstream(
    raw: &RawUpstream,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<UpstreamConfig, ConfigError> {
    let url_text = raw.url.get_ref();
    let at = raw.url.span().start;
    let (tls, rest) = if let Some(rest) = url_text.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url_text.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(err_at(
            at,
            format!("upstream.url \"{url_text}\" must start with http:// or https://"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })
        .ok_or_else(|| err_at(at, format!("upstream.url \"{url_text}\" has a bad port")))?;
    if host.is_empty() {
        return Err(err_at(at, format!("upstream.url \"{url_text}\" has no host")));
    }
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| err_at(at, format!("upstream host \"{host}\" does not resolve")))?;
    let ms =
        |v: &Option<Spanned<u64>>, default: u64, name: &str| -> Result<Duration, ConfigError> {
            match v {
                Some(s) if *s.get_ref() == 0 => {
                    Err(err_at(s.span().start, format!("upstream.{name} must be above 0")))
                }
                Some(s) => Ok(Duration::from_millis(*s.get_ref())),
                None => Ok(Duration::from_millis(default)),
            }
        };
    Ok(UpstreamConfig {
        addr,
        tls,
        sni: raw.sni.clone().unwrap_or_else(|| host.clone()),
        verify_cert: raw.verify_cert.unwrap_or(true),
        host_header: raw.host_header.clone().unwrap_or_else(|| authority.to_string()),
        connect_timeout: ms(&raw.connect_timeout_ms, 2_000, "connect_timeout_ms")?,
        read_timeout: ms(&raw.read_timeout_ms, 60_000, "read_timeout_ms")?,
        write_timeout: ms(&raw.write_timeout_ms, 60_000, "write_timeout_ms")?,
        pool_idle_timeout: ms(&raw.pool_idle_timeout_ms, 15_000, "pool_idle_timeout_ms")?,
    })
}

/// Splits `host[:port]` (with `[v6]` brackets) into host and port.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "[server]\nlisten = [\"127.0.0.1:8787\"]\n[upstream]\nurl = \"http://127.0.0.1:9\"\n";

    #[test]
    fn good_config_compiles_with_defaults() {
        let c = GatewayConfig::parse("g.toml", GOOD).expect("valid");
        assert_eq!(c.listen, vec!["127.0.0.1:8787".parse().unwrap()]);
        assert_eq!(c.upstream.addr, "127.0.0.1:9".parse().unwrap());
        assert!(!c.upstream.tls);
        assert_eq!(c.upstream.host_header, "127.0.0.1:9");
        assert_eq!(c.grace_period, DEFAULT_GRACE);
    }

    #[test]
    fn unknown_key_is_located() {
        let src = GOOD.replace("[upstream]\n", "[upstream]\nconect_timeout_ms = 5\n");
        let e = GatewayConfig::parse("g.toml", &src).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(
            e.to_string().starts_with("g.toml:4:1: unknown field \"conect_timeout_ms\""),
            "{e}"
        );
    }

    #[test]
    fn bad_listen_and_scheme_are_located() {
        let e = GatewayConfig::parse("g.toml", &GOOD.replace("127.0.0.1:8787", "localhost"))
            .unwrap_err();
        assert_eq!((e.line, e.column), (2, 11), "{e}");
        let e = GatewayConfig::parse("g.toml", &GOOD.replace("http://127.0.0.1:9", "ftp://x"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "g.toml:4:7: upstream.url \"ftp://x\" must start with http:// or https://"
        );
    }

    #[test]
    fn columns_count_characters_and_offsets_inside_one_are_clamped() {
        let src = "a = \"bücher\"\nb = 1";
        assert_eq!(line_col(src, src.find('r').unwrap_or_default()), (1, 11));
        let inside_u = src.find('ü').unwrap_or_default() + 1;
        assert_eq!(line_col(src, inside_u), (1, 7));
        assert_eq!(line_col(src, src.len() + 10), (2, 6));
    }

    #[test]
    fn https_defaults_to_443_and_sni_host() {
        let src = GOOD.replace("http://127.0.0.1:9", "https://127.0.0.1");
        let c = GatewayConfig::parse("g.toml", &src).expect("valid");
        assert!(c.upstream.tls);
        assert_eq!(c.upstream.addr.port(), 443);
        assert_eq!(c.upstream.sni, "127.0.0.1");
    }
}
