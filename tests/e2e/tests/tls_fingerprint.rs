//! TLS termination and JA4 fingerprints through the real gateway binary: requests are
//! proxied over TLS, a limit keyed by `tls_fp` gives each TLS client configuration its
//! own budget, and broken clients on the TLS port do not disturb anybody else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use e2e::{free_port, wait_listening, GatewayProcess};
use refplatform::{ManualClock, PlatformConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CipherSuite, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";

/// Two requests per TLS fingerprint, then 429.
const PER_JA4: &str = r#"
version = 1
[client]
trusted_proxies = []
[[rule]]
name = "challenge-per-ja4"
match = { route = "provision-challenge" }
action = "limit"
limits = [{ key = "tls_fp", rate = "1/hour", burst = 2 }]
"#;

struct TlsGateway {
    process: GatewayProcess,
    tls_addr: SocketAddr,
    roots: RootCertStore,
}

/// Starts the gateway with a `[[server.tls]]` listener, a fresh self-signed certificate
/// for `localhost`, and `policy`.
async fn start(policy: &str) -> (refplatform::RunningPlatform, TlsGateway) {
    let clock = Arc::new(ManualClock::starting_now());
    let config = PlatformConfig { pow_k: 4, pow_g: 256, ..PlatformConfig::default() };
    let platform = refplatform::spawn(config, clock, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("platform");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed cert");
    let tls_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let body = format!(
        "[[server.tls]]\nlisten = \"{tls_addr}\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n\
         [upstream]\nurl = \"http://{}\"\n\n[policy]\nfile = \"policy.toml\"\n",
        platform.addr()
    );
    let (cert_pem, key_pem, policy) =
        (certified.cert.pem(), certified.key_pair.serialize_pem(), policy.to_string());
    let process = GatewayProcess::start_with(&body, move |dir: &Path| {
        std::fs::write(dir.join("cert.pem"), cert_pem).expect("cert");
        std::fs::write(dir.join("key.pem"), key_pem).expect("key");
        std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    });
    assert!(
        wait_listening(tls_addr, Duration::from_secs(30)),
        "TLS listener up:\n{}",
        process.log_text()
    );
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .expect("trust the test certificate");
    (platform, TlsGateway { process, tls_addr, roots })
}

/// A TLS client configuration: ring's suites minus `drop_suite`, offering `alpn`.
fn client(roots: &RootCertStore, drop_suite: Option<CipherSuite>, alpn: &[&[u8]]) -> TlsConnector {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| Some(s.suite()) != drop_suite);
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // A resumed session adds the pre_shared_key extension, which JA4 counts: it would
    // be a second fingerprint of the same program. Full handshakes keep this test about
    // configurations only.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    gateway: &TlsGateway,
    connector: &TlsConnector,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gateway.tls_addr).await.expect("tcp connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("TLS handshake with the gateway");
    BufReader::new(tls)
}

/// One HTTP/1.1 POST on an open connection: status and body.
async fn post<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    path: &str,
) -> (u16, String) {
    let req = format!("POST {path} HTTP/1.1\r\nhost: localhost\r\nuser-agent: undici\r\ncontent-length: 2\r\n\r\n{{}}");
    let exchange = async {
        conn.get_mut().write_all(req.as_bytes()).await.expect("write");
        conn.get_mut().flush().await.expect("flush");
        let mut line = String::new();
        conn.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).await.expect("header");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("answer in time")
}

/// The log without ANSI colour sequences (`ESC [ ... m`).
fn plain_log(gateway: &GatewayProcess) -> String {
    let text = gateway.log_text();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The distinct JA4 values the gateway logged, in order of appearance.
fn logged_fingerprints(gateway: &GatewayProcess) -> Vec<String> {
    let mut seen = Vec::new();
    for line in plain_log(gateway).lines().filter(|l| l.contains("TLS client fingerprint")) {
        if let Some(fp) = line.split("ja4=").nth(1).and_then(|r| r.split_whitespace().next()) {
            if !seen.iter().any(|s| s == fp) {
                seen.push(fp.to_string());
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tls_client_configuration_has_its_own_budget() {
    let (platform, gateway) = start(PER_JA4).await;
    let default_h1 = client(&gateway.roots, None, &[b"http/1.1"]);

    // Proxied over TLS: the platform answers, within the burst.
    let mut conn = connect(&gateway, &default_h1).await;
    let (status, body) = post(&mut conn, CHALLENGE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"success\":true"), "the platform's answer: {body}");
    assert_eq!(post(&mut conn, CHALLENGE).await.0, 200);
    assert_eq!(post(&mut conn, CHALLENGE).await.0, 429, "third request of one fingerprint");

    // The same configuration on a new connection shares the budget.
    let mut again = connect(&gateway, &default_h1).await;
    let (status, body) = post(&mut again, CHALLENGE).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("challenge-per-ja4"), "{body}");

    // Other cipher suites, or another ALPN, from the same address: fresh budgets.
    let fewer_ciphers =
        client(&gateway.roots, Some(CipherSuite::TLS13_AES_256_GCM_SHA384), &[b"http/1.1"]);
    let mut other = connect(&gateway, &fewer_ciphers).await;
    let statuses = [
        post(&mut other, CHALLENGE).await.0,
        post(&mut other, CHALLENGE).await.0,
        post(&mut other, CHALLENGE).await.0,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    let no_alpn = client(&gateway.roots, None, &[]);
    let mut third = connect(&gateway, &no_alpn).await;
    assert_eq!(post(&mut third, CHALLENGE).await.0, 200);

    let fps = logged_fingerprints(&gateway.process);
    eprintln!("JA4 seen by the gateway: {fps:?}");
    assert_eq!(fps.len(), 3, "one JA4 per client configuration: {fps:?}");
    assert!(fps.iter().all(|f| f.starts_with("t13d") && f.len() == 36), "{fps:?}");
    assert!(fps[0].contains("h1_") && fps[2].contains("00_"), "ALPN part: {fps:?}");
    assert_ne!(fps[0].split('_').nth(1), fps[1].split('_').nth(1), "cipher hash differs: {fps:?}");

    // Exactly the admitted requests reached the platform: 2 + 2 + 1.
    let seen = platform.platform().request_log().iter().filter(|r| r.path == CHALLENGE).count();
    assert_eq!(seen, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_clients_on_the_tls_port_do_not_disturb_others() {
    let (_platform, gateway) = start(PER_JA4).await;

    // Plain HTTP on the TLS port: refused by the TLS stack, connection closed.
    let mut plain = TcpStream::connect(gateway.tls_addr).await.expect("connect");
    plain.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the gateway closes a non-TLS client");

    // A client that starts a ClientHello and stalls, plus random bytes in records.
    let mut stalled = TcpStream::connect(gateway.tls_addr).await.expect("connect");
    stalled.write_all(&[0x16, 3, 1, 0x02, 0x00, 0x01, 0x00]).await.expect("write");
    let mut junk = TcpStream::connect(gateway.tls_addr).await.expect("connect");
    junk.write_all(&[0x16, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]).await.expect("write");

    // Meanwhile a real client is served at once.
    let mut conn = connect(&gateway, &client(&gateway.roots, None, &[b"http/1.1"])).await;
    assert_eq!(post(&mut conn, CHALLENGE).await.0, 200);

    let mut process = gateway.process;
    assert!(process.child.try_wait().expect("status").is_none(), "the gateway is still running");
    drop((stalled, junk));
    process.signal("TERM");
    assert!(
        process.wait_exit(Duration::from_secs(10)).is_some(),
        "clean exit:\n{}",
        process.log_text()
    );
}
