//! `token-spray`: reads and writes with random bearer tokens from one /24.
//!
//! A token the gateway has never seen maps to no account, so per-account
//! limits cannot hold it; what should hold it is the per-address limits
//! that count requests without an account. The spray also tries to crowd
//! out others: if every random token took a key of its own in the
//! gateway's tables, the tables would fill and newcomers be throttled
//! together. So early in the spray (a quarter of the way in, at most 60
//! requests), the group's first agent creates an honest
//! account from an unrelated network and deploys with it: that probe must
//! not be refused.

use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use super::random_string;
use crate::agent_ctx::AgentCtx;
use crate::archetype::ipv4_24;
use crate::protocol::{Body, Call, Identity, Part};
use std::sync::Arc;

use crate::archetype::Archetype;
use crate::stats::{get, GroupStats, Verdict};
use crate::wrangler::{pause, Session, StepError};

/// Findings: spray requests sent.
pub const SENT: &str = "spray_sent";
/// Spray requests the gateway forwarded (the platform answered).
pub const FORWARDED: &str = "spray_forwarded";
/// Spray requests the gateway refused.
pub const REFUSED: &str = "spray_refused";
/// Honest probes started.
pub const PROBES: &str = "probe_started";
/// Honest probes that deployed without a single refusal.
pub const PROBES_OK: &str = "probe_deployed";
/// Honest probes refused somewhere (throttled).
pub const PROBES_THROTTLED: &str = "probe_throttled";

const HEX: &[u8] = b"0123456789abcdef";
const TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// The honest probe's address: TEST-NET-1 (192.0.2.0/24), a network no
/// other group uses.
pub fn probe_address(member: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (member % 250) as u8))
}

/// One spray request: a read or a write on a random account with a random
/// token.
fn spray_call(ctx: &AgentCtx, rng: &mut StdRng) -> Option<Call> {
    let account = random_string(rng, HEX, 32);
    let token = random_string(rng, TOKEN, 40);
    let (method, path, body) = match rng.gen_range(0..4) {
        0 => (Method::GET, format!("accounts/{account}/workers/services/site"), Body::Empty),
        1 => (Method::GET, format!("accounts/{account}/workers/subdomain"), Body::Empty),
        2 => (
            Method::POST,
            format!("accounts/{account}/storage/kv/namespaces"),
            Body::Json(json!({"title": "spray"})),
        ),
        _ => (
            Method::PUT,
            format!("accounts/{account}/workers/scripts/site"),
            Body::Multipart(vec![Part {
                name: "index.js".into(),
                filename: Some("index.js".into()),
                content_type: "application/javascript+module".into(),
                bytes: b"export default {fetch(){return new Response('x')}}".to_vec(),
            }]),
        ),
    };
    let url = ctx.api.url(&path).ok()?;
    Some(Call { method, url, body, provisioning: false, bearer: Some(token) })
}

/// Spray until the agent's request budget (less what the probe needs) is
/// spent; the first agent of the group runs the probe halfway.
pub async fn run(ctx: &mut AgentCtx) -> u32 {
    let group = ctx.api.group().clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let addr = ctx.behaviour.addressing.address(ctx.index, &mut rng);
    if let Some(net) = ipv4_24(addr) {
        group.note_network(net);
    }
    let ident = Identity::wrangler(Some(addr));
    // A first deploy is about a dozen calls; keep room for it.
    let spray_total = ctx.behaviour.max_requests.saturating_sub(40);
    let probe_at = (spray_total / 4).min(60);
    let mut completed = 0u32;
    for n in 0..spray_total {
        if n == probe_at && ctx.member == 0 {
            completed += probe(ctx).await;
        }
        let Some(call) = spray_call(ctx, &mut rng) else { break };
        match ctx.api.send(&ident, &call).await {
            Ok(reply) => {
                group.add_finding(SENT, 1);
                match reply.verdict {
                    Verdict::Admitted => group.add_finding(FORWARDED, 1),
                    Verdict::Refused => group.add_finding(REFUSED, 1),
                    Verdict::Error => {}
                }
            }
            Err(crate::protocol::CallError::Stopped) => break,
            Err(crate::protocol::CallError::Transport(_)) => group.add_finding(SENT, 1),
        }
        if !pause(&ctx.api, ctx.behaviour.retry_delay).await {
            break;
        }
    }
    completed
}

/// An honest newcomer from another network: provision, deploy once. It
/// counts into a group of its own, so a refusal it met (even one wrangler's
/// retries got past) shows as throttled.
async fn probe(ctx: &mut AgentCtx) -> u32 {
    let group = ctx.api.group().clone();
    group.add_finding(PROBES, 1);
    let own =
        Arc::new(GroupStats::new(format!("{}-probe", group.label), Archetype::WellBehaved, 1));
    let mut api = ctx.api.beside(own.clone(), 60);
    let mut session = Session {
        api: &mut api,
        ident: Identity::wrangler(Some(probe_address(ctx.member))),
        honour_retry_after: true,
        retry_delay: ctx.behaviour.retry_delay,
    };
    GroupStats::bump(&group.deploys_attempted);
    let result = match session.provision(&ctx.pow).await {
        Ok(mut acct) => {
            // The probe's account is the group's as far as the run's
            // totals and the ledger go.
            GroupStats::bump(&group.accounts_created);
            group.record_account(&acct.id);
            let script = format!("{}-probe-{}", group.label, ctx.index);
            session.deploy(&mut acct, &script, json!([])).await
        }
        Err(e) => Err(e),
    };
    let refused = get(&own.refused);
    if let Err(StepError::Failed(m)) = &result {
        group.note_error(format!("probe: {m}"));
    }
    if refused > 0 || matches!(result, Err(StepError::Refused(_))) {
        if result.is_ok() {
            GroupStats::bump(&group.deploys_completed);
        }
        group.add_finding(PROBES_THROTTLED, 1);
        return 0;
    }
    if result.is_ok() {
        GroupStats::bump(&group.deploys_completed);
        group.add_finding(PROBES_OK, 1);
        return 1;
    }
    0
}
