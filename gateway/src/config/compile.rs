//! Checks of single values of `gateway.toml`: the upstream URL, TLS listeners, and
//! serde's messages worded as the policy compiler words them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use toml::Spanned;

use super::*;

/// Rewrites a TOML or serde message in the policy compiler's style: names in double
/// quotes, one line, and a suggestion for a misspelt key.
///
/// serde says ``unknown field `conect_timeout_ms`, expected one of `url`, … ``; this
/// says `unknown field "conect_timeout_ms", expected one of "url", …; did you mean
/// "connect_timeout_ms"?`.
pub(super) fn rewrite_toml_message(message: &str) -> String {
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
pub(super) fn compile_tls(
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

pub(super) fn compile_upstream(
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
