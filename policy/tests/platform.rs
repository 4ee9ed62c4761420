//! The platform contract: route defaults, resource classification following `[routes]`,
//! creation answers, events, status answers and the v4 envelope.

use policy::platform::{
    self, codes, error_body, rfc3339_to_unix, CreateBody, CreatedAccount, PlatformEvent,
    RemovedCounts, StatusAnswer,
};
use policy::quota::{ResourceCounts, ResourceKind, ResourceOp};
use policy::{compile_str, RouteClass};

#[test]
fn default_routes_are_the_platform_paths() {
    let p = compile_str("p.toml", "version = 1\n").expect("compiles");
    assert_eq!(
        p.classify("POST", "/client/v4/provisioning/previews/challenge"),
        RouteClass::ProvisionChallenge
    );
    assert_eq!(p.classify("POST", "/client/v4/provisioning/previews"), RouteClass::ProvisionCreate);
    assert_eq!(
        p.classify("PUT", "/client/v4/accounts/a/workers/scripts/w"),
        RouteClass::DeployWrite
    );
    assert_eq!(platform::default_route_patterns(RouteClass::Other), &[] as &[&str]);
}

#[test]
fn classification_with_default_routes_accepts_the_path_with_and_without_the_api_base() {
    let p = compile_str("p.toml", "version = 1\n").expect("compiles");
    for path in ["/client/v4/accounts/acc/queues", "/accounts/acc/queues?x=1"] {
        let c = p.classify_resource("post", path);
        assert_eq!(c.account_id.as_deref(), Some("acc"), "{path}");
        assert_eq!(c.op, ResourceOp::Create { kind: ResourceKind::Queue, name: None });
        assert_eq!(c, policy::platform::classify_default("POST", path));
    }
    assert_eq!(p.classify_resource("GET", "/client/v4/zones/z").op, ResourceOp::Other);
    let c = p.classify_resource("DELETE", "/client/v4/accounts/acc/workers/scripts/my%2Dworker");
    assert_eq!(
        c.op,
        ResourceOp::Delete { kind: ResourceKind::WorkerScript, id: "my-worker".into() }
    );
}

#[test]
fn resources_are_classified_as_a_normalising_upstream_would_serve_them() {
    let p = compile_str("p.toml", "version = 1\n").expect("valid");
    let script = |name: &str| ResourceOp::Create {
        kind: ResourceKind::WorkerScript,
        name: Some(name.into()),
    };
    for path in [
        "/client/v4/accounts/acc/workers%2Fscripts%2FMy-Worker",
        "/client/v4/accounts/acc/Workers/SCRIPTS/My-Worker",
        "/client/v4/accounts/acc/workers/scripts/My-Worker;x=1",
    ] {
        assert_eq!(p.classify_resource("PUT", path).op, script("My-Worker"), "{path}");
    }
    assert_eq!(
        p.classify("PUT", "/client/v4/%61ccounts/acc/workers/scripts/w"),
        RouteClass::DeployWrite
    );
    assert_eq!(p.classify("POST", "/client/v4/PROVISIONING/previews"), RouteClass::ProvisionCreate);
}

#[test]
fn classification_follows_a_routes_override_of_the_account_api_prefix() {
    let src = r#"version = 1
[routes]
"deploy-write" = ["PUT /api/*/accounts/**", "POST /api/*/accounts/**", "DELETE /api/*/accounts/**"]
"deploy-read" = ["GET /api/*/accounts/**"]
"#;
    let p = compile_str("p.toml", src).expect("compiles");
    let c = p.classify_resource("POST", "/api/v9/accounts/acc/d1/database");
    assert_eq!(c.account_id.as_deref(), Some("acc"));
    assert_eq!(c.op, ResourceOp::Create { kind: ResourceKind::D1Database, name: None });
    let old = p.classify_resource("POST", "/client/v4/accounts/acc/d1/database");
    assert_eq!(
        (old.account_id, old.op),
        (None, ResourceOp::Other),
        "the old prefix no longer is the account API"
    );
    assert_eq!(
        policy::platform::classify_default("POST", "/api/v9/accounts/acc/d1/database").op,
        ResourceOp::Other
    );
}

#[test]
fn created_ids_and_manifests_are_read_from_the_platform_answers() {
    assert_eq!(
        platform::created_id(ResourceKind::D1Database, br#"{"result":{"uuid":"u1"}}"#).as_deref(),
        Some("u1")
    );
    assert_eq!(
        platform::created_id(ResourceKind::Queue, br#"{"queue_id":"q1"}"#).as_deref(),
        Some("q1")
    );
    assert_eq!(platform::created_id(ResourceKind::WorkerScript, br#"{"result":{"id":"x"}}"#), None);
    let m = platform::parse_asset_manifest(
        br#"{"manifest":{"/a":{"hash":"h","size":3},"/b":{"hash":"h","size":5}}}"#,
    )
    .expect("manifest");
    assert_eq!((m.files, m.max_file_size, m.total_bytes), (2, 5, 8));
    assert!(platform::parse_asset_manifest(br#"{"manifest":{"/a":{"size":-1}}}"#).is_err());
}

#[test]
fn the_created_account_is_parsed_and_its_token_never_printed() {
    let answer = br#"{"success":true,"result":{"account":{"id":"acct-1","apiToken":"secret-token","expiresAt":"1970-01-01T01:00:00Z"}}}"#;
    let a = CreatedAccount::parse(answer).expect("account");
    assert_eq!(
        (a.id.as_str(), a.api_token.as_str(), a.expires_at),
        ("acct-1", "secret-token", Some(3600))
    );
    assert!(!format!("{a:?}").contains("secret-token"));
    let no_expiry = br#"{"result":{"account":{"id":"a","apiToken":"t"}}}"#;
    assert_eq!(CreatedAccount::parse(no_expiry).expect("account").expires_at_or(100), 3700);
    assert!(CreatedAccount::parse(br#"{"result":{"account":{"id":"a"}}}"#).is_none());
    assert!(CreatedAccount::parse(b"not json").is_none());
}

#[test]
fn rfc3339_times_become_unix_seconds() {
    assert_eq!(rfc3339_to_unix("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(rfc3339_to_unix("2024-02-29T12:30:15.250Z"), Some(1_709_209_815));
    assert_eq!(rfc3339_to_unix("2024-02-29T14:30:15+02:00"), Some(1_709_209_815));
    assert_eq!(rfc3339_to_unix("1969-12-31T23:59:59Z"), Some(0));
    for bad in [
        "",
        "2024-13-01T00:00:00Z",
        "2024-01-01 00:00",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+0200",
    ] {
        assert_eq!(rfc3339_to_unix(bad), None, "{bad}");
    }
}

#[test]
fn events_deserialize_and_removed_counts_become_resource_counts() {
    let e: PlatformEvent = serde_json::from_str(
        r#"{"type":"expired","account_id":"a","at":"1970-01-01T00:01:00Z","removed":{"scripts":2,"asset_bytes":5,"d1_bytes":7}}"#,
    )
    .expect("event");
    assert_eq!((e.kind.as_str(), e.at_unix()), ("expired", Some(60)));
    let counts = ResourceCounts::from(e.removed.expect("removed"));
    assert_eq!((counts.worker_scripts, counts.stored_bytes), (2, 12));
    let bare: PlatformEvent =
        serde_json::from_str(r#"{"type":"claimed","account_id":"b"}"#).expect("event");
    assert!(bare.at.is_none() && bare.removed.is_none() && bare.at_unix().is_none());
    assert_eq!(ResourceCounts::from(RemovedCounts::default()), ResourceCounts::default());
}

#[test]
fn status_answers_map_to_events() {
    let live = StatusAnswer::parse(br#"{"result":{"status":"live","resources":{"queues":1}}}"#)
        .expect("status");
    assert!(live.is_live());
    assert_eq!(live.removed.expect("resources").queues, 1);
    let gone = StatusAnswer::parse(
        br#"{"result":{"status":"expired","removed":{"scripts":1},"resources":{"scripts":9}}}"#,
    )
    .expect("status")
    .into_event("a");
    assert_eq!((gone.kind.as_str(), gone.account_id.as_str()), ("expired", "a"));
    assert_eq!(gone.removed.expect("removed").scripts, 1, "removed wins over resources");
    let deleted = StatusAnswer::not_found().into_event("a");
    assert_eq!(deleted.kind, "deleted");
    assert!(StatusAnswer::parse(br#"{"result":{}}"#).is_none());
}

#[test]
fn the_create_body_keeps_the_client_form_of_the_checkpoints() {
    let cps = policy::pow::solve(b"seed", 2, 1);
    let body =
        serde_json::json!({"challengeToken": "t", "solution": {"checkpoints": cps}, "name": "x"});
    let parsed = CreateBody::parse(body.to_string().as_bytes()).expect("json");
    assert_eq!(parsed.challenge_token(), Some("t"));
    let (read, concatenated) = parsed.checkpoints().expect("checkpoints");
    assert_eq!((read.len(), concatenated), (3, false));
    let out = parsed.with_checkpoints(&read[..2], true).expect("body");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert!(v["solution"]["checkpoints"].is_string());
    assert_eq!(v["name"], "x");
    let again = CreateBody::parse(&out).expect("json");
    assert_eq!(again.checkpoints().expect("checkpoints"), (read[..2].to_vec(), true));
    assert!(CreateBody::parse(b"{").is_err());
}

#[test]
fn the_envelope_is_v4_shaped_and_escapes() {
    let body = error_body(codes::RATE_LIMITED, "wait \"60\" s");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["success"], false);
    assert_eq!(v["errors"][0]["code"], 971);
    assert_eq!(v["errors"][0]["message"], "wait \"60\" s");
    assert!(v["result"].is_null());
    assert_eq!(v["messages"], serde_json::json!([]));
}
