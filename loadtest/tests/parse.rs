//! The scenario format: what it accepts, and the errors it gives.

use loadtest::agent::{Archetype, Behaviour};
use loadtest::scenario::{Scenario, Target};

const MINIMAL: &str = r#"
name = "t"
duration_secs = 10
target = { url = "http://127.0.0.1:8787" }

[[agents]]
archetype = "well-behaved"
count = 3
arrival_per_sec = 1.5
"#;

fn err(text: &str) -> String {
    match Scenario::parse(text, "s.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_scenario_has_defaults() {
    let s = Scenario::parse(MINIMAL, "s.toml").expect("parses");
    assert_eq!(s.target, Target::url("http://127.0.0.1:8787"));
    assert!(s.network.forwarded_for);
    assert!(!s.network.bind_source);
    assert_eq!(s.agents[0].archetype, Archetype::WellBehaved);
    assert_eq!(s.agents[0].label(), "well-behaved");
    assert_eq!(s.max_pow_iterations, 64_000_000);
}

#[test]
fn url_target_takes_an_admin_url_and_a_policy() {
    let text = MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { url = "http://127.0.0.1:8787", admin_url = "http://127.0.0.1:9901", policy = "rules/default.toml" }"#,
    );
    let s = Scenario::parse(&text, "s.toml").expect("parses");
    let Target::Url(t) = &s.target else { panic!("not url") };
    assert_eq!(t.admin_url.as_deref(), Some("http://127.0.0.1:9901"));
    assert_eq!(t.policy.as_deref(), Some(std::path::Path::new("rules/default.toml")));
    let bad = MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { url = "http://127.0.0.1:8787", admin_url = "http://10.0.0.1:9901" }"#,
    );
    assert!(err(&bad).contains("target.admin_url"), "{}", err(&bad));
    let both = MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { url = "http://127.0.0.1:8787", spawn = {} }"#,
    );
    assert!(err(&both).contains("not both"), "{}", err(&both));
    let typo = MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { url = "http://127.0.0.1:8787", admin = "http://127.0.0.1:1" }"#,
    );
    assert!(err(&typo).contains("admin"), "{}", err(&typo));
}

#[test]
fn spawn_target_inline_and_as_table() {
    let inline = MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { spawn = { policy = "rules/default.toml" } }"#,
    );
    let s = Scenario::parse(&inline, "s.toml").expect("parses");
    let Target::Spawn(spec) = &s.target else { panic!("not spawn") };
    assert_eq!(spec.policy.as_deref(), Some(std::path::Path::new("rules/default.toml")));
    assert_eq!((spec.pow_k, spec.pow_g), (2, 256));
    assert_eq!(spec.account_lifetime_secs, 25);
    assert_eq!(spec.sweep_interval_secs, 1);
    assert!(spec.expire_at_end);
    let table = MINIMAL.replace(r#"target = { url = "http://127.0.0.1:8787" }"#, "")
        + "[target.spawn]\npow_k = 3\npow_g = 10\n";
    let s = Scenario::parse(&table, "s.toml").expect("parses");
    assert!(matches!(s.target, Target::Spawn(ref t) if t.pow_k == 3 && t.policy.is_none()));
}

#[test]
fn every_archetype_name_parses() {
    for a in Archetype::ALL {
        let text = MINIMAL.replace("well-behaved", a.name());
        let s = Scenario::parse(&text, "s.toml").unwrap_or_else(|e| panic!("{}: {e}", a.name()));
        assert_eq!(s.agents[0].archetype, a);
    }
}

#[test]
fn overrides_apply_over_archetype_defaults() {
    let text = MINIMAL.to_string() + "deploys = 4\nclaim = false\nqueues = 7\nretry_delay_ms = 5\n";
    let s = Scenario::parse(&text, "s.toml").expect("parses");
    let b = Behaviour::for_group(&s.agents[0]);
    assert_eq!(b.deploys, 4);
    assert!(b.max_runs >= 4);
    assert!(!b.claim);
    assert_eq!(b.queues, 7);
    assert_eq!(b.retry_delay.as_millis(), 5);
    assert!(Archetype::WellBehaved.behaviour().claim);
    assert!(!Archetype::RetryLoopRude.behaviour().honour_retry_after);
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let e = err(&MINIMAL.replace("count = 3", "cout = 3"));
    assert!(e.contains("s.toml") && e.contains("cout"), "{e}");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn unknown_archetype_lists_the_known_ones() {
    let e = err(&MINIMAL.replace("well-behaved", "nice"));
    assert!(e.contains("nice") && e.contains("retry-loop-rude"), "{e}");
}

#[test]
fn non_loopback_targets_are_refused() {
    for url in [
        "http://10.0.0.1:8787",
        "http://192.168.1.1",
        "http://example.com",
        "http://[2001:db8::1]:80",
        "ftp://127.0.0.1",
        "not a url",
    ] {
        let e = err(&MINIMAL.replace("http://127.0.0.1:8787", url));
        assert!(e.contains("target.url"), "{url}: {e}");
    }
    for url in ["http://localhost:1", "http://127.9.9.9:1", "http://[::1]:1"] {
        Scenario::parse(&MINIMAL.replace("http://127.0.0.1:8787", url), "s.toml")
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[test]
fn semantic_errors_name_the_group() {
    let e = err(&MINIMAL.replace("count = 3", "count = 0"));
    assert!(e.contains("agents[0] (well-behaved)") && e.contains("count"), "{e}");
    let e = err(&MINIMAL.replace("arrival_per_sec = 1.5", "arrival_per_sec = -1"));
    assert!(e.contains("arrival_per_sec"), "{e}");
    let e = err(&MINIMAL.replace("duration_secs = 10", "duration_secs = 0"));
    assert!(e.contains("duration_secs"), "{e}");
    let e = err(&MINIMAL.replace("duration_secs = 10", "duration_secs = 99999"));
    assert!(e.contains("duration_secs"), "{e}");
    let dup = MINIMAL.to_string()
        + "\n[[agents]]\narchetype = \"well-behaved\"\ncount = 1\narrival_per_sec = 1\n";
    let e = err(&dup);
    assert!(e.contains("duplicate label"), "{e}");
    let labelled = dup + "label = \"second\"\n";
    Scenario::parse(&labelled, "s.toml").expect("distinct labels are fine");
}

#[test]
fn missing_pieces_are_reported() {
    let e = err(
        "name = \"t\"\nduration_secs = 5\nagents = []\ntarget = { url = \"http://127.0.0.1:1\" }\n",
    );
    assert!(e.contains("at least one"), "{e}");
    let e = err("name = \"t\"\nduration_secs = 5\n[[agents]]\narchetype = \"well-behaved\"\ncount = 1\narrival_per_sec = 1\n");
    assert!(e.contains("target"), "{e}");
    let e = err(&MINIMAL.replace(
        r#"target = { url = "http://127.0.0.1:8787" }"#,
        r#"target = { spawn = { pow_k = 100000, pow_g = 100000 } }"#,
    ));
    assert!(e.contains("max_pow_iterations"), "{e}");
}

#[test]
fn scale_rounds_up_and_checks_its_factor() {
    let mut s =
        Scenario::parse(&MINIMAL.replace("count = 3", "count = 30"), "s.toml").expect("parses");
    s.scale(0.01).expect("scales");
    assert_eq!(s.agents[0].count, 1);
    let mut s = Scenario::parse(MINIMAL, "s.toml").expect("parses");
    s.scale(2.5).expect("scales");
    assert_eq!(s.agents[0].count, 8);
    for bad in [0.0, -1.0, f64::NAN, 1000.0] {
        assert!(s.scale(bad).is_err(), "{bad}");
    }
}
