//! Foundation: real wrangler deploys through the real gateway binary to the
//! reference platform; upstream failures become v4 envelopes; shutdown drains.

use std::sync::Arc;
use std::time::Duration;

use e2e::{GatewayProcess, Wrangler};
use refplatform::{ManualClock, PlatformConfig};

/// Small proof-of-work so the tests spend their time on the protocol, not hashing.
fn platform_config() -> PlatformConfig {
    PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() }
}

async fn start_platform() -> (refplatform::RunningPlatform, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let running =
        refplatform::spawn(platform_config(), clock.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("platform starts");
    (running, clock)
}

fn upstream_section(addr: std::net::SocketAddr) -> String {
    format!(
        "[upstream]\nurl = \"http://{addr}\"\nconnect_timeout_ms = 1000\nread_timeout_ms = 5000\n"
    )
}

fn assert_deployed(run: &e2e::WranglerRun, what: &str) {
    let text = run.text();
    assert!(run.ok(), "{what}: wrangler failed:\n{text}");
    assert!(text.contains(".workers.dev"), "{what}: no workers.dev URL printed:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrangler_deploys_directly_to_the_platform() {
    let (platform, _clock) = start_platform().await;
    let wrangler = Wrangler::locate();
    let tmp = tempfile::tempdir().unwrap();
    let project = Wrangler::project(tmp.path(), "direct-hello");
    let api = format!("http://{}/client/v4", platform.addr());
    let run = tokio::task::spawn_blocking({
        let (project, home) = (project.clone(), tmp.path().join("home"));
        move || wrangler.deploy_temporary(&project, &home, &api, &[])
    })
    .await
    .unwrap();
    assert_deployed(&run, "direct deploy");
    assert!(run.text().contains("/claim/"), "claim URL printed:\n{}", run.text());
    let accounts = platform.platform().accounts();
    assert_eq!(accounts.len(), 1, "one temporary account");
    assert!(
        accounts[0].scripts.iter().any(|s| s == "direct-hello"),
        "script recorded: {:?}",
        accounts[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrangler_deploys_through_the_gateway_and_reuses_its_account() {
    let (platform, _clock) = start_platform().await;
    let gateway = GatewayProcess::start(&upstream_section(platform.addr()));
    let wrangler = Arc::new(Wrangler::locate());
    let tmp = tempfile::tempdir().unwrap();
    let project = Wrangler::project(tmp.path(), "gw-hello");
    let home = tmp.path().join("home");
    let api = format!("{}/client/v4", gateway.url());

    let first = {
        let (w, p, h, a) = (wrangler.clone(), project.clone(), home.clone(), api.clone());
        tokio::task::spawn_blocking(move || w.deploy_temporary(&p, &h, &a, &[])).await.unwrap()
    };
    assert_deployed(&first, "first deploy through the gateway");
    assert!(first.text().contains("/claim/"), "claim URL printed:\n{}", first.text());

    let second = {
        let (w, p, h, a) = (wrangler.clone(), project.clone(), home.clone(), api.clone());
        tokio::task::spawn_blocking(move || w.deploy_temporary(&p, &h, &a, &[])).await.unwrap()
    };
    assert_deployed(&second, "second deploy through the gateway");

    // What the platform recorded, not just wrangler's exit code.
    let p = platform.platform();
    let accounts = p.accounts();
    assert_eq!(accounts.len(), 1, "the second deploy reused the cached account: {accounts:?}");
    assert!(accounts[0].scripts.iter().any(|s| s == "gw-hello"));
    let log = p.request_log();
    let creates = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/client/v4/provisioning/previews")
        .count();
    assert_eq!(creates, 1, "exactly one account creation went through");
    assert!(
        log.iter().any(|r| r.method == "PUT"
            && r.path.ends_with("/workers/scripts/gw-hello")
            && r.status == 200),
        "the first upload reached the platform"
    );
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/workers/scripts/gw-hello/versions")),
        "the redeploy used the versions API: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_envelope_and_the_gateway_keeps_serving() {
    // A port nobody listens on.
    let dead = format!("127.0.0.1:{}", e2e::free_port()).parse().unwrap();
    let gateway = GatewayProcess::start(&upstream_section(dead));
    let client = reqwest::Client::new();
    for attempt in 0..3 {
        let resp = client
            .post(format!("{}/client/v4/provisioning/previews/challenge", gateway.url()))
            .body("{}")
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: gateway did not answer: {e}"));
        assert_eq!(resp.status(), 502);
        let body: serde_json::Value = resp.json().await.expect("json envelope");
        assert_eq!(body["success"], false);
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("deploy API is unreachable"), "{message}");
    }
    // A claim URL is a secret: a failed claim through the gateway logs no trace of it
    // (Pingora's own error line included).
    let secret = "claim-secret-6J9pEhLxyqXBhiQikSSN";
    let resp =
        client.get(format!("{}/claim/{secret}?confirm=1", gateway.url())).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let log = gateway.wait_for_log("/claim/{redacted}");
    assert!(!log.contains(secret), "claim secret leaked into the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_never_answers_gives_504() {
    // Accepts connections and reads, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let gateway = GatewayProcess::start(&format!(
        "[upstream]\nurl = \"http://{addr}\"\nconnect_timeout_ms = 1000\nread_timeout_ms = 300\n"
    ));
    let resp = reqwest::get(format!("{}/client/v4/accounts/x/workers/subdomain", gateway.url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("did not answer"));
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that holds its answer until the test releases it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_request_tx, got_request_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = got_request_tx.send(());
        let _ = release_rx.await;
        let body = b"{\"success\":true,\"errors\":[],\"messages\":[],\"result\":{}}";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(body).await;
    });
    let mut gateway = GatewayProcess::start(&upstream_section(addr));
    let url = format!("{}/client/v4/accounts/x/workers/subdomain", gateway.url());
    let request = tokio::spawn(async move { reqwest::get(url).await });
    got_request_rx.await.expect("the request reached the upstream");
    gateway.signal("TERM");
    // The gateway must still be waiting for the in-flight request.
    assert!(
        gateway.wait_exit(Duration::from_millis(300)).is_none(),
        "exited with a request in flight"
    );
    release_tx.send(()).unwrap();
    let resp = request.await.unwrap().expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    let status = gateway.wait_exit(Duration::from_secs(10)).expect("exited after draining");
    assert!(status.success(), "clean exit: {status:?}\n{}", gateway.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_gateway_exits_promptly_on_sigint() {
    let (platform, _clock) = start_platform().await;
    let mut gateway = GatewayProcess::start(&upstream_section(platform.addr()));
    gateway.signal("INT");
    let status = gateway.wait_exit(Duration::from_secs(3)).expect("exits within its grace period");
    assert!(status.success(), "{}", gateway.log_text());
}

/// An upstream that answers the first request of every connection, then closes the
/// connection when the second request arrives (what a server does when it times out
/// an idle keep-alive connection just as the proxy reuses it).
async fn closes_reused_connections(
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>, Arc<std::sync::atomic::AtomicUsize>)
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let creates = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, seen) = (answered.clone(), creates.clone());
    let is_create = |b: &[u8]| b.starts_with(b"POST /client/v4/provisioning/previews ");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (count, seen) = (count.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                if sock.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                if is_create(&buf) {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let body = b"{\"success\":true,\"errors\":[],\"messages\":[],\"result\":{}}";
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body).await;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The next request on this connection is read and dropped unanswered.
                if sock.read(&mut buf).await.unwrap_or(0) > 0 && is_create(&buf) {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (addr, answered, creates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_that_meets_a_closed_pooled_connection_is_sent_again() {
    let (addr, answered, creates) = closes_reused_connections().await;
    let policy = "version = 1\n";
    let gateway = GatewayProcess::start_with(
        &format!("{}\n[policy]\nfile = \"policy.toml\"\n", upstream_section(addr)),
        |dir| std::fs::write(dir.join("policy.toml"), policy).unwrap(),
    );
    let client = reqwest::Client::new();
    let challenge = format!("{}/client/v4/provisioning/previews/challenge", gateway.url());
    for attempt in 0..3 {
        let resp = client.post(&challenge).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), 200, "challenge {attempt}:\n{}", gateway.log_text());
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Account creation is not idempotent: whether or not it meets a closed pooled
    // connection (502) or a fresh one (200), it reaches the platform exactly once.
    let create = format!("{}/client/v4/provisioning/previews", gateway.url());
    let resp = client.post(&create).body("{}").send().await.unwrap();
    assert!(matches!(resp.status().as_u16(), 200 | 502), "{}", resp.status());
    assert_eq!(creates.load(std::sync::atomic::Ordering::SeqCst), 1, "never sent twice");
}
