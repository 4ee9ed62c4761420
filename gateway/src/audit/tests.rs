use std::time::Duration;

use policy::accounts::SourceKeys;
use policy::ledger::{Ledger, LedgerEntry};
use serde_json::Value;

use super::*;

fn lines(log: &AuditLog, path: &std::path::Path) -> Vec<Value> {
    assert!(log.sink().expect("sink").flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(path).expect("audit file");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn blocks_and_unblocks_are_one_line_each_with_kind_value_until_and_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::to_sink(LineSink::open(&path).expect("open"));
    log.block("ipv4/24", "198.51.100.0/24", Some(1_900_000_000), "credential stuffing");
    log.block("http_fp", "hf1_11_wnn_undici_47c2bbddfa85", None, "scraper");
    log.unblock("ipv4/24", "198.51.100.0/24", "expired");
    let got = lines(&log, &path);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["event"], "block");
    assert_eq!(got[0]["rule"], "admin-block");
    assert_eq!(got[0]["key_kind"], "ipv4/24");
    assert_eq!(got[0]["key_value"], "198.51.100.0/24");
    assert_eq!(got[0]["until"], 1_900_000_000u64);
    assert_eq!(got[0]["reason"], "credential stuffing");
    assert!(got[1]["until"].is_null(), "no TTL: until unblocked");
    assert_eq!(
        (got[2]["event"].as_str(), got[2]["reason"].as_str()),
        (Some("unblock"), Some("expired"))
    );
    for line in &got {
        let time = line["time"].as_str().expect("time");
        assert!(time.len() == 27 && time.ends_with('Z'), "microsecond RFC 3339: {time}");
    }
}

#[test]
fn refusals_and_charges_name_rule_key_and_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::to_sink(LineSink::open(&path).expect("open"));
    log.refusal(&RefusalLine {
        rule: "create-per-ip",
        key_kind: "ip",
        key_value: "ip=198.51.100.7",
        reason: "rate_limited",
        message: "Rate limit exceeded",
        route: Some("provision-create"),
        status: 429,
        client: "198.51.100.7".parse().ok(),
    });
    let policy = policy::compile_str("p.toml", "version = 1\n").expect("policy");
    let ledger = Ledger::new();
    let source = SourceKeys::new("198.51.100.7".parse().expect("ip"), None, None);
    let entry: LedgerEntry = ledger
        .charge_expired_unclaimed("acct-1", &source, Default::default(), 100, policy.costs())
        .expect("charged");
    log.ledger(&entry);
    let got = lines(&log, &path);
    assert_eq!(got[0]["event"], "refusal");
    assert_eq!(
        (got[0]["status"].as_u64(), got[0]["route"].as_str()),
        (Some(429), Some("provision-create"))
    );
    assert_eq!(got[1]["event"], "charge");
    assert_eq!(got[1]["rule"], "ledger:expired_unclaimed");
    assert_eq!(
        (got[1]["key_kind"].as_str(), got[1]["key_value"].as_str()),
        (Some("ip"), Some("198.51.100.7"))
    );
    assert_eq!(got[1]["units"], 10);
    assert_eq!(got[1]["account"], "acct-1");
}

#[test]
fn a_log_that_is_off_writes_nothing_and_long_fields_are_cut() {
    AuditLog::off().block("ip", "192.0.2.1", None, "nothing is written");
    assert_eq!(cut(&"é".repeat(400)).len(), MAX_FIELD);
    assert_eq!(split_key("ipv6/48:2001:db8::/48"), ("ipv6/48", "2001:db8::/48".to_string()));
}

#[test]
fn a_gateway_that_cannot_open_its_audit_log_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("dir");
    let settings = crate::config::LogSettings {
        audit_file: Some(dir.path().join("no-such-folder").join("audit.jsonl")),
        access_log_file: None,
    };
    let e = start(&settings).expect_err("the folder does not exist");
    assert!(e.starts_with("cannot open the audit log "), "{e}");
    assert!(e.contains("[audit] enabled = false"), "{e}");
}
