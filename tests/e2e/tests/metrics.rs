//! `/metrics` through the real binary: rule outcomes add up (a limit rule that lets
//! requests through counts them `allowed`), the latency histograms and upstream
//! statuses are there, and label values stay bounded however many client keys and
//! tokens a spray brings.

use e2e::ADMIN_TOKEN;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use e2e::{free_port, GatewayProcess};
use refplatform::{ManualClock, PlatformConfig};

const POLICY: &str = r#"
version = 1
[[rule]]
name = "read-per-ip"
match = { route = "deploy-read" }
action = "limit"
limits = [{ key = "ip", rate = "1000/minute", burst = 1000 }]
[[rule]]
name = "create-per-ip"
match = { route = "provision-create" }
action = "limit"
limits = [{ key = "ip", rate = "1/hour", burst = 1 }]
"#;

struct Stack {
    _platform: refplatform::RunningPlatform,
    gateway: GatewayProcess,
    api: String,
    admin: String,
    client: reqwest::Client,
}

async fn stack() -> Stack {
    let admin_port = free_port();
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("platform");
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\ntrust_loopback = true\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n",
        platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).expect("policy")
    });
    assert!(e2e::wait_listening(
        format!("127.0.0.1:{admin_port}").parse().expect("addr"),
        Duration::from_secs(10)
    ));
    Stack {
        api: format!("{}/client/v4", gateway.url()),
        admin: format!("http://127.0.0.1:{admin_port}"),
        _platform: platform,
        gateway,
        client: reqwest::Client::new(),
    }
}

/// What the gateway's access log says once per finished request; a request is counted
/// in the metrics before its line is written.
const FINISHED: &str = "access_log: request ";

impl Stack {
    /// Waits until `n` requests have finished (and so are counted).
    fn finished(&self, n: usize) {
        self.gateway.wait_for_log_count(FINISHED, n);
    }

    /// A deploy-read call from `xff` with `token`.
    async fn read(&self, xff: &str, token: &str) -> u16 {
        self.client
            .get(format!("{}/accounts/acc123/workers/scripts", self.api))
            .header("x-forwarded-for", xff)
            .bearer_auth(token)
            .send()
            .await
            .expect("read sent")
            .status()
            .as_u16()
    }

    async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().expect("ascii").to_string();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        resp.text().await.expect("text")
    }
}

/// The value of the sample line `name{labels}` (exactly as printed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every series (name and labels) in the text.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_rule_that_lets_requests_through_counts_them_allowed() {
    let s = stack().await;
    for _ in 0..5 {
        assert_ne!(s.read("198.51.100.7", "made-up-token").await, 429);
    }
    let (status, _) =
        e2e::provision::create(&s.client, &s.api, &[("x-forwarded-for", "198.51.100.8")]).await;
    assert_eq!(status, 200);
    let (status, _) =
        e2e::provision::create(&s.client, &s.api, &[("x-forwarded-for", "198.51.100.8")]).await;
    assert_eq!(status, 429);
    // Five reads, two challenges, two creates.
    s.finished(9);
    let text = s.metrics().await;
    let rule = |name: &str, outcome: &str| {
        value(
            &text,
            &format!("gateway_rule_requests_total{{rule=\"{name}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(rule("read-per-ip", "allowed"), Some(5.0), "{text}");
    assert_eq!(rule("read-per-ip", "refused"), Some(0.0), "{text}");
    assert_eq!(rule("create-per-ip", "allowed"), Some(1.0), "{text}");
    assert_eq!(rule("create-per-ip", "refused"), Some(1.0), "{text}");
    // Decisions by route class and outcome, and the histograms of every phase.
    let decisions = |route: &str, outcome: &str| {
        value(&text, &format!("gateway_decisions_total{{route=\"{route}\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!(decisions("deploy-read", "allowed"), Some(5.0), "{text}");
    assert_eq!(decisions("provision-create", "allowed"), Some(1.0), "{text}");
    assert_eq!(decisions("provision-create", "rate_limited"), Some(1.0), "{text}");
    assert_eq!(decisions("provision-challenge", "allowed"), Some(2.0), "{text}");
    for histogram in [
        "gateway_request_duration_seconds",
        "gateway_decision_duration_seconds",
        "gateway_upstream_duration_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {histogram} histogram")), "{histogram}:\n{text}");
        let count = value(&text, &format!("{histogram}_count{{route=\"provision-create\"}}"));
        let want = if histogram.contains("upstream") { 1.0 } else { 2.0 };
        assert_eq!(count, Some(want), "{histogram}:\n{text}");
        assert!(
            text.contains(&format!("{histogram}_bucket{{le=\"+Inf\",route=\"provision-create\"}}"))
                || text.contains(&format!(
                    "{histogram}_bucket{{route=\"provision-create\",le=\"+Inf\"}}"
                )),
            "{histogram} buckets:\n{text}"
        );
    }
    assert_eq!(
        value(&text, "gateway_upstream_responses_total{route=\"provision-create\",status=\"2xx\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "gateway_pow_challenges_issued_total{difficulty=\"platform\"}"),
        Some(2.0)
    );
    assert_eq!(value(&text, "gateway_accounts{state=\"live\"}"), Some(1.0), "{text}");
    assert_eq!(value(&text, "gateway_accounts_tracked"), Some(1.0), "{text}");
    // The families the earlier hand-written text had are all still there.
    for name in [
        "gateway_limit_keys{limit=\"read-per-ip/ip\"}",
        "gateway_limit_overflow_total{limit=\"read-per-ip/ip\"}",
        "gateway_limit_evictions_total{limit=\"read-per-ip/ip\"}",
        "gateway_cleanup_units_total",
        "gateway_cleanup_accounts_total",
        "gateway_pow_verifies_total",
        "gateway_pow_verify_hashes_total",
    ] {
        assert!(value(&text, name).is_some(), "{name} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_stay_bounded_under_a_key_spray() {
    let s = stack().await;
    let spray = |round: u32| {
        (0..200u32).map(move |i| {
            (format!("203.0.{}.{}", round * 2 + i / 100, i % 100 + 1), format!("tok-{round}-{i}"))
        })
    };
    for (ip, token) in spray(0) {
        assert_ne!(s.read(&ip, &token).await, 429);
    }
    s.finished(200);
    let first = s.metrics().await;
    for (ip, token) in spray(1) {
        assert_ne!(s.read(&ip, &token).await, 429);
    }
    s.finished(400);
    let second = s.metrics().await;
    // Twice the keys, the same series: keys are counted in values, never in labels.
    assert_eq!(series(&first), series(&second), "series changed with the keys");
    assert_eq!(value(&first, "gateway_limit_keys{limit=\"read-per-ip/ip\"}"), Some(200.0));
    assert_eq!(value(&second, "gateway_limit_keys{limit=\"read-per-ip/ip\"}"), Some(400.0));
    assert!(series(&second).len() < 200, "{} series:\n{second}", series(&second).len());
    for (ip, token) in spray(0).chain(spray(1)) {
        assert!(
            !second.contains(&format!("\"{ip}\"")) && !second.contains(&token),
            "{ip}/{token} in:\n{second}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_counted_as_an_upstream_error() {
    let admin_port = free_port();
    // A port nothing listens on.
    let body = format!(
        "[upstream]\nurl = \"http://127.0.0.1:{}\"\nconnect_timeout_ms = 500\n\n[policy]\nfile = \"policy.toml\"\ntrust_loopback = true\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n",
        free_port()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).expect("policy")
    });
    let admin = format!("127.0.0.1:{admin_port}");
    assert!(e2e::wait_listening(admin.parse().expect("addr"), Duration::from_secs(10)));
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/client/v4/accounts/acc1/workers/scripts", gateway.url()))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 502);
    gateway.wait_for_log_count(FINISHED, 1);
    let text = client
        .get(format!("http://{admin}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        value(&text, "gateway_upstream_responses_total{route=\"deploy-read\",status=\"error\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "gateway_decisions_total{route=\"deploy-read\",outcome=\"allowed\"}"),
        Some(1.0),
        "{text}"
    );
}
