//! Expiry sweeping and claiming, driven by a manual clock.

mod common;

use std::time::Duration;

use refplatform::{AccountStatus, CleanupReason, PlatformConfig};
use serde_json::{json, Value};

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn sweep_deletes_unclaimed_and_keeps_claimed() {
    let (running, clock) = common::start(PlatformConfig::default()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let platform = running.platform();

    let doomed = common::create_account(&http, &base).await;
    let kept = common::create_account(&http, &base).await;
    let doomed_id = doomed["account"]["id"].as_str().expect("id").to_string();
    let doomed_token = doomed["account"]["apiToken"].as_str().expect("token").to_string();
    let kept_id = kept["account"]["id"].as_str().expect("id").to_string();
    let kept_token = kept["account"]["apiToken"].as_str().expect("token").to_string();

    // Give the doomed account something to remove.
    for (path, body) in [
        ("storage/kv/namespaces", json!({"title": "a"})),
        ("d1/database", json!({"name": "db"})),
        ("queues", json!({"queue_name": "q"})),
        ("hyperdrive/configs", json!({"name": "h", "origin": {"host": "x", "password": "p"}})),
    ] {
        let res = http
            .post(format!("{base}/accounts/{doomed_id}/{path}"))
            .header("authorization", auth(&doomed_token))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200, "{path}");
    }

    // Claim the other one through its claim URL.
    let claim_url = kept["claim"]["url"].as_str().expect("claim url");
    assert!(claim_url.starts_with(&format!("http://{}/claim/", running.addr())));
    let page = http.get(claim_url).send().await.expect("get claim");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("<form"));
    let res =
        http.post(claim_url).header("accept", "application/json").send().await.expect("claim");
    assert_eq!(res.status(), 200);
    // The claim secret is single-use.
    let again = http.post(claim_url).send().await.expect("claim again");
    assert_eq!(again.status(), 404);

    // Before expiry nothing is swept.
    clock.advance(Duration::from_secs(3599));
    assert!(platform.sweep().is_empty());

    clock.advance(Duration::from_secs(2));
    let records = platform.sweep();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.account_id, doomed_id);
    assert_eq!(rec.reason, CleanupReason::Expired);
    assert_eq!(rec.removed.kv_namespaces, 1);
    assert_eq!(rec.removed.d1_databases, 1);
    assert_eq!(rec.removed.queues, 1);
    assert_eq!(rec.removed.hyperdrive_configs, 1);
    assert_eq!(rec.removed.scripts, 0);
    assert_eq!(platform.cleanup_log(), records);
    // A second sweep has nothing more to do.
    assert!(platform.sweep().is_empty());

    // The deleted account's token no longer works; the claimed one does.
    let res = http
        .get(format!("{base}/accounts/{doomed_id}/workers/subdomain"))
        .header("authorization", auth(&doomed_token))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], 10000);
    let res = http
        .get(format!("{base}/accounts/{kept_id}/workers/subdomain"))
        .header("authorization", auth(&kept_token))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);

    let snaps = platform.accounts();
    let status_of = |id: &str| snaps.iter().find(|a| a.id == id).map(|a| a.status);
    assert_eq!(status_of(&doomed_id), Some(AccountStatus::Expired));
    assert_eq!(status_of(&kept_id), Some(AccountStatus::Claimed));
    running.shutdown().await;
}

#[tokio::test]
async fn expired_account_cannot_be_claimed_and_token_fails_before_sweep() {
    let (running, clock) = common::start(PlatformConfig::default()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let acct = common::create_account(&http, &base).await;
    let id = acct["account"]["id"].as_str().expect("id");
    let token = acct["account"]["apiToken"].as_str().expect("token");
    clock.advance(Duration::from_secs(3601));
    let res = http
        .get(format!("{base}/accounts/{id}/workers/subdomain"))
        .header("authorization", auth(token))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 401);
    let res = http.post(acct["claim"]["url"].as_str().expect("url")).send().await.expect("claim");
    assert_eq!(res.status(), 410);
    running.shutdown().await;
}

#[tokio::test]
async fn unknown_claim_secret_is_404() {
    let (running, _clock) = common::start(PlatformConfig::default()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/claim/nope", running.addr());
    assert_eq!(http.get(&url).send().await.expect("get").status(), 404);
    assert_eq!(http.post(&url).send().await.expect("post").status(), 404);
    running.shutdown().await;
}

#[test]
fn in_process_sweep_without_http() {
    let clock = std::sync::Arc::new(refplatform::ManualClock::starting_now());
    let platform = refplatform::Platform::new(PlatformConfig::default(), clock.clone());
    let a = platform.provision_account();
    let b = platform.provision_account();
    let secret = b.claim_url.rsplit('/').next().expect("secret");
    platform.claim(secret).expect("claim");
    clock.advance(Duration::from_secs(7200));
    let recs = platform.sweep();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].account_id, a.account_id);
    assert_eq!(platform.event_log().len(), 2);
}
