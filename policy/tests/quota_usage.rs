//! Per-account resource quotas: classification, check before forwarding, commit on 2xx.

mod common;

use common::{errors_of, policy_with};
use policy::platform::{classify_default as classify, created_id, parse_asset_manifest};
use policy::quota::{
    AccountUsage, AssetManifest, QuotaSpec, Reservation, ResourceKind, ResourceOp,
};

const ACC: &str = "0123456789abcdef0123456789abcdef";

fn path(rest: &str) -> String {
    format!("/client/v4/accounts/{ACC}/{rest}")
}

fn manifest(files: usize, size: u64) -> Vec<u8> {
    let entries: Vec<String> = (0..files)
        .map(|i| format!("\"/f{i}.txt\": {{\"hash\": \"{i:032x}\", \"size\": {size}}}"))
        .collect();
    format!("{{\"manifest\": {{{}}}}}", entries.join(",")).into_bytes()
}

#[test]
fn classifies_deploy_api_calls() {
    let c = classify(
        "PUT",
        &path("workers/scripts/my-worker?excludeScript=true&bindings_inherit=strict"),
    );
    assert_eq!(c.account_id.as_deref(), Some(ACC));
    assert_eq!(
        c.op,
        ResourceOp::Create { kind: ResourceKind::WorkerScript, name: Some("my-worker".into()) }
    );
    assert_eq!(classify("put", &path("workers/scripts/my%2Dworker")).op, c.op, "percent-decoded");
    let cases = [
        (
            "POST",
            "storage/kv/namespaces",
            ResourceOp::Create { kind: ResourceKind::KvNamespace, name: None },
        ),
        (
            "DELETE",
            "storage/kv/namespaces/ns1",
            ResourceOp::Delete { kind: ResourceKind::KvNamespace, id: "ns1".into() },
        ),
        ("POST", "d1/database", ResourceOp::Create { kind: ResourceKind::D1Database, name: None }),
        (
            "DELETE",
            "d1/database/db1/",
            ResourceOp::Delete { kind: ResourceKind::D1Database, id: "db1".into() },
        ),
        ("POST", "queues", ResourceOp::Create { kind: ResourceKind::Queue, name: None }),
        ("DELETE", "queues/q1", ResourceOp::Delete { kind: ResourceKind::Queue, id: "q1".into() }),
        (
            "POST",
            "hyperdrive/configs",
            ResourceOp::Create { kind: ResourceKind::HyperdriveConfig, name: None },
        ),
        (
            "DELETE",
            "hyperdrive/configs/h1",
            ResourceOp::Delete { kind: ResourceKind::HyperdriveConfig, id: "h1".into() },
        ),
        (
            "DELETE",
            "workers/scripts/w",
            ResourceOp::Delete { kind: ResourceKind::WorkerScript, id: "w".into() },
        ),
        ("POST", "workers/assets/upload?base64=true", ResourceOp::AssetFiles),
        ("GET", "workers/scripts/w/settings", ResourceOp::Other),
        ("POST", "workers/scripts/w/versions", ResourceOp::Other),
        ("PUT", "storage/kv/namespaces/ns1/values/k", ResourceOp::Other),
        ("POST", "d1/database/db1/query", ResourceOp::Other),
    ];
    for (m, p, want) in cases {
        assert_eq!(classify(m, &path(p)).op, want, "{m} {p}");
    }
    // Without the /client/v4 prefix too.
    assert_eq!(
        classify("POST", &format!("/accounts/{ACC}/queues")).op,
        ResourceOp::Create { kind: ResourceKind::Queue, name: None }
    );
    assert_eq!(classify("POST", "/client/v4/provisioning/previews").account_id, None);
    let mut c = classify("POST", &path("workers/scripts/w/assets-upload-session"));
    assert!(c.needs_body());
    c.attach_manifest(parse_asset_manifest(&manifest(3, 10)).expect("manifest"));
    assert_eq!(
        c.op,
        ResourceOp::AssetUpload {
            script: "w".into(),
            manifest: Some(AssetManifest { files: 3, max_file_size: 10, total_bytes: 30 })
        }
    );
    assert!(parse_asset_manifest(b"{\"manifest\": {\"/a\": {\"hash\": \"x\"}}}").is_err());
    assert!(parse_asset_manifest(b"not json").is_err());
}

#[test]
fn refuses_the_eleventh_queue_and_deletes_give_quota_back() {
    let spec = QuotaSpec::default();
    let mut u = AccountUsage::new();
    let create = classify("POST", &path("queues")).op;
    for i in 0..10 {
        u.check(&spec, &create).expect("room");
        u.commit(&create, Some(&format!("q{i}")));
    }
    let r = u.check(&spec, &create).expect_err("11th queue");
    assert_eq!((r.quota.as_str(), r.limit, r.current), ("queues", 10, 10));
    assert_eq!(
        r.message,
        "Quota \"queues\" reached: a temporary account may have at most 10 Queues (it has 10). \
         Delete one or claim the account to lift temporary-account limits."
    );
    // Unknown ids and repeated deletes do nothing.
    u.commit(&classify("DELETE", &path("queues/nope")).op, None);
    assert_eq!(u.count(ResourceKind::Queue), 10);
    let del = classify("DELETE", &path("queues/q3")).op;
    u.check(&spec, &del).expect("deletes always pass");
    u.commit(&del, None);
    u.commit(&del, None);
    assert_eq!(u.count(ResourceKind::Queue), 9);
    u.check(&spec, &create).expect("room again");
}

#[test]
fn one_d1_database_and_counts_move_only_on_commit() {
    let spec = QuotaSpec::default();
    let mut u = AccountUsage::new();
    let create = classify("POST", &path("d1/database")).op;
    // Checked many times (e.g. upstream answered 4xx/5xx, never committed): no count moves.
    for _ in 0..5 {
        u.check(&spec, &create).expect("not committed yet");
    }
    assert_eq!(u.count(ResourceKind::D1Database), 0);
    let answer = br#"{"success": true, "errors": [], "messages": [], "result": {"uuid": "db-1", "name": "x"}}"#;
    let id = created_id(ResourceKind::D1Database, answer);
    assert_eq!(id.as_deref(), Some("db-1"));
    u.commit(&create, id.as_deref());
    let r = u.check(&spec, &create).expect_err("2nd D1");
    assert_eq!((r.quota.as_str(), r.limit, r.current), ("d1_databases", 1, 1));
    u.commit(&classify("DELETE", &path("d1/database/db-1")).op, None);
    u.check(&spec, &create).expect("deleted, room again");
}

#[test]
fn asset_uploads_are_bounded_in_files_and_size() {
    let spec = QuotaSpec::default();
    let mut u = AccountUsage::new();
    let session = |body: &[u8]| {
        let mut c = classify("POST", &path("workers/scripts/site/assets-upload-session"));
        c.attach_manifest(parse_asset_manifest(body).expect("manifest"));
        c.op
    };
    let ok = session(&manifest(1000, 5 * 1024 * 1024));
    u.check(&spec, &ok).expect("1,000 files of 5 MiB is allowed");
    let r = u.check(&spec, &session(&manifest(1001, 1))).expect_err("1,001st asset");
    assert_eq!((r.quota.as_str(), r.limit, r.current), ("asset_files", 1000, 1001));
    let r = u.check(&spec, &session(&manifest(2, 5 * 1024 * 1024 + 1))).expect_err("too large");
    assert_eq!(r.quota, "asset_file_bytes");
    // An unread manifest fails closed.
    let unread = classify("POST", &path("workers/scripts/site/assets-upload-session")).op;
    assert!(u.check(&spec, &unread).is_err());
    // A session counts no file: files count when they are uploaded, by content hash
    // over the whole account, as the platform counts them; deleting the script keeps
    // them (the platform keeps them too).
    u.commit(&ok, None);
    assert_eq!(u.counts().asset_files, 0);
    let mut upload = Reservation::default();
    for i in 0..3 {
        u.reserve_asset_file(&spec, &mut upload, &format!("h{i}"), 2_000_000).expect("room");
    }
    u.settle(upload, &ResourceOp::AssetFiles, None);
    assert_eq!((u.counts().asset_files, u.counts().stored_bytes), (3, 6_000_000));
    u.commit(&classify("DELETE", &path("workers/scripts/site")).op, None);
    assert_eq!(u.counts().asset_files, 3);
}

#[test]
fn script_updates_are_not_creates() {
    let spec = QuotaSpec { max_worker_scripts: 1, ..QuotaSpec::default() };
    let mut u = AccountUsage::new();
    let put = classify("PUT", &path("workers/scripts/a")).op;
    u.check(&spec, &put).expect("first");
    u.commit(&put, None);
    u.check(&spec, &put).expect("redeploy of the same script");
    let r =
        u.check(&spec, &classify("PUT", &path("workers/scripts/b")).op).expect_err("second script");
    assert_eq!(r.quota, "worker_scripts");
    // A create answer without a readable id still counts.
    let kv = classify("POST", &path("storage/kv/namespaces")).op;
    u.commit(&kv, created_id(ResourceKind::KvNamespace, b"garbage").as_deref());
    assert_eq!(u.count(ResourceKind::KvNamespace), 1);
}

#[test]
fn body_size_cap() {
    let spec = QuotaSpec::default();
    spec.check_body_size(64 * 1024 * 1024).expect("at the cap");
    let r = spec.check_body_size(64 * 1024 * 1024 + 1).expect_err("over");
    assert_eq!(r.quota, "body_bytes");
}

#[test]
fn quotas_section_compiles_with_defaults_and_located_errors() {
    assert_eq!(policy_with("").quotas(), &QuotaSpec::default());
    let p = policy_with("[quotas]\nmax_queues = 3\nmax_body_bytes = 1000\n");
    let q = p.quotas();
    assert_eq!((q.max_queues, q.max_body_bytes, q.max_d1_databases), (3, 1000, 1));
    assert_eq!(
        errors_of("[quotas]\nmax_queus = 3\n"),
        "p.toml:3:1: unknown field \"max_queus\", expected one of \"max_worker_scripts\", \"max_kv_namespaces\", \"max_d1_databases\", \"max_queues\", \"max_hyperdrive_configs\", \"max_asset_files\", \"max_asset_file_bytes\", \"max_body_bytes\"; did you mean \"max_queues\"?"
    );
    assert_eq!(
        errors_of("[quotas]\nmax_queues = 11\nmax_body_bytes = 0\n"),
        "p.toml:3:14: max_queues = 11 is above the platform's published limit of 10 for temporary accounts; the platform would refuse the extra ones anyway (use at most 10)\n\
         p.toml:4:18: max_body_bytes must be greater than 0"
    );
}
