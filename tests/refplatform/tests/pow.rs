//! Proof-of-work over HTTP: right, wrong, reused and expired solutions.

mod common;

use std::time::Duration;

use refplatform::pow::{self, Challenge};
use refplatform::PlatformConfig;
use serde_json::{json, Value};

async fn challenge(http: &reqwest::Client, base: &str) -> Challenge {
    let v: Value = http
        .post(format!("{base}/provisioning/previews/challenge"))
        .body("{}")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["success"], true);
    serde_json::from_value(v["result"].clone()).expect("shape")
}

async fn submit(http: &reqwest::Client, base: &str, token: &str, cps: Value) -> (u16, Value) {
    let res = http
        .post(format!("{base}/provisioning/previews"))
        .json(&json!({
            "termsOfService": "https://www.cloudflare.com/terms/",
            "privacyPolicy": "https://www.cloudflare.com/privacypolicy/",
            "acceptTermsOfService": "yes",
            "challengeToken": token,
            "solution": {"checkpoints": cps},
        }))
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

fn code(v: &Value) -> u64 {
    v["errors"][0]["code"].as_u64().unwrap_or(0)
}

fn config() -> PlatformConfig {
    PlatformConfig {
        pow_k: 4,
        pow_g: 8,
        pow_spot_checks: 10,
        challenge_ttl: Duration::from_secs(300),
        ..PlatformConfig::default()
    }
}

#[tokio::test]
async fn challenge_has_wrangler_compatible_shape() {
    let (running, _clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let c = challenge(&http, &running.api_base_url()).await;
    assert_eq!((c.k, c.g), (4, 8));
    assert_eq!(c.seed_bytes().expect("seed").len(), 32);
    assert!(!c.challenge_token.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn correct_solution_accepted_in_both_encodings() {
    let (running, _clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let c = challenge(&http, &base).await;
    let cps = c.solve().expect("solve");
    let (status, body) =
        submit(&http, &base, &c.challenge_token, json!(pow::encode_checkpoints(&cps))).await;
    assert_eq!(status, 200, "{body}");
    let id = body["result"]["account"]["id"].as_str().expect("id");
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let c = challenge(&http, &base).await;
    let cps = c.solve().expect("solve");
    let (status, _) =
        submit(&http, &base, &c.challenge_token, json!(pow::encode_checkpoints_list(&cps))).await;
    assert_eq!(status, 200);
    running.shutdown().await;
}

#[tokio::test]
async fn wrong_solution_rejected() {
    let (running, _clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let c = challenge(&http, &base).await;
    let mut cps = c.solve().expect("solve");
    cps[2][5] ^= 0xff;
    let (status, body) =
        submit(&http, &base, &c.challenge_token, json!(pow::encode_checkpoints(&cps))).await;
    assert_eq!(status, 403);
    assert_eq!(code(&body), 1024);
    assert_eq!(body["success"], false);
    assert!(running.platform().accounts().is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn reused_token_rejected() {
    let (running, _clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let c = challenge(&http, &base).await;
    let cps = json!(pow::encode_checkpoints(&c.solve().expect("solve")));
    let (status, _) = submit(&http, &base, &c.challenge_token, cps.clone()).await;
    assert_eq!(status, 200);
    let (status, body) = submit(&http, &base, &c.challenge_token, cps).await;
    assert_eq!(status, 409);
    assert_eq!(code(&body), 1022);
    running.shutdown().await;
}

#[tokio::test]
async fn expired_and_unknown_tokens_rejected() {
    let (running, clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let c = challenge(&http, &base).await;
    let cps = json!(pow::encode_checkpoints(&c.solve().expect("solve")));
    clock.advance(Duration::from_secs(301));
    let (status, body) = submit(&http, &base, &c.challenge_token, cps.clone()).await;
    assert_eq!(status, 410);
    assert_eq!(code(&body), 1023);

    let (status, body) = submit(&http, &base, "never-issued", cps).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), 1021);
    running.shutdown().await;
}

#[tokio::test]
async fn terms_must_be_accepted() {
    let (running, _clock) = common::start(config()).await;
    let http = reqwest::Client::new();
    let base = running.api_base_url();
    let c = challenge(&http, &base).await;
    let res = http
        .post(format!("{base}/provisioning/previews"))
        .json(&json!({"acceptTermsOfService": "no", "challengeToken": c.challenge_token,
                      "solution": {"checkpoints": pow::encode_checkpoints(&c.solve().expect("solve"))}}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(code(&body), u64::from(refplatform::CODE_TERMS_NOT_ACCEPTED));
    running.shutdown().await;
}

#[test]
fn library_verifier_spot_checks() {
    let seed = [1u8; 32];
    let cps = pow::solve(&seed, 8, 16);
    let mut rng = rand::thread_rng();
    assert!(pow::verify(&seed, 8, 16, &cps, 3, &mut rng).is_ok());
    // Wrong start and wrong length are always caught, whatever the sample.
    let mut bad = cps.clone();
    bad[0][0] ^= 1;
    assert!(pow::verify(&seed, 8, 16, &bad, 0, &mut rng).is_err());
    assert!(pow::verify(&seed, 8, 16, &cps[..8], 3, &mut rng).is_err());
}
