//! `quota-evader`: one account that tries to end up above the policy's
//! quotas by ways a quota counter can miss:
//!
//! * **concurrent creates**: many creates at once, so that a gateway that
//!   counts a resource only when its answer comes back lets them all pass;
//! * **oversized answers**: KV namespaces with long titles, whose answers
//!   are too large for a gateway that only learns from small answers;
//! * **lying manifests**: an asset manifest that declares a file smaller
//!   than it is, and the file set split over two upload sessions;
//! * **chunked bodies** over `max_body_bytes` (no `Content-Length` to
//!   refuse up front);
//! * **`Content-Length: N, N`**: a create with a repeated length, which a
//!   parser may read differently from the platform's.
//!
//! The check compares what the platform says the account holds against
//! the quotas; the agent only counts what it was told.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::raw::{self, Framing, RawRequest};
use crate::agent_ctx::AgentCtx;
use crate::protocol::{Body, Call, Identity, Part};
use crate::stats::GroupStats;
use crate::wrangler::{Account, Session};

/// Findings: accounts the evasions got (they need [`ACCOUNTS_NEEDED`]).
pub const ACCOUNTS: &str = "evader_accounts";
/// Accounts the four evasions need, one each.
pub const ACCOUNTS_NEEDED: u64 = 4;
/// Creates sent concurrently.
pub const CONCURRENT: &str = "evader_concurrent_creates";
/// Concurrent creates the target accepted.
pub const CONCURRENT_OK: &str = "evader_concurrent_accepted";
/// Long-title KV creates the target accepted.
pub const LONG_TITLES_OK: &str = "evader_long_titles_accepted";
/// Bodies over `max_body_bytes` the target answered with success.
pub const OVERSIZED_OK: &str = "evader_oversized_bodies_accepted";
/// Oversized bodies sent.
pub const OVERSIZED: &str = "evader_oversized_bodies_sent";
/// `Content-Length: N, N` creates the target accepted.
pub const DOUBLED_OK: &str = "evader_doubled_length_accepted";
/// Under-declared asset files the target accepted.
pub const LYING_OK: &str = "evader_lying_manifest_accepted";

/// Title length of the oversized answers.
const LONG_TITLE: usize = 256 * 1024;
/// The published per-file asset limit (no policy may allow more).
const PUBLISHED_ASSET_FILE_BYTES: usize = 5 * 1024 * 1024;
/// A body larger than any `max_body_bytes` the shipped policies allow.
const OVERSIZED_BODY: usize = 65 * 1024 * 1024;

/// Send `n` JSON creates to `path` at once; returns how many succeeded.
async fn concurrent(
    ctx: &AgentCtx,
    acct: &Account,
    ident: &Identity,
    path: &str,
    n: u32,
    body: impl Fn(u32) -> Value,
) -> u64 {
    let group = ctx.api.group().clone();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let Ok(url) = ctx.api.url(&format!("accounts/{}/{path}", acct.id)) else { return 0 };
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Json(body(i)),
            provisioning: false,
            bearer: Some(acct.token().to_string()),
        };
        let mut api = ctx.api.beside(group.clone(), 1);
        let ident = ident.clone();
        tasks.spawn(async move { api.send(&ident, &call).await.map(|r| r.status.is_success()) });
    }
    group.add_finding(CONCURRENT, u64::from(n));
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        if matches!(r, Ok(Ok(true))) {
            ok += 1;
        }
    }
    group.add_finding(CONCURRENT_OK, ok);
    ok
}

/// A fresh account from `addr` for one evasion: each evasion gets its own,
/// so the per-account write limits (which hold a single account to a few
/// dozen writes) do not end the attack before the quotas are reached.
async fn account(ctx: &mut AgentCtx, addr: std::net::IpAddr) -> Option<Account> {
    let pow = ctx.pow.clone();
    let mut session = Session {
        api: &mut ctx.api,
        ident: Identity::wrangler(Some(addr)),
        honour_retry_after: false,
        retry_delay: ctx.behaviour.retry_delay,
    };
    session.provision(&pow).await.ok()
}

/// The agent's `n`-th address: its own, then the next hosts of its /24.
fn address(base: std::net::IpAddr, n: u8) -> std::net::IpAddr {
    match base {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3].wrapping_add(n)))
        }
        v6 => v6,
    }
}

/// Run every evasion, each on an account of its own.
pub async fn run(ctx: &mut AgentCtx) -> u32 {
    let group = ctx.api.group().clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let base = ctx.behaviour.addressing.address(ctx.index, &mut rng);
    if let Some(net) = crate::archetype::ipv4_24(base) {
        group.note_network(net);
    }
    let script = format!("{}-{}", group.label, ctx.index);
    let mut got = 0u32;

    // Oversized answers first, so a gateway that failed to count them lets
    // the ordinary creates after them through.
    let addr = address(base, 0);
    let mut deployed = 0;
    GroupStats::bump(&group.deploys_attempted);
    if let Some(mut acct) = account(ctx, addr).await {
        got += 1;
        let mut session = Session {
            api: &mut ctx.api,
            ident: Identity::wrangler(Some(addr)),
            honour_retry_after: false,
            retry_delay: ctx.behaviour.retry_delay,
        };
        if session.deploy(&mut acct, &script, json!([])).await.is_ok() {
            GroupStats::bump(&group.deploys_completed);
            deployed = 1;
        }
        for n in 0..15 {
            let title = if n < 10 {
                format!("{script}-{n}-{}", "t".repeat(LONG_TITLE))
            } else {
                format!("{script}-kv-{n}")
            };
            let body = json!({"title": title});
            let ok = session
                .create_resource(&acct, "create kv", "storage/kv/namespaces", body)
                .await
                .is_ok();
            if ok && n < 10 {
                group.add_finding(LONG_TITLES_OK, 1);
            }
        }
    }

    // Concurrent creates against the D1, queue and KV quotas.
    let addr = address(base, 1);
    if let Some(acct) = account(ctx, addr).await {
        got += 1;
        let ident = Identity::wrangler(Some(addr));
        concurrent(
            ctx,
            &acct,
            &ident,
            "d1/database",
            5,
            |i| json!({"name": format!("{script}-db-{i}")}),
        )
        .await;
        concurrent(
            ctx,
            &acct,
            &ident,
            "queues",
            13,
            |i| json!({"queue_name": format!("{script}-q-{i}")}),
        )
        .await;
        concurrent(
            ctx,
            &acct,
            &ident,
            "storage/kv/namespaces",
            12,
            |i| json!({"title": format!("{script}-kv-{i}")}),
        )
        .await;
    }

    // `Content-Length: N, N` once the quota is reached: a D1 database after
    // the one allowed.
    let addr = address(base, 2);
    if let Some(acct) = account(ctx, addr).await {
        got += 1;
        let mut session = Session {
            api: &mut ctx.api,
            ident: Identity::wrangler(Some(addr)),
            honour_retry_after: false,
            retry_delay: ctx.behaviour.retry_delay,
        };
        let db = json!({"name": format!("{script}-db")});
        let _ = session.create_resource(&acct, "create d1", "d1/database", db).await;
        for n in 0..3 {
            let body = json!({"name": format!("{script}-db-cl-{n}")}).to_string().into_bytes();
            let path = format!("accounts/{}/d1/database", acct.id);
            let req = RawRequest {
                method: "POST",
                path: &path,
                bearer: acct.token(),
                content_type: "application/json",
                body: &body,
                framing: Framing::DoubledLength,
                forwarded_for: Some(addr),
            };
            if raw::send(&mut ctx.api, &req).await.is_some_and(|s| s.is_success()) {
                group.add_finding(DOUBLED_OK, 1);
            }
        }
    }

    // Assets: the file set split over two sessions (600 + 600 files), a
    // manifest that under-declares a file, and a chunked body over
    // max_body_bytes.
    let addr = address(base, 3);
    if let Some(acct) = account(ctx, addr).await {
        got += 1;
        let mut session = Session {
            api: &mut ctx.api,
            ident: Identity::wrangler(Some(addr)),
            honour_retry_after: false,
            retry_delay: ctx.behaviour.retry_delay,
        };
        for part in ["a", "b"] {
            let _ = session.upload_assets(&acct, &format!("{script}-{part}"), 600).await;
        }
        if lying_manifest(&mut session, &acct, &script).await {
            group.add_finding(LYING_OK, 1);
        }
        chunked(ctx, &acct, addr, &script).await;
    }
    group.add_finding(ACCOUNTS, u64::from(got));
    if u64::from(got) < ACCOUNTS_NEEDED {
        group.note_error(format!("got {got} of the 4 accounts the evasions need"));
    }
    deployed
}

/// A chunked script upload over max_body_bytes.
async fn chunked(ctx: &mut AgentCtx, acct: &Account, addr: std::net::IpAddr, script: &str) {
    let group = ctx.api.group().clone();
    let boundary = "evaderboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{{\"main_module\":\"index.js\"}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\nContent-Type: application/javascript+module\r\n\r\nexport default {{fetch(){{return new Response('x')}}}}\n//"
    )
    .into_bytes();
    body.resize(OVERSIZED_BODY, b'x');
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let path = format!("accounts/{}/workers/scripts/{script}-big", acct.id);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let req = RawRequest {
        method: "PUT",
        path: &path,
        bearer: acct.token(),
        content_type: &content_type,
        body: &body,
        framing: Framing::Chunked,
        forwarded_for: Some(addr),
    };
    group.add_finding(OVERSIZED, 1);
    if raw::send(&mut ctx.api, &req).await.is_some_and(|s| s.is_success()) {
        group.add_finding(OVERSIZED_OK, 1);
    }
}

/// An upload session whose manifest says 1 KiB for a file just over the
/// published 5 MiB limit, then the upload of the real file. True when the
/// upload was accepted.
async fn lying_manifest(session: &mut Session<'_>, acct: &Account, script: &str) -> bool {
    let content = vec![b'z'; PUBLISHED_ASSET_FILE_BYTES + 1024];
    let hash = hex::encode(&Sha256::digest(&content)[..16]);
    let manifest = json!({"/big.bin": {"hash": hash, "size": 1024}});
    let Ok(reply) = session
        .acct_call(
            acct,
            "assets session",
            Method::POST,
            &format!("workers/scripts/{script}-lie/assets-upload-session"),
            Body::Json(json!({"manifest": manifest})),
        )
        .await
    else {
        return false;
    };
    let Some(jwt) = reply.result()["jwt"].as_str().map(str::to_string) else { return false };
    let path = format!("accounts/{}/workers/assets/upload?base64=true", acct.id);
    let parts = vec![Part {
        name: hash.clone(),
        filename: Some(hash),
        content_type: "application/octet-stream".into(),
        bytes: STANDARD.encode(&content).into_bytes(),
    }];
    let Ok(call) = session.call(Method::POST, &path, Body::Multipart(parts), Some(&jwt)) else {
        return false;
    };
    matches!(session.with_retries(&call).await, Ok(r) if r.status.is_success())
}
