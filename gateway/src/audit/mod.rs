//! The audit log: one JSON line for every refusal, block and ledger charge, so an
//! operator can answer "who was refused, by what, and why" after the fact.
//!
//! Each line names the rule, the key it counted (kind and value: an address, a
//! prefix, a fingerprint, an account id or the keyed hash of an unknown token) and the
//! reason, with the time, route class and status. Never a token, a claim URL or
//! secret, an upload JWT or an Authorization header: the values logged are the ones
//! the limits count by, which are derived from those secrets by keyed hash or not at
//! all (the test `tests/e2e/tests/audit.rs` searches the log for every secret it saw).
//!
//! Lines go through a [`LineSink`]: queued without waiting on the request path and
//! written by a thread of their own. There is one audit log per process, installed at
//! start ([`install`]) and reached with [`log`], like the tracing subscriber: the
//! request stages, the tracker and the admin API all write to it without threading a
//! handle through every constructor. Before [`install`] (and in unit tests of other
//! modules) [`log`] is a log that writes nothing.

pub mod sink;
mod start;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use policy::ledger::{LedgerEntry, Reason};
use serde_json::{json, Value};

pub use sink::LineSink;
pub use start::{flush_all, start, AUDIT_FILE};

/// Longest key value or reason kept; longer ones are cut (a block reason is free text).
const MAX_FIELD: usize = 512;

/// One refusal, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub struct RefusalLine<'a> {
    /// The rule or check that refused (`create-per-ip`, `budget`, `quota:queues`, …).
    pub rule: &'a str,
    /// What the key counts by (`ip`, `ipv4/24`, `ipv6/48+http_fp`, `account`, …).
    pub key_kind: &'a str,
    /// The key's value for this request (an address, prefix, fingerprint, account id
    /// or `tok_` keyed hash).
    pub key_value: &'a str,
    /// Why, in one word (`rate_limited`, `budget`, `quota`, …).
    pub reason: &'a str,
    /// What the client was told.
    pub message: &'a str,
    /// The request's route class.
    pub route: Option<&'a str>,
    /// The status answered.
    pub status: u16,
    /// The client address the gateway derived.
    pub client: Option<std::net::IpAddr>,
}

/// The audit log of this process (see the module documentation).
pub struct AuditLog {
    sink: Option<LineSink>,
}

static INSTALLED: OnceLock<AuditLog> = OnceLock::new();
static OFF: AuditLog = AuditLog { sink: None };

/// Makes `log` the process's audit log; `false` if one was installed already.
pub fn install(log: AuditLog) -> bool {
    INSTALLED.set(log).is_ok()
}

/// The process's audit log (one that writes nothing before [`install`]).
pub fn log() -> &'static AuditLog {
    INSTALLED.get().unwrap_or(&OFF)
}

impl AuditLog {
    /// An audit log appending to `sink`.
    pub fn to_sink(sink: LineSink) -> Self {
        AuditLog { sink: Some(sink) }
    }

    /// An audit log that writes nothing (`[audit] enabled = false`).
    pub fn off() -> Self {
        AuditLog { sink: None }
    }

    /// Whether lines are written anywhere.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// The sink, for flushing at shutdown and for the dropped-line count.
    pub fn sink(&self) -> Option<&LineSink> {
        self.sink.as_ref()
    }

    /// Records a refusal the gateway answered.
    pub fn refusal(&self, r: &RefusalLine<'_>) {
        self.emit(|| {
            json!({
                "event": "refusal",
                "rule": cut(r.rule),
                "key_kind": cut(r.key_kind),
                "key_value": cut(r.key_value),
                "reason": r.reason,
                "message": cut(r.message),
                "route": r.route,
                "status": r.status,
                "client": r.client.map(|ip| ip.to_string()),
            })
        });
    }

    /// Records a ledger entry: an unclaimed account's cleanup charged to its creator,
    /// or a claim's credit. The key is the creator's address; `source_keys` lists
    /// every key charged.
    pub fn ledger(&self, entry: &LedgerEntry) {
        self.emit(|| {
            let (event, rule) = match entry.reason {
                Reason::ExpiredUnclaimed => ("charge", "ledger:expired_unclaimed"),
                Reason::Claimed => ("credit", "ledger:claimed"),
            };
            let keys: Vec<String> = entry.source_keys.iter().map(|k| k.to_string()).collect();
            let (key_kind, key_value) =
                keys.first().map_or(("global", String::new()), |k| split_key(k));
            json!({
                "event": event,
                "rule": rule,
                "key_kind": key_kind,
                "key_value": key_value,
                "reason": if event == "charge" { "expired_unclaimed" } else { "claimed" },
                "account": entry.account_id,
                "units": entry.units,
                "at": entry.at,
                "source_keys": keys,
            })
        });
    }

    /// Records an operator's block of a key (`kind` as the policy names keys: `ip`,
    /// `ipv4/24`, `ipv6/48`, `http_fp`, `tls_fp`, …; `value` the address, prefix or
    /// fingerprint) until `until` (unix seconds; `None`: until unblocked), with the
    /// operator's reason.
    pub fn block(&self, kind: &str, value: &str, until: Option<u64>, reason: &str) {
        self.emit(|| {
            json!({
                "event": "block",
                "rule": "admin-block",
                "key_kind": cut(kind),
                "key_value": cut(value),
                "until": until,
                "reason": cut(reason),
            })
        });
    }

    /// Records the end of a block: lifted by an operator (`reason` says why) or run
    /// out (`reason` = `"expired"`).
    pub fn unblock(&self, kind: &str, value: &str, reason: &str) {
        self.emit(|| {
            json!({
                "event": "unblock",
                "rule": "admin-block",
                "key_kind": cut(kind),
                "key_value": cut(value),
                "reason": cut(reason),
            })
        });
    }

    /// Builds the line only when it is written anywhere; adds the time.
    fn emit(&self, line: impl FnOnce() -> Value) {
        let Some(sink) = &self.sink else { return };
        let mut value = line();
        if let Value::Object(map) = &mut value {
            map.insert("time".into(), Value::String(now_rfc3339()));
        }
        sink.write(value.to_string());
    }
}

/// `kind:value` (a [`policy::accounts::SourceKey`] as displayed) into its two halves.
pub fn split_key(key: &str) -> (&str, String) {
    match key.split_once(':') {
        Some((kind, value)) => (kind, value.to_string()),
        None => (key, String::new()),
    }
}

/// `2026-12-02T00:00:00.123456Z`: microseconds, so lines of one second keep their order.
pub fn now_rfc3339() -> String {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    rfc3339_micros(micros as i128)
}

/// Formats unix microseconds as RFC 3339 UTC with six fractional digits.
pub fn rfc3339_micros(micros: i128) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.format(&format).unwrap_or_default()
}

fn cut(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
