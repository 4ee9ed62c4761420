//! Quotas that cannot be dodged, through the real gateway binary in front of the
//! reference platform: concurrent creates, creation answers too large to read, asset
//! manifests that lie, upload-session tokens, chunked and ambiguous bodies, many held
//! bodies at once; and the gateway's counts checked against the platform's own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "quota_integrity/stack.rs"]
mod stack;
use stack::{raw, stack, stack_with, Stack};

const BASE: &str = "/client/v4";
const IP: &str = "198.51.100.90";

/// Quotas below the platform's own limits, so what the platform ends up holding shows
/// whether the gateway held them.
const POLICY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.0/8"]
[quotas]
max_kv_namespaces = 3
max_worker_scripts = 3
max_asset_files = 3
max_body_bytes = 16777216
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_cannot_overshoot_a_quota() {
    let s = Arc::new(stack().await);
    let a = Arc::new(s.create().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (s, a) = (s.clone(), a.clone());
        tasks.spawn(async move {
            s.call(
                reqwest::Method::POST,
                &a,
                "/storage/kv/namespaces",
                json!({"title": format!("ns{i}")}),
            )
            .await
            .0
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(created, 3, "statuses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 9, "{statuses:?}");
    assert_eq!(s.platform_counts(&a).kv_namespaces, 3, "the platform holds no more than the quota");
    let usage = s.admin_get(&format!("/accounts/usage?id={}", a.id)).await;
    assert_eq!(usage["kv_namespaces"], 3, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_creation_answer_is_still_counted() {
    let s = stack().await;
    let a = s.create().await;
    for i in 0..3 {
        // The platform echoes the title: an answer over the gateway's 1 MiB capture.
        let title = format!("{i}{}", "t".repeat(1_100_000));
        let (status, _) = s
            .call(reqwest::Method::POST, &a, "/storage/kv/namespaces", json!({ "title": title }))
            .await;
        assert_eq!(status, 200, "namespace {i}");
    }
    let (status, body) = s
        .call(reqwest::Method::POST, &a, "/storage/kv/namespaces", json!({"title": "small"}))
        .await;
    assert_eq!(status, 403, "the fourth is over the quota of 3: {body}");
    assert_eq!(s.platform_counts(&a).kv_namespaces, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_manifest_cannot_lie_about_sizes() {
    let s = stack().await;
    let a = s.create().await;
    let hash = "0123456789abcdef0123456789abcdef";
    let (status, body) = s.session(&a, &[(hash, 1)]).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["result"]["jwt"].as_str().expect("upload token").to_string();
    let six_mib = vec![b'x'; 6 * 1024 * 1024];
    let (status, body) = s.upload(&a, &jwt, &[(hash, six_mib)]).await;
    assert_eq!(status, 403, "declared 1 byte, uploaded 6 MiB: {body}");
    assert_eq!(
        body["errors"][0]["code"], 973,
        "refused by the gateway's quota, not left to the platform: {body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("declared") || message.contains("asset_file_bytes"), "{message}");
    let counts = s.platform_counts(&a);
    assert_eq!((counts.asset_files, counts.asset_bytes), (0, 0), "nothing reached the platform");
    // The honest upload of the same session passes.
    let (status, body) = s.upload(&a, &jwt, &[(hash, b"y".to_vec())]).await;
    assert_eq!(status, 201, "{body}");
    assert!(!s.gateway.log_text().contains(&jwt), "the upload token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_uploads_are_charged_to_their_account() {
    let s = stack().await;
    let a = s.create().await;
    let h = |i: u8| format!("{:032x}", i);
    let (h1, h2, h3, h4) = (h(1), h(2), h(3), h(4));
    let (status, body) = s.session(&a, &[(&h1, 3), (&h2, 3)]).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["result"]["jwt"].as_str().unwrap().to_string();
    let (status, body) =
        s.upload(&a, &jwt, &[(&h1, b"one".to_vec()), (&h2, b"two".to_vec())]).await;
    assert_eq!(status, 201, "{body}");
    // A second session of two more files passes its own manifest check, but the
    // account then holds 4 files against a quota of 3: its upload is refused.
    let (status, body) = s.session(&a, &[(&h3, 3), (&h4, 3)]).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["result"]["jwt"].as_str().unwrap().to_string();
    let (status, body) =
        s.upload(&a, &jwt, &[(&h3, b"thr".to_vec()), (&h4, b"fou".to_vec())]).await;
    assert_eq!(status, 403, "the account's files accumulate across sessions: {body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or_default().contains("asset_files"),
        "{body}"
    );
    assert_eq!(s.platform_counts(&a).asset_files, 2);
    let usage = s.admin_get(&format!("/accounts/usage?id={}", a.id)).await;
    assert_eq!(
        (usage["asset_files"].as_u64(), usage["stored_bytes"].as_u64()),
        (Some(2), Some(6)),
        "{usage}"
    );
    // One more file still fits.
    let (status, body) = s.upload(&a, &jwt, &[(&h3, b"thr".to_vec())]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.platform_counts(&a).asset_files, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_repeated_content_length_bodies_are_limited() {
    let policy = POLICY.replace("max_body_bytes = 16777216", "max_body_bytes = 1000");
    let s = stack_with(&policy, "").await;
    let a = s.create().await;
    let host = s.gateway.addr;
    let padded = format!("{{\"queue_name\": \"big\"{}}}", " ".repeat(5000));
    let chunked = |path: &str, auth: &str| {
        let mut r = format!(
            "POST {BASE}{path} HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        for piece in padded.as_bytes().chunks(700) {
            r.push_str(&format!("{:x}\r\n{}\r\n", piece.len(), String::from_utf8_lossy(piece)));
        }
        r.push_str("0\r\n\r\n");
        r
    };
    let auth = format!("Authorization: Bearer {}\r\n", a.token);
    let answer = raw(host, chunked(&format!("/accounts/{}/queues", a.id), &auth).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "a chunked body over the limit: {answer}");
    assert!(answer.contains("body_bytes"), "{answer}");
    assert_eq!(s.platform_counts(&a).queues, 0, "never created");
    // On every route, not only an account's resource calls.
    let answer = raw(host, chunked("/provisioning/previews/challenge", "").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    let small = "{\"queue_name\": \"q\"}";
    for framing in [
        format!("Content-Length: {n}, {n}\r\n", n = small.len()),
        format!("Content-Length: {n}\r\nContent-Length: {n}\r\n", n = small.len()),
        "Content-Length: +18\r\n".to_string(),
        format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n", n = small.len()),
        format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n", n = small.len()),
    ] {
        let request = format!(
            "POST {BASE}/accounts/{}/queues HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n{framing}Connection: close\r\n\r\n{small}",
            a.id
        );
        let answer = raw(host, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{framing:?}: {answer}");
    }
    for coding in ["gzip, chunked", "chunked, chunked", "xchunked"] {
        let request = format!(
            "POST {BASE}/accounts/{}/queues HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n{:x}\r\n{small}\r\n0\r\n\r\n",
            a.id,
            small.len()
        );
        let answer = raw(host, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{coding:?}: {answer}");
    }
    assert_eq!(s.platform_counts(&a).queues, 0, "none was forwarded");
}

/// Held bytes as the admin listener reports them.
async fn held(s: &Stack) -> u64 {
    s.admin_get("/stats").await["held_body_bytes"]["held"].as_u64().unwrap_or(0)
}

/// The gateway's (debug) log line for a request's return of `bytes` held bytes.
fn given_back(bytes: usize) -> String {
    format!("held request body bytes given back bytes={bytes} ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bodies_are_bounded_across_requests() {
    let s = stack_with(POLICY, "max_held_body_bytes = 100000").await;
    let a = s.create().await;
    let total = 80_000usize;
    let manifest = "{\"manifest\": {\"/a.txt\": {\"hash\": \"00000000000000000000000000000001\", \"size\": 1}}}";
    let body = format!("{manifest}{}", " ".repeat(total - manifest.len()));
    let head_for = |total: usize| {
        format!(
            "POST {BASE}/accounts/{}/workers/scripts/site/assets-upload-session HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n",
            a.id, a.token
        )
    };
    let head = head_for(total);
    // The first request holds 70,000 bytes and waits with the rest unsent.
    let mut first = TcpStream::connect(s.gateway.addr).await.unwrap();
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&body.as_bytes()[..70_000]).await.unwrap();
    // The gateway logs every change of the held total: wait for it to hold all 70,000.
    s.gateway.wait_for_log("held=70000");
    assert_eq!(held(&s).await, 70_000);
    // A second would hold 70,000 more: over the gateway-wide 100,000.
    let mut second = head.clone().into_bytes();
    second.extend_from_slice(&body.as_bytes()[..70_000]);
    let answer = raw(s.gateway.addr, &second).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}\n{}", s.gateway.log_text());
    assert!(answer.to_ascii_lowercase().contains("retry-after: 5"), "{answer}");
    // The first completes; its bytes are given back, and the next request fits.
    first.write_all(&body.as_bytes()[70_000..]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), first.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Its 80,000 bytes are given back when the request ends, just after its answer.
    s.gateway.wait_for_log(&given_back(total));
    // A third, of another size so its return is told apart, fits again and gives back.
    let third_total = 60_000;
    let mut third = head_for(third_total).into_bytes();
    third.extend_from_slice(&body.as_bytes()[..third_total]);
    let answer = raw(s.gateway.addr, &third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s.gateway.wait_for_log(&given_back(third_total));
    assert_eq!(held(&s).await, 0, "every request gave its bytes back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_platform_counts_agree() {
    let s = stack().await;
    let a = s.create().await;
    let post = |path: &'static str, body: Value| {
        let s = &s;
        let a = &a;
        async move { s.call(reqwest::Method::POST, a, path, body).await }
    };
    let mut kv_ids = Vec::new();
    for i in 0..4 {
        let (status, body) =
            post("/storage/kv/namespaces", json!({"title": format!("kv{i}")})).await;
        if status == 200 {
            kv_ids.push(body["result"]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kv_ids.len(), 3, "the fourth is over the quota");
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &a,
            &format!("/storage/kv/namespaces/{}", kv_ids[0]),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    for i in 0..3 {
        assert_eq!(post("/queues", json!({"queue_name": format!("q{i}")})).await.0, 200);
    }
    assert_eq!(post("/d1/database", json!({"name": "db"})).await.0, 200);
    assert_eq!(post("/d1/database", json!({"name": "db2"})).await.0, 403, "one D1 database");
    for i in 0..3 {
        let (status, _) = post(
            "/hyperdrive/configs",
            json!({"name": format!("h{i}"), "origin": {"host": "db.example.test", "port": 5432}}),
        )
        .await;
        assert_eq!(status, if i < 2 { 200 } else { 403 }, "hyperdrive {i}");
    }
    for name in ["w1", "w2", "w1", "w3", "w4"] {
        s.put_script(&a, name).await;
    }
    let (status, _) = s.call(reqwest::Method::DELETE, &a, "/workers/scripts/w2", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(s.put_script(&a, "w5").await, 200, "a deleted script gave its place back");
    let (status, body) = s.session(&a, &[(&format!("{:032x}", 7), 4)]).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["result"]["jwt"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&a, &jwt, &[(&format!("{:032x}", 7), b"file".to_vec())]).await.0, 201);

    let gateway = s.admin_get(&format!("/accounts/usage?id={}", a.id)).await;
    let platform = s.platform_counts(&a);
    let pairs = [
        ("worker_scripts", platform.scripts),
        ("kv_namespaces", platform.kv_namespaces),
        ("d1_databases", platform.d1_databases),
        ("queues", platform.queues),
        ("hyperdrive_configs", platform.hyperdrive_configs),
        ("asset_files", platform.asset_files),
        ("stored_bytes", platform.asset_bytes),
    ];
    for (field, on_platform) in pairs {
        assert_eq!(
            gateway[field].as_u64(),
            Some(on_platform),
            "{field}: gateway {gateway}, platform {platform:?}"
        );
    }
    assert_eq!(
        (platform.scripts, platform.kv_namespaces, platform.queues, platform.hyperdrive_configs),
        (3, 2, 3, 2)
    );
}
