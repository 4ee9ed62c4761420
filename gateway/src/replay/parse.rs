//! Reading an access log file (`[access_log] file`) back: one [`Recorded`] request per
//! line, or a located [`LineError`] for a line that cannot be replayed. A bad line is
//! skipped and counted, never fatal: a log cut short by a crash, or one line from a
//! different version, must not hide the rest.

use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;

/// One request as the access log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// 1-based line number in the log.
    pub line: usize,
    /// When it was judged, unix microseconds.
    pub at_us: i128,
    /// The order the gateway judged it in (ties of `at_us`).
    pub seq: u64,
    /// The client address as the gateway derived it.
    pub client: IpAddr,
    /// HTTP method.
    pub method: String,
    /// Normalised path (claim secrets redacted).
    pub path: String,
    /// The path's spelling was refused as non-canonical.
    pub noncanonical: bool,
    /// Header names, in order.
    pub headers: Vec<String>,
    /// The HTTP fingerprint the gateway computed.
    pub http_fp: Option<String>,
    /// The TLS fingerprint.
    pub tls_fp: Option<String>,
    /// The known temporary account, if any.
    pub account: Option<String>,
    /// The policy rule that decided, if any.
    pub rule: Option<String>,
    /// The check that refused, when one did.
    pub refused_by: Option<String>,
    /// When the fair-share check ran: whether the source counted as a claimer.
    pub claimer: Option<bool>,
}

/// A line that cannot be replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// What a log holds.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Lines read (blank ones included).
    pub lines: usize,
    /// The requests, in file order.
    pub records: Vec<Recorded>,
    /// The lines skipped.
    pub errors: Vec<LineError>,
}

/// A line as written by `access_log::file`; unknown fields are ignored, so a newer
/// gateway's extra fields do not stop an older replay.
#[derive(Deserialize)]
struct RawLine {
    ts: String,
    #[serde(default)]
    seq: u64,
    client: String,
    method: String,
    path: String,
    #[serde(default)]
    noncanonical: bool,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    http_fp: Option<String>,
    #[serde(default)]
    tls_fp: Option<String>,
    #[serde(default)]
    account: Option<String>,
    decision: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    refused_by: Option<String>,
    #[serde(default)]
    claimer: Option<bool>,
}

/// Reads every line of `input`.
pub fn parse(input: impl BufRead) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        parsed.lines = n;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                parsed.errors.push(LineError { line: n, message: format!("unreadable: {e}") });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(n, &line) {
            Ok(r) => parsed.records.push(r),
            Err(message) => parsed.errors.push(LineError { line: n, message }),
        }
    }
    parsed
}

fn parse_line(n: usize, line: &str) -> Result<Recorded, String> {
    let raw: RawLine = serde_json::from_str(line).map_err(|e| {
        format!("not an access-log line: {e}").replace(" at line 1 column", " at column")
    })?;
    let at = time::OffsetDateTime::parse(&raw.ts, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("ts \"{}\" is not an RFC 3339 time: {e}", raw.ts))?;
    let client: IpAddr = raw
        .client
        .parse()
        .map_err(|_| format!("client \"{}\" is not an IP address", raw.client))?;
    match (raw.decision.as_str(), raw.refused_by.is_some()) {
        ("allow", false) | ("refuse", true) => {}
        ("allow" | "refuse", _) => {
            return Err(format!(
                "decision \"{}\" contradicts refused_by {:?}",
                raw.decision, raw.refused_by
            ))
        }
        (other, _) => return Err(format!("decision \"{other}\" is neither allow nor refuse")),
    }
    if !raw.path.starts_with('/') {
        return Err(format!("path \"{}\" does not start with /", raw.path));
    }
    Ok(Recorded {
        line: n,
        at_us: at.unix_timestamp_nanos() / 1000,
        seq: raw.seq,
        client,
        method: raw.method,
        path: raw.path,
        noncanonical: raw.noncanonical,
        headers: raw.headers,
        http_fp: raw.http_fp,
        tls_fp: raw.tls_fp,
        account: raw.account,
        rule: raw.rule,
        refused_by: raw.refused_by,
        claimer: raw.claimer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines_are_read_and_bad_ones_located_and_skipped() {
        let log = concat!(
            r#"{"ts":"2026-12-02T00:00:01.250000Z","seq":3,"client":"198.51.100.7","method":"POST","path":"/client/v4/provisioning/previews","headers":["user-agent"],"http_fp":"hf1_x","decision":"refuse","rule":"create-per-ip","refused_by":"limits"}"#,
            "\n\n",
            "{\"ts\":\"yesterday\",\"client\":\"198.51.100.7\",\"method\":\"GET\",\"path\":\"/\",\"decision\":\"allow\"}\n",
            "not json\n",
            r#"{"ts":"2026-12-02T00:00:02Z","client":"300.1.1.1","method":"GET","path":"/","decision":"allow"}"#,
            "\n",
            r#"{"ts":"2026-12-02T00:00:02Z","client":"192.0.2.1","method":"GET","path":"/","decision":"refuse"}"#,
            "\n",
        );
        let parsed = parse(log.as_bytes());
        assert_eq!(parsed.lines, 6);
        assert_eq!(parsed.records.len(), 1);
        let r = &parsed.records[0];
        assert_eq!((r.line, r.seq, r.at_us), (1, 3, 1_796_169_601_250_000));
        assert_eq!(r.refused_by.as_deref(), Some("limits"));
        let where_what: Vec<(usize, &str)> =
            parsed.errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(where_what.len(), 4, "{where_what:?}");
        assert_eq!(where_what[0].0, 3);
        assert!(where_what[0].1.starts_with("ts \"yesterday\""), "{where_what:?}");
        assert!(where_what[1].1.starts_with("not an access-log line"), "{where_what:?}");
        assert!(where_what[2].1.contains("300.1.1.1"), "{where_what:?}");
        assert!(where_what[3].1.contains("contradicts"), "{where_what:?}");
    }
}
