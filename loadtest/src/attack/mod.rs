//! Attack agents with a loop of their own: token sprayers, proof-of-work
//! replayers and quota evaders. (The IPv4 /16 rotator and the botnet run
//! the ordinary deploy loop with their own address plans.)
//!
//! Each attack speaks the real protocol through [`crate::protocol::Api`]
//! (or, for framings reqwest will not produce, hand-written HTTP/1.1 in
//! [`raw`]) and reports what it achieved as named *findings* on its
//! group's counters ([`crate::stats::GroupStats::add_finding`]); the
//! report's acceptance checks judge those findings against the policy
//! ([`limits`]) and the platform's own account state ([`facts`]).

use crate::agent_ctx::AgentCtx;
use crate::archetype::Special;

pub mod evader;
pub mod facts;
pub mod limits;
pub mod raw;
pub mod replay;
pub mod spray;

/// Run one attack agent; returns the deploys it completed (its honest
/// probe's, or the ones its setup needed).
pub async fn run(ctx: &mut AgentCtx) -> u32 {
    match ctx.behaviour.special {
        Special::TokenSpray => spray::run(ctx).await,
        Special::PowReplay => replay::run(ctx).await,
        Special::QuotaEvader => evader::run(ctx).await,
        Special::None => 0,
    }
}

/// A random string of `len` characters from `alphabet`.
pub fn random_string(rng: &mut impl rand::Rng, alphabet: &[u8], len: usize) -> String {
    (0..len).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}
