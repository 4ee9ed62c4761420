//! Operator blocks: an address, a network or a fingerprint refused for a while, with a
//! reason the refused client reads.
//!
//! Blocks are set and lifted through the admin API ([`crate::operator`]) and checked by
//! the first request stage ([`crate::stage::block`]). They live in memory; the
//! embedded store persists them with [`BlockList::snapshot`] and puts them back with
//! [`BlockList::restore`]. Every block has a TTL on the gateway's clock, so a
//! forgotten block lifts itself.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ipnetwork::IpNetwork;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The longest TTL a block may have (30 days): past it an operator should change the
/// policy's deny list, which is reviewed and versioned.
pub const MAX_TTL_SECS: u64 = 30 * 86_400;

/// The longest reason, in characters: it becomes part of a reason phrase.
pub const MAX_REASON_CHARS: usize = 200;

/// What a block covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BlockTarget {
    /// One client address (`198.51.100.7`, `ip:198.51.100.7`).
    Ip(IpAddr),
    /// A network in CIDR notation (`198.51.100.0/24`, `2001:db8::/48`), host bits
    /// cleared.
    Net(IpNetwork),
    /// The gateway's HTTP fingerprint (`http_fp:hf1_…`).
    HttpFp(String),
    /// A JA4 TLS fingerprint (`tls_fp:t13d…`).
    TlsFp(String),
}

impl std::fmt::Display for BlockTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockTarget::Ip(ip) => write!(f, "ip:{ip}"),
            BlockTarget::Net(n) => write!(f, "net:{n}"),
            BlockTarget::HttpFp(fp) => write!(f, "http_fp:{fp}"),
            BlockTarget::TlsFp(fp) => write!(f, "tls_fp:{fp}"),
        }
    }
}

impl std::str::FromStr for BlockTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let fingerprint = |fp: &str, make: fn(String) -> BlockTarget| {
            if fp.is_empty() || fp.len() > 128 || !fp.chars().all(|c| c.is_ascii_graphic()) {
                Err(format!("\"{s}\": a fingerprint is 1 to 128 visible ASCII characters"))
            } else {
                Ok(make(fp.to_string()))
            }
        };
        if let Some(fp) = s.strip_prefix("http_fp:") {
            return fingerprint(fp, BlockTarget::HttpFp);
        }
        if let Some(fp) = s.strip_prefix("tls_fp:") {
            return fingerprint(fp, BlockTarget::TlsFp);
        }
        let bare = s.strip_prefix("ip:").or_else(|| s.strip_prefix("net:")).unwrap_or(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(BlockTarget::Ip(fold_mapped(ip)));
        }
        match bare.parse::<IpNetwork>() {
            Ok(net) => IpNetwork::new(net.network(), net.prefix())
                .map(BlockTarget::Net)
                .map_err(|e| format!("\"{s}\": {e}")),
            Err(_) => Err(format!(
                "\"{s}\" is not an address (198.51.100.7), a network (198.51.100.0/24) or a \
                 fingerprint (http_fp:…, tls_fp:…)"
            )),
        }
    }
}

impl TryFrom<String> for BlockTarget {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<BlockTarget> for String {
    fn from(t: BlockTarget) -> String {
        t.to_string()
    }
}

/// IPv4-mapped IPv6 folds to IPv4, as the request stages see clients.
fn fold_mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One block, as listed and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// What it covers.
    pub target: BlockTarget,
    /// Why: shown to the refused client.
    pub reason: String,
    /// When it was set, unix seconds (gateway clock).
    pub created_at: u64,
    /// When it lifts, unix seconds (gateway clock).
    pub expires_at: u64,
    /// Requests it refused.
    #[serde(default)]
    pub refused: u64,
}

/// What a request is matched against: its client address and fingerprints.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The client address, after trusted-proxy handling.
    pub ip: IpAddr,
    /// The HTTP fingerprint (computed only when a fingerprint block exists).
    pub http_fp: Option<&'a str>,
    /// The TLS fingerprint, when known.
    pub tls_fp: Option<&'a str>,
}

/// Why a block request was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// TTL of zero or over [`MAX_TTL_SECS`].
    #[error("ttl_secs must be between 1 and {MAX_TTL_SECS} (30 days)")]
    Ttl,
    /// Empty, too long, or with control characters.
    #[error("reason must be 1 to {MAX_REASON_CHARS} characters without control characters")]
    Reason,
}

/// The blocks in force; cheap to check when empty (one atomic load).
#[derive(Debug, Default)]
pub struct BlockList {
    blocks: RwLock<Vec<Block>>,
    /// Whether any block exists, so requests skip the lock when none does.
    any: AtomicBool,
    /// Whether a fingerprint block exists, so the HTTP fingerprint is computed only then.
    any_fingerprint: AtomicBool,
    refused: AtomicU64,
}

impl BlockList {
    /// Sets (or replaces, same target) a block for `ttl_secs` from `now`.
    pub fn block(
        &self,
        target: BlockTarget,
        reason: &str,
        ttl_secs: u64,
        now: u64,
    ) -> Result<Block, BlockError> {
        if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
            return Err(BlockError::Ttl);
        }
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > MAX_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            return Err(BlockError::Reason);
        }
        let block = Block {
            target,
            reason: reason.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl_secs),
            refused: 0,
        };
        let mut blocks = self.blocks.write();
        blocks.retain(|b| b.target != block.target && b.expires_at > now);
        blocks.push(block.clone());
        self.update_flags(&blocks);
        Ok(block)
    }

    /// Puts a block another gateway of the fleet set (idempotent: the same block again
    /// keeps its refusal count; a newer one of the same target replaces it).
    pub fn put(&self, block: Block) {
        let mut blocks = self.blocks.write();
        match blocks.iter_mut().find(|b| b.target == block.target) {
            Some(b) if b.created_at == block.created_at && b.expires_at == block.expires_at => {}
            Some(b) => *b = block,
            None => blocks.push(block),
        }
        self.update_flags(&blocks);
    }

    /// Lifts the block of `target`; whether there was one in force.
    pub fn unblock(&self, target: &BlockTarget, now: u64) -> bool {
        let mut blocks = self.blocks.write();
        let before = blocks.iter().filter(|b| b.expires_at > now).count();
        blocks.retain(|b| &b.target != target && b.expires_at > now);
        let lifted = blocks.len() < before;
        self.update_flags(&blocks);
        lifted
    }

    /// The block that covers `subject` at `now`, counted as a refusal. The most
    /// specific wins: an address block before a network block, a longer prefix
    /// before a shorter one, then fingerprints.
    pub fn check(&self, subject: &Subject<'_>, now: u64) -> Option<Block> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let ip = fold_mapped(subject.ip);
        let mut blocks = self.blocks.write();
        let hit = blocks
            .iter_mut()
            .filter(|b| b.expires_at > now)
            .filter_map(|b| specificity(&b.target, ip, subject).map(|s| (s, b)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, b)| {
                b.refused += 1;
                b.clone()
            });
        if hit.is_some() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Whether a fingerprint block is in force (then the caller computes the HTTP
    /// fingerprint for [`BlockList::check`]).
    pub fn wants_fingerprint(&self) -> bool {
        self.any_fingerprint.load(Ordering::Acquire)
    }

    /// The blocks in force at `now`, soonest to lift first.
    pub fn list(&self, now: u64) -> Vec<Block> {
        let mut out: Vec<Block> =
            self.blocks.read().iter().filter(|b| b.expires_at > now).cloned().collect();
        out.sort_by(|a, b| {
            (a.expires_at, a.target.to_string()).cmp(&(b.expires_at, b.target.to_string()))
        });
        out
    }

    /// Every block held, expired or not, for a store to persist.
    pub fn snapshot(&self) -> Vec<Block> {
        self.blocks.read().clone()
    }

    /// Replaces the blocks with `blocks` (a store's snapshot); those expired at `now`
    /// are dropped, and of two blocks of one target the later-expiring stays.
    pub fn restore(&self, blocks: Vec<Block>, now: u64) {
        let mut kept: Vec<Block> = Vec::with_capacity(blocks.len());
        for b in blocks.into_iter().filter(|b| b.expires_at > now) {
            match kept.iter_mut().find(|k| k.target == b.target) {
                Some(k) if k.expires_at < b.expires_at => *k = b,
                Some(_) => {}
                None => kept.push(b),
            }
        }
        let mut blocks = self.blocks.write();
        *blocks = kept;
        self.update_flags(&blocks);
    }

    /// Requests refused by a block since start (exported as a metric).
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn update_flags(&self, blocks: &[Block]) {
        self.any.store(!blocks.is_empty(), Ordering::Release);
        let fp = blocks
            .iter()
            .any(|b| matches!(b.target, BlockTarget::HttpFp(_) | BlockTarget::TlsFp(_)));
        self.any_fingerprint.store(fp, Ordering::Release);
    }
}

/// How specifically `target` covers the subject (higher wins), or `None`.
fn specificity(target: &BlockTarget, ip: IpAddr, subject: &Subject<'_>) -> Option<u16> {
    match target {
        BlockTarget::Ip(b) => (*b == ip).then_some(300),
        BlockTarget::Net(n) => n.contains(ip).then_some(100 + u16::from(n.prefix())),
        BlockTarget::HttpFp(fp) => (subject.http_fp == Some(fp.as_str())).then_some(50),
        BlockTarget::TlsFp(fp) => (subject.tls_fp == Some(fp.as_str())).then_some(40),
    }
}

#[cfg(test)]
#[path = "blocks_tests.rs"]
mod tests;
