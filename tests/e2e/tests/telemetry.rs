//! OpenTelemetry through the real binary: `[telemetry]` pointed at an in-process
//! OTLP/HTTP receiver (protobuf bodies decoded with opentelemetry-proto). Requests that
//! are allowed, refused, and made with a token of a known and of an unknown account
//! must arrive as spans with the route, rule, decision, key kinds, account kind and
//! upstream status; the gateway's metrics must arrive too; and nothing exported may
//! carry the token, the claim URL or the Authorization value the test used.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use e2e::GatewayProcess;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{number_data_point, Metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use refplatform::{ManualClock, PlatformConfig};
use serde_json::Value as Json;
use tokio::sync::watch;

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

/// What the receiver was sent: decoded spans and metrics, the service names of the
/// resources, and every raw body (to search for secrets).
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    metrics: Vec<Metric>,
    services: Vec<String>,
    raw: Vec<Vec<u8>>,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Received>>,
    bumped: Arc<watch::Sender<u64>>,
}

fn string_of(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn service_of(attrs: &[KeyValue]) -> Option<String> {
    attrs.iter().find(|kv| kv.key == "service.name").and_then(|kv| string_of(kv.value.as_ref()))
}

async fn traces(State(r): State<Receiver>, body: Bytes) -> &'static str {
    if let Ok(req) = ExportTraceServiceRequest::decode(body.as_ref()) {
        let mut got = r.received.lock().expect("receiver");
        for rs in req.resource_spans {
            got.services.extend(rs.resource.and_then(|res| service_of(&res.attributes)));
            got.spans.extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
        }
        got.raw.push(body.to_vec());
    }
    r.bumped.send_modify(|n| *n += 1);
    ""
}

async fn metrics(State(r): State<Receiver>, body: Bytes) -> &'static str {
    if let Ok(req) = ExportMetricsServiceRequest::decode(body.as_ref()) {
        let mut got = r.received.lock().expect("receiver");
        for rm in req.resource_metrics {
            got.services.extend(rm.resource.and_then(|res| service_of(&res.attributes)));
            got.metrics.extend(rm.scope_metrics.into_iter().flat_map(|s| s.metrics));
        }
        got.raw.push(body.to_vec());
    }
    r.bumped.send_modify(|n| *n += 1);
    ""
}

/// Starts the receiver on a loopback port; returns it, a watch bumped on every
/// export, and its base URL.
async fn receiver() -> (Receiver, watch::Receiver<u64>, String) {
    let (tx, rx) = watch::channel(0);
    let r = Receiver { received: Arc::default(), bumped: Arc::new(tx) };
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, rx, format!("http://{addr}"))
}

impl Receiver {
    /// Waits, woken by each export (at most 30 s), until `done` holds.
    async fn wait(
        &self,
        rx: &mut watch::Receiver<u64>,
        what: &str,
        done: impl Fn(&Received) -> bool,
    ) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                rx.borrow_and_update();
                if done(&self.received.lock().expect("receiver")) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(waited.is_ok(), "the receiver never got {what}");
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

fn attr_str(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attr_int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::IntValue(v) => Some(*v),
        _ => None,
    }
}

fn key_kinds(span: &Span) -> Vec<String> {
    match attr(span, "gateway.key_kinds") {
        Some(Value::ArrayValue(a)) => a.values.iter().filter_map(|v| string_of(Some(v))).collect(),
        _ => Vec::new(),
    }
}

/// The spans of `route` whose `gateway.account` is `account` and decision `decision`.
fn spans<'a>(got: &'a Received, route: &str, decision: &str, account: &str) -> Vec<&'a Span> {
    got.spans
        .iter()
        .filter(|s| attr_str(s, "gateway.route").as_deref() == Some(route))
        .filter(|s| attr_str(s, "gateway.decision").as_deref() == Some(decision))
        .filter(|s| attr_str(s, "gateway.account").as_deref() == Some(account))
        .collect()
}

/// Whether a sum data point of `name` with these attributes arrived.
fn has_point(got: &Received, name: &str, attrs: &[(&str, &str)]) -> bool {
    got.metrics.iter().filter(|m| m.name == name).any(|m| match &m.data {
        Some(Data::Sum(sum)) => sum.data_points.iter().any(|p| {
            attrs.iter().all(|(k, v)| {
                p.attributes
                    .iter()
                    .any(|kv| kv.key == *k && string_of(kv.value.as_ref()).as_deref() == Some(*v))
            }) && matches!(p.value, Some(number_data_point::Value::AsInt(n)) if n > 0)
        }),
        _ => false,
    })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_arrive_over_otlp_without_secrets() {
    let (otlp, mut bumped, otlp_url) = receiver().await;
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("platform");
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\ntrust_loopback = true\n\n\
         [telemetry]\nendpoint = \"{otlp_url}\"\nservice_name = \"gateway-under-test\"\nexport_interval_ms = 100\n",
        platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).expect("policy")
    });
    let api = format!("{}/client/v4", gateway.url());
    let client = reqwest::Client::new();
    let xff = [("x-forwarded-for", "198.51.100.20")];

    // Allowed: an account is created; its token and claim URL are the secrets.
    let (status, created) = e2e::provision::create(&client, &api, &xff).await;
    assert_eq!(status, 200, "{created}");
    let account: &Json = &created["result"]["account"];
    let token = account["apiToken"].as_str().expect("token").to_string();
    let id = account["id"].as_str().expect("id").to_string();
    let claim_url = created["result"]["claim"]["url"].as_str().expect("claim url").to_string();
    let claim_secret = claim_url.rsplit('/').next().expect("secret").to_string();
    // Refused: one account per hour from this address.
    let (status, _) = e2e::provision::create(&client, &api, &xff).await;
    assert_eq!(status, 429);
    // A known account's call, and one with a token nobody issued.
    let made_up = "made-up-token-7f3a9c";
    for bearer in [token.as_str(), made_up] {
        let resp = client
            .get(format!("{api}/accounts/{id}/workers/scripts"))
            .header("x-forwarded-for", "198.51.100.20")
            .bearer_auth(bearer)
            .send()
            .await
            .expect("read");
        assert_ne!(resp.status(), 429);
    }

    otlp.wait(&mut bumped, "the four kinds of span", |got| {
        !spans(got, "provision-create", "allowed", "none").is_empty()
            && !spans(got, "provision-create", "refused", "none").is_empty()
            && !spans(got, "deploy-read", "allowed", "known").is_empty()
            && !spans(got, "deploy-read", "allowed", "unknown").is_empty()
    })
    .await;
    otlp.wait(&mut bumped, "the request and state metrics", |got| {
        has_point(
            got,
            "gateway_decisions",
            &[("route", "provision-create"), ("outcome", "rate_limited")],
        ) && has_point(
            got,
            "gateway_rule_requests",
            &[("rule", "create-per-ip"), ("outcome", "allowed")],
        ) && got.metrics.iter().any(|m| {
            m.name == "gateway_request_duration_seconds"
                && matches!(m.data, Some(Data::Histogram(_)))
        }) && got.metrics.iter().any(|m| m.name == "gateway_upstream_duration_seconds")
    })
    .await;

    let got = otlp.received.lock().expect("receiver");
    assert!(got.services.iter().all(|s| s == "gateway-under-test"), "{:?}", got.services);
    let created_span = spans(&got, "provision-create", "allowed", "none")[0];
    assert_eq!(attr_str(created_span, "gateway.rule").as_deref(), Some("create-per-ip"));
    assert_eq!(attr_int(created_span, "gateway.upstream.status_code"), Some(200));
    assert_eq!(attr_int(created_span, "http.response.status_code"), Some(200));
    assert!(
        matches!(attr(created_span, "gateway.upstream.duration_ms"), Some(Value::DoubleValue(ms)) if *ms > 0.0)
    );
    let kinds = key_kinds(created_span);
    assert!(
        kinds.contains(&"ip".to_string()) && kinds.contains(&"http_fp".to_string()),
        "{kinds:?}"
    );
    assert!(created_span.end_time_unix_nano >= created_span.start_time_unix_nano);

    let refused = spans(&got, "provision-create", "refused", "none")[0];
    assert_eq!(attr_str(refused, "gateway.refusal").as_deref(), Some("rate_limited"));
    assert_eq!(attr_str(refused, "gateway.rule").as_deref(), Some("create-per-ip"));
    assert_eq!(attr_int(refused, "http.response.status_code"), Some(429));
    assert_eq!(
        attr_int(refused, "gateway.upstream.status_code"),
        None,
        "a refusal never went upstream"
    );

    let known = spans(&got, "deploy-read", "allowed", "known")[0];
    assert!(key_kinds(known).contains(&"account".to_string()), "{:?}", key_kinds(known));
    assert!(attr_int(known, "gateway.upstream.status_code").is_some());
    let unknown = spans(&got, "deploy-read", "allowed", "unknown")[0];
    assert!(!key_kinds(unknown).contains(&"account".to_string()));

    // Nothing exported carries a secret the test used, or the account id.
    let secrets = [
        token.as_str(),
        claim_url.as_str(),
        claim_secret.as_str(),
        made_up,
        &format!("Bearer {token}"),
        "authorization",
        id.as_str(),
        "198.51.100.20",
    ];
    for (i, body) in got.raw.iter().enumerate() {
        for secret in secrets {
            assert!(!contains(body, secret), "export {i} carries {secret:?}");
        }
    }
    drop(got);
    drop(gateway);
}

/// A gateway with the given telemetry endpoint and export interval, in front of a
/// fresh platform; returns both and the API base URL.
async fn gateway_with(
    endpoint: &str,
    interval_ms: u64,
) -> (refplatform::RunningPlatform, GatewayProcess, String) {
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 2, pow_g: 64, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("platform");
    let body = format!(
        "[upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\ntrust_loopback = true\n\n\
         [telemetry]\nendpoint = \"{endpoint}\"\nexport_interval_ms = {interval_ms}\n",
        platform.addr()
    );
    let gateway = GatewayProcess::start_with(&body, |dir| {
        std::fs::write(dir.join("policy.toml"), POLICY).expect("policy")
    });
    let api = format!("{}/client/v4", gateway.url());
    (platform, gateway, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_buffered_are_flushed_when_the_gateway_stops() {
    let (otlp, mut bumped, otlp_url) = receiver().await;
    // An interval far longer than the test: only the flush at shutdown can send them.
    let (_platform, mut gateway, api) = gateway_with(&otlp_url, 600_000).await;
    let client = reqwest::Client::new();
    let challenge =
        e2e::provision::challenge(&client, &api, &[("x-forwarded-for", "198.51.100.30")]).await;
    assert!(!challenge.challenge_token.is_empty());
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some(), "gateway did not stop");
    otlp.wait(&mut bumped, "the challenge's span at shutdown", |got| {
        got.spans
            .iter()
            .any(|s| attr_str(s, "gateway.route").as_deref() == Some("provision-challenge"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_no_request() {
    // A port nothing listens on.
    let closed = format!("http://127.0.0.1:{}", e2e::free_port());
    let (_platform, gateway, api) = gateway_with(&closed, 100).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let resp = client
            .get(format!("{api}/accounts/acc1/workers/scripts"))
            .header("x-forwarded-for", "198.51.100.40")
            .send()
            .await
            .expect("answered");
        assert_ne!(resp.status().as_u16(), 502);
        assert_ne!(resp.status().as_u16(), 504);
    }
    assert!(e2e::wait_listening(gateway.addr, Duration::from_secs(1)), "gateway still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_does_not_hold_the_gateway_at_shutdown() {
    // Accepts connections and reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent = format!("http://{}", listener.local_addr().expect("addr"));
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = held_tx.send(socket);
        }
    });
    let (_platform, mut gateway, api) = gateway_with(&silent, 600_000).await;
    let client = reqwest::Client::new();
    e2e::provision::challenge(&client, &api, &[("x-forwarded-for", "198.51.100.50")]).await;
    gateway.signal("TERM");
    // The flush at shutdown reaches the collector and is held there...
    let held = tokio::time::timeout(Duration::from_secs(10), held_rx.recv()).await;
    assert!(matches!(held, Ok(Some(_))), "the gateway never tried to flush");
    // ...and the gateway still exits well within the SDK's retries.
    assert!(gateway.wait_exit(Duration::from_secs(6)).is_some(), "gateway held by its collector");
}
