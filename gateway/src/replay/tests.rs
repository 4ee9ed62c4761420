//! Replay on a small hand-written log.

use super::parse::parse;
use super::report::summarize;
use super::run::run;

const CREATE: &str = "/client/v4/provisioning/previews";

fn policy(burst: u32) -> policy::Policy {
    let text = format!(
        "version = 1\n[[rule]]\nname = \"create-per-ip\"\nmatch = {{ route = \"provision-create\" }}\naction = \"limit\"\nlimits = [{{ key = \"ip\", rate = \"2/hour\", burst = {burst} }}]\n"
    );
    policy::compile_str("p.toml", &text).expect("policy")
}

/// One access-log line: a create at `secs` past midnight from `ip`, as recorded.
fn line(secs: f64, seq: u64, ip: &str, refused_by: Option<&str>) -> String {
    let micros = (secs * 1e6) as i128 + 1_796_169_600_000_000;
    let (decision, rule) = match refused_by {
        Some("limits") => ("refuse", "\"create-per-ip\""),
        Some(_) => ("refuse", "null"),
        None => ("allow", "null"),
    };
    let by = refused_by.map_or("null".to_string(), |b| format!("\"{b}\""));
    format!(
        r#"{{"ts":"{}","seq":{seq},"client":"{ip}","route":"provision-create","method":"POST","path":"{CREATE}","headers":["host","user-agent"],"http_fp":"hf1_11_nnn_undici_000000000000","decision":"{decision}","rule":{rule},"refused_by":{by}}}"#,
        crate::audit::rfc3339_micros(micros)
    )
}

/// Written in completion order, not decision order (seq 1 finished before seq 0).
fn log() -> String {
    [
        line(0.5, 1, "198.51.100.7", None),
        line(0.25, 0, "198.51.100.7", None),
        line(1.0, 2, "198.51.100.7", Some("limits")),
        line(1.5, 3, "198.51.100.7", Some("limits")),
        line(2.0, 4, "203.0.113.9", Some("budget")),
        // Refused by a check before the engine (blocked): the engine never saw it.
        line(2.5, 7, "198.51.100.7", Some("blocks")),
        "{\"ts\": 12}".to_string(),
        // Two hours on, the bucket has refilled: allowed, and the replay's clock agrees.
        line(7200.0, 5, "198.51.100.7", None),
        line(7200.1, 6, "198.51.100.7", None),
    ]
    .join("\n")
}

#[test]
fn replaying_through_the_recording_policy_changes_nothing() {
    let parsed = parse(log().as_bytes());
    assert_eq!(parsed.errors.len(), 1);
    assert_eq!(parsed.errors[0].line, 7);
    let judged = run(policy(2), parsed.records);
    let report = summarize(&judged, parsed.lines, &parsed.errors, 10);
    assert!(!report.differs(), "{}", report.to_text());
    assert_eq!((report.requests, report.skipped, report.lines), (8, 1, 9));
    assert_eq!(report.recorded, report.candidate);
    assert_eq!(report.recorded.refused, 4, "two by the rule, one by the budget, one blocked");
    assert_eq!(report.replayed, 7, "the blocked request never reached the engine");
    assert!(report.to_text().contains("no decision differs"), "{}", report.to_text());
}

#[test]
fn a_tighter_policy_refuses_more_and_a_looser_one_less_per_rule_and_source() {
    let parsed = parse(log().as_bytes());
    let strict = summarize(&run(policy(1), parsed.records.clone()), 9, &[], 10);
    // Burst 1: the second create of each burst is refused now.
    assert_eq!((strict.allow_to_refuse, strict.refuse_to_allow), (2, 0), "{}", strict.to_text());
    let row = strict.rules.iter().find(|r| r.rule == "create-per-ip").expect("rule row");
    assert_eq!((row.recorded_refused, row.candidate_refused, row.allow_to_refuse), (2, 4, 2));
    assert_eq!(strict.sources.len(), 1);
    assert_eq!(strict.sources[0].source, "198.51.100.7");
    assert_eq!(strict.sources[0].allow_to_refuse, 2);

    let loose = summarize(&run(policy(10), parsed.records), 9, &[], 10);
    assert_eq!((loose.allow_to_refuse, loose.refuse_to_allow), (0, 2), "{}", loose.to_text());
    // The budget refusal is outside the engine: it stays refused.
    let budget = loose.rules.iter().find(|r| r.rule == "budget").expect("budget row");
    assert_eq!((budget.recorded_refused, budget.candidate_refused), (1, 1));

    let json: serde_json::Value = serde_json::from_str(&loose.to_json()).expect("json");
    assert_eq!(json["version"], 1);
    assert_eq!(json["refuse_to_allow"], 2);
    assert_eq!(json["sources"][0]["source"], "198.51.100.7");
    assert!(loose.to_text().contains("2 refuse->allow"), "{}", loose.to_text());
}

#[test]
fn the_candidates_fair_share_ceiling_is_replayed_on_the_logs_clock() {
    let text = concat!(
        "version = 1\n[[rule]]\nname = \"create-per-ip\"\nmatch = { route = \"provision-create\" }\n",
        "action = \"limit\"\nlimits = [{ key = \"ip\", rate = \"2/hour\", burst = 10 }]\n",
        "[fair_share]\nroute = \"provision-create\"\nceiling = \"4/hour\"\n",
    );
    let candidate = policy::compile_str("p.toml", text).expect("policy");
    let parsed = parse(log().as_bytes());
    let report = summarize(&run(candidate, parsed.records), 9, &[], 10);
    // The two creates the recording's rule refused are now refused by the ceiling
    // (one network past half the ceiling of 4 may take no more than is left, 2); two
    // hours on it admits again; the budget refusal never
    // reaches it.
    assert_eq!(report.refused_by_another_rule, 2, "{}", report.to_text());
    assert_eq!((report.allow_to_refuse, report.refuse_to_allow), (0, 0), "{}", report.to_text());
    let row = report.rules.iter().find(|r| r.rule == "fair-share").expect("fair-share row");
    assert_eq!(row.candidate_refused, 2, "{}", report.to_text());
}
