//! Temporary accounts the gateway saw created: who created them, their token (as a keyed
//! hash only), their lifecycle, and per-source account quotas.
//!
//! The platform hands an unauthenticated client a working API token. Later calls carry
//! only that token, often from another address (CI runners, rotating proxies), so the
//! gateway must be able to say "this token belongs to account A, created by source S"
//! without keeping the token: whoever holds the token owns the account, and a gateway
//! memory dump or log must not hand accounts out. [`TokenHasher`] keys an HMAC with a
//! secret so the stored hashes cannot be brute-forced back to tokens offline either.
//!
//! Everything here is pure logic with time passed in (`u64` unix seconds).

use hmac::{Hmac, Mac};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

// ---------------------------------------------------------------------------------------
// Token hashing
// ---------------------------------------------------------------------------------------

/// Keyed hash (HMAC-SHA256) of API tokens, so the gateway recognises a token without
/// storing it.
///
/// Its `Debug` never shows the key: the key is what makes the hashes unguessable.
#[derive(Clone)]
pub struct TokenHasher {
    key: [u8; 32],
}

impl TokenHasher {
    /// A hasher with a fresh random key from the operating system.
    ///
    /// Hashes then only mean something inside this process: fine for a single gateway
    /// whose account book lives in memory. Several gateways sharing a book need
    /// [`TokenHasher::with_key`] with the same configured key.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        TokenHasher { key }
    }

    /// A hasher with a configured key of at least 16 bytes (shorter keys would make the
    /// hashes guessable by brute force over the key).
    pub fn with_key(key: &[u8]) -> Result<Self, KeyTooShort> {
        if key.len() < 16 {
            return Err(KeyTooShort(key.len()));
        }
        // HMAC accepts any key length; fold it to 32 bytes so the struct stays fixed-size.
        let mut folded = [0u8; 32];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"policy/accounts/token-key")
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(key);
        folded.copy_from_slice(&mac.finalize().into_bytes());
        Ok(TokenHasher { key: folded })
    }

    /// Hashes a token (the bare token, without `Bearer `).
    pub fn hash(&self, token: &str) -> TokenHash {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac.finalize().into_bytes());
        TokenHash(out)
    }

    /// Hashes the token of an `Authorization` header value (`Bearer <token>`), or `None`
    /// when the header is not a bearer token.
    pub fn hash_authorization(&self, header: &str) -> Option<TokenHash> {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return None;
        }
        Some(self.hash(token))
    }
}

/// A token-hash key under 16 bytes, refused by [`TokenHasher::with_key`]; holds the
/// length given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token-hash key must be at least 16 bytes, got {0}")]
pub struct KeyTooShort(pub usize);

/// HMAC-SHA256 takes keys of any length, so key setup cannot fail; this keeps the
/// impossible branch free of `unwrap`.
#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher { key: <redacted> }")
    }
}

/// The keyed hash of one API token.
///
/// `Debug` and `Display` show only the first 8 hex digits: enough to correlate log
/// lines, too little to be useful as a lookup key for anyone reading the logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The raw 32 bytes (for a shared store keyed by hash).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash read back from a store written with [`TokenHash::as_bytes`] (only
    /// meaningful with the same [`TokenHasher`] key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", hex::encode(&self.0[..4]))
    }
}

// ---------------------------------------------------------------------------------------
// Source keys
// ---------------------------------------------------------------------------------------

/// The kinds of source key an account is attributed to.
///
/// Prefix lengths are fixed (IPv4 /24; IPv6 /64, /56, /48) because those are the
/// allocation sizes that matter: one IPv4 customer rarely holds more than a /24, an IPv6
/// end site gets a /64 to /48, and counting at every size an attacker can cheaply
/// rotate within closes the "new address per account" hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// The exact client address.
    Ip,
    /// The client's IPv4 /24.
    Ipv4_24,
    /// The client's IPv6 /64.
    Ipv6_64,
    /// The client's IPv6 /56.
    Ipv6_56,
    /// The client's IPv6 /48.
    Ipv6_48,
    /// The gateway's HTTP fingerprint of the client.
    HttpFp,
    /// The TLS (JA4) fingerprint of the client.
    TlsFp,
}

impl SourceKind {
    /// Every kind, in the order they are written in docs.
    pub const ALL: [SourceKind; 7] = [
        SourceKind::Ip,
        SourceKind::Ipv4_24,
        SourceKind::Ipv6_64,
        SourceKind::Ipv6_56,
        SourceKind::Ipv6_48,
        SourceKind::HttpFp,
        SourceKind::TlsFp,
    ];

    /// Name as written in a policy: `ip`, `ipv4/24`, `ipv6/64`, `ipv6/56`, `ipv6/48`,
    /// `http_fp`, `tls_fp`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Ip => "ip",
            SourceKind::Ipv4_24 => "ipv4/24",
            SourceKind::Ipv6_64 => "ipv6/64",
            SourceKind::Ipv6_56 => "ipv6/56",
            SourceKind::Ipv6_48 => "ipv6/48",
            SourceKind::HttpFp => "http_fp",
            SourceKind::TlsFp => "tls_fp",
        }
    }

    /// Parses a name written in a policy.
    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source key: an address, a network, or a fingerprint.
///
/// Written (and serialized) as `kind:value`, e.g. `ip:192.0.2.7`,
/// `ipv6/48:2001:db8::/48`, `http_fp:hf1_11_...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    /// An exact address.
    Ip(IpAddr),
    /// A network (always stored with host bits cleared).
    Prefix(IpNetwork),
    /// An HTTP fingerprint.
    HttpFp(String),
    /// A TLS fingerprint.
    TlsFp(String),
    /// Every source together: the platform-wide total, for budgets that hold a swarm
    /// spread too thin for any one key to show (`[[budgets.global]]`). Never one of a
    /// source's own [`SourceKeys::keys`].
    Global,
}

impl SourceKey {
    /// The kind of this key; `None` for a prefix length the gateway does not track.
    pub fn kind(&self) -> Option<SourceKind> {
        Some(match self {
            SourceKey::Ip(_) => SourceKind::Ip,
            SourceKey::Prefix(IpNetwork::V4(n)) if n.prefix() == 24 => SourceKind::Ipv4_24,
            SourceKey::Prefix(IpNetwork::V6(n)) => match n.prefix() {
                64 => SourceKind::Ipv6_64,
                56 => SourceKind::Ipv6_56,
                48 => SourceKind::Ipv6_48,
                _ => return None,
            },
            SourceKey::Prefix(_) => return None,
            SourceKey::HttpFp(_) => SourceKind::HttpFp,
            SourceKey::TlsFp(_) => SourceKind::TlsFp,
            SourceKey::Global => return None,
        })
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::Ip(ip) => write!(f, "ip:{ip}"),
            SourceKey::Prefix(n) => {
                let family = if n.is_ipv4() { "ipv4" } else { "ipv6" };
                write!(f, "{family}/{}:{n}", n.prefix())
            }
            SourceKey::HttpFp(s) => write!(f, "http_fp:{s}"),
            SourceKey::TlsFp(s) => write!(f, "tls_fp:{s}"),
            SourceKey::Global => f.write_str("global"),
        }
    }
}

impl FromStr for SourceKey {
    type Err = String;

    /// Parses `kind:value` as written by `Display` (so the CLI can take keys back).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "global" {
            return Ok(SourceKey::Global);
        }
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("source key \"{s}\" is not kind:value"))?;
        match kind {
            "ip" => value
                .parse::<IpAddr>()
                .map(SourceKey::Ip)
                .map_err(|e| format!("source key \"{s}\": {e}")),
            "http_fp" => Ok(SourceKey::HttpFp(value.to_string())),
            "tls_fp" => Ok(SourceKey::TlsFp(value.to_string())),
            _ if kind.starts_with("ipv4/") || kind.starts_with("ipv6/") => {
                let net: IpNetwork = value
                    .parse()
                    .map_err(|e| format!("source key \"{s}\": {e}"))?;
                let declared = &kind[5..];
                if declared != net.prefix().to_string()
                    || (kind.starts_with("ipv4") != net.is_ipv4())
                {
                    return Err(format!(
                        "source key \"{s}\": kind {kind} does not match network {net}"
                    ));
                }
                Ok(SourceKey::Prefix(normalise(net)))
            }
            _ => Err(format!("source key \"{s}\": unknown kind \"{kind}\"")),
        }
    }
}

impl Serialize for SourceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Clears host bits so `2001:db8::1/48` and `2001:db8::/48` are the same key.
fn normalise(net: IpNetwork) -> IpNetwork {
    match net {
        IpNetwork::V4(n) => Ipv4Network::new(n.network(), n.prefix()).map_or(net, IpNetwork::V4),
        IpNetwork::V6(n) => Ipv6Network::new(n.network(), n.prefix()).map_or(net, IpNetwork::V6),
    }
}

/// Serializes networks as their `a.b.c.d/n` strings.
mod net_strings {
    use ipnetwork::IpNetwork;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(nets: &[IpNetwork], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(|n| n.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                s.parse::<IpNetwork>()
                    .map(super::normalise)
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// Everything an account is attributed to: the creating address, its networks, and the
/// client's fingerprints when known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceKeys {
    /// The creating client's address.
    pub ip: IpAddr,
    /// Its networks: the IPv4 /24, or the IPv6 /64, /56 and /48 (host bits cleared).
    #[serde(with = "net_strings")]
    pub prefixes: Vec<IpNetwork>,
    /// HTTP fingerprint, when computed.
    pub http_fp: Option<String>,
    /// TLS fingerprint, when the gateway or a trusted proxy supplied one.
    pub tls_fp: Option<String>,
}

impl SourceKeys {
    /// Derives the prefixes from `ip` (IPv4 /24; IPv6 /64, /56, /48).
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports
    /// for IPv4 clients) is treated as IPv4, otherwise every IPv4 client of such a
    /// listener would share one IPv6 /48.
    pub fn new(ip: IpAddr, http_fp: Option<String>, tls_fp: Option<String>) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        let prefixes = match ip {
            IpAddr::V4(v4) => Ipv4Network::new(v4, 24)
                .map(|n| vec![normalise(IpNetwork::V4(n))])
                .unwrap_or_default(),
            IpAddr::V6(v6) => [64u8, 56, 48]
                .into_iter()
                .filter_map(|len| Ipv6Network::new(v6, len).ok())
                .map(|n| normalise(IpNetwork::V6(n)))
                .collect(),
        };
        SourceKeys {
            ip,
            prefixes,
            http_fp: http_fp.filter(|s| !s.is_empty()),
            tls_fp: tls_fp.filter(|s| !s.is_empty()),
        }
    }

    /// Every key of this source: the address, each prefix, each fingerprint present.
    pub fn keys(&self) -> Vec<SourceKey> {
        let mut out = Vec::with_capacity(2 + self.prefixes.len() + 2);
        out.push(SourceKey::Ip(self.ip));
        out.extend(
            self.prefixes
                .iter()
                .map(|n| SourceKey::Prefix(normalise(*n))),
        );
        if let Some(fp) = &self.http_fp {
            out.push(SourceKey::HttpFp(fp.clone()));
        }
        if let Some(fp) = &self.tls_fp {
            out.push(SourceKey::TlsFp(fp.clone()));
        }
        out
    }

    /// The key of one kind, if this source has it (an IPv4 source has no IPv6 /48).
    pub fn key_of(&self, kind: SourceKind) -> Option<SourceKey> {
        self.keys().into_iter().find(|k| k.kind() == Some(kind))
    }
}

// ---------------------------------------------------------------------------------------
// The account book
// ---------------------------------------------------------------------------------------

/// Lifecycle events the gateway learns about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Someone claimed the account (the platform told us; the claim happens in a browser).
    Claimed,
    /// The account's lifetime ended without a claim.
    Expired,
    /// The platform deleted the account.
    Deleted,
}

/// Where an account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Created, not claimed, not known to be expired (it may be past `expires_at`:
    /// see [`AccountBook::take_expired_unclaimed`]).
    Live,
    /// Claimed: an ordinary account now, outside temporary-account accounting.
    Claimed,
    /// Expired unclaimed.
    Expired,
    /// Deleted by the platform (after expiry, or before it).
    Deleted,
}

/// What the book knows about one account. Holds no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The platform's account id.
    pub account_id: String,
    /// Creation time, unix seconds.
    pub created_at: u64,
    /// When the platform deletes it unless claimed, unix seconds.
    pub expires_at: u64,
    /// Who created it.
    pub source: SourceKeys,
    /// Current state.
    pub state: AccountState,
    /// When it was claimed, if it was.
    pub claimed_at: Option<u64>,
    /// When it ended (expired or deleted), if it did.
    pub ended_at: Option<u64>,
}

impl AccountInfo {
    /// Unclaimed and past its expiry at `now`, whatever the book has been told so far.
    pub fn is_expired_unclaimed(&self, now: u64) -> bool {
        match self.state {
            AccountState::Claimed => false,
            AccountState::Expired => true,
            AccountState::Live => now >= self.expires_at,
            // Deleted without a claim: the platform did (or does) the cleanup, whether
            // at expiry or earlier.
            AccountState::Deleted => true,
        }
    }

    /// Counts against "live temporary accounts at once" at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        self.state == AccountState::Live && now < self.expires_at
    }
}

#[derive(Default)]
struct BookInner {
    accounts: HashMap<String, AccountInfo>,
    by_token: HashMap<TokenHash, String>,
    /// Account ids per source key, in creation order.
    by_source: HashMap<SourceKey, Vec<String>>,
}

/// Concurrent record of the temporary accounts created through the gateway.
///
/// Readers (every authenticated request looks up its token) vastly outnumber writers
/// (account creation, lifecycle events), hence a read-write lock.
#[derive(Default)]
pub struct AccountBook {
    inner: RwLock<BookInner>,
}

impl fmt::Debug for AccountBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("AccountBook")
            .field("accounts", &inner.accounts.len())
            .field("tokens", &inner.by_token.len())
            .finish()
    }
}

impl AccountBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a newly created account. Returns `false` (and changes nothing) when the id
    /// is already known, so a replayed creation answer cannot rewrite who created it.
    pub fn record_created(
        &self,
        account_id: &str,
        token_hash: TokenHash,
        created_at: u64,
        expires_at: u64,
        source: SourceKeys,
    ) -> bool {
        let mut inner = self.inner.write();
        if inner.accounts.contains_key(account_id) {
            return false;
        }
        for key in source.keys() {
            inner
                .by_source
                .entry(key)
                .or_default()
                .push(account_id.to_string());
        }
        inner.by_token.insert(token_hash, account_id.to_string());
        inner.accounts.insert(
            account_id.to_string(),
            AccountInfo {
                account_id: account_id.to_string(),
                created_at,
                expires_at,
                source,
                state: AccountState::Live,
                claimed_at: None,
                ended_at: None,
            },
        );
        true
    }

    /// The account a token belongs to, whatever address the call now comes from.
    pub fn by_token(&self, token: &TokenHash) -> Option<AccountInfo> {
        let inner = self.inner.read();
        let id = inner.by_token.get(token)?;
        inner.accounts.get(id).cloned()
    }

    /// One account by id.
    pub fn get(&self, account_id: &str) -> Option<AccountInfo> {
        self.inner.read().accounts.get(account_id).cloned()
    }

    /// Applies a lifecycle event. Idempotent: returns `true` only when the state changed,
    /// so the caller charges or credits the ledger exactly once.
    ///
    /// Transitions: `Claimed` from live only (a claim after expiry is impossible on the
    /// platform); `Expired` from live only; `Deleted` from live or expired. A claimed
    /// account belongs to its claimer and stays claimed; an unknown id changes nothing.
    pub fn mark(&self, account_id: &str, event: Event, at: u64) -> bool {
        let mut inner = self.inner.write();
        let Some(acc) = inner.accounts.get_mut(account_id) else {
            return false;
        };
        match (event, acc.state) {
            (Event::Claimed, AccountState::Live) => {
                acc.state = AccountState::Claimed;
                acc.claimed_at = Some(at);
                true
            }
            (Event::Expired, AccountState::Live) => {
                acc.state = AccountState::Expired;
                acc.ended_at = Some(at);
                true
            }
            (Event::Deleted, AccountState::Live) => {
                acc.state = AccountState::Deleted;
                acc.ended_at = Some(at);
                true
            }
            (Event::Deleted, AccountState::Expired) => {
                acc.state = AccountState::Deleted;
                true
            }
            _ => false,
        }
    }

    /// Accounts unclaimed and past their expiry at `now` (including those already
    /// marked expired or deleted). A pure query; use
    /// [`AccountBook::take_expired_unclaimed`] to act on each exactly once.
    pub fn expired_unclaimed(&self, now: u64) -> Vec<AccountInfo> {
        let inner = self.inner.read();
        let mut out: Vec<AccountInfo> = inner
            .accounts
            .values()
            .filter(|a| a.is_expired_unclaimed(now))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.expires_at, &a.account_id).cmp(&(b.expires_at, &b.account_id)));
        out
    }

    /// Marks every live account whose expiry is at or before `now` as expired and
    /// returns them (the sweeper charges each one to the ledger).
    ///
    /// The platform reports claims asynchronously, so a sweeper should pass `now` minus
    /// a grace period: an account claimed in its last seconds then is not charged
    /// before the claim arrives.
    pub fn take_expired_unclaimed(&self, now: u64) -> Vec<AccountInfo> {
        let mut inner = self.inner.write();
        let mut out = Vec::new();
        for acc in inner.accounts.values_mut() {
            if acc.state == AccountState::Live && now >= acc.expires_at {
                acc.state = AccountState::Expired;
                acc.ended_at = Some(acc.expires_at);
                out.push(acc.clone());
            }
        }
        out.sort_by(|a, b| (a.expires_at, &a.account_id).cmp(&(b.expires_at, &b.account_id)));
        out
    }

    /// Live temporary accounts created by `key` at `now`.
    pub fn live_count_for(&self, key: &SourceKey, now: u64) -> usize {
        let inner = self.inner.read();
        inner.by_source.get(key).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| inner.accounts.get(id))
                .filter(|a| a.is_live(now))
                .count()
        })
    }

    /// Accounts created by `key` at or after `since` (any state).
    pub fn created_since(&self, key: &SourceKey, since: u64) -> usize {
        let inner = self.inner.read();
        inner.by_source.get(key).map_or(0, |ids| {
            ids.iter()
                .filter_map(|id| inner.accounts.get(id))
                .filter(|a| a.created_at >= since)
                .count()
        })
    }

    /// Forgets accounts that ended (or were claimed) before `before`, and their tokens,
    /// to bound memory. The ledger keeps the history.
    pub fn prune(&self, before: u64) -> usize {
        let mut inner = self.inner.write();
        let gone: Vec<String> = inner
            .accounts
            .values()
            .filter(|a| match a.state {
                AccountState::Live => false,
                AccountState::Claimed => a.claimed_at.is_some_and(|t| t < before),
                AccountState::Expired | AccountState::Deleted => {
                    a.ended_at.is_some_and(|t| t < before)
                }
            })
            .map(|a| a.account_id.clone())
            .collect();
        for id in &gone {
            inner.accounts.remove(id);
        }
        inner.by_token.retain(|_, id| !gone.contains(id));
        let accounts = std::mem::take(&mut inner.accounts);
        inner.by_source.retain(|_, ids| {
            ids.retain(|id| accounts.contains_key(id));
            !ids.is_empty()
        });
        inner.accounts = accounts;
        gone.len()
    }

    /// Every account with its token hash, oldest first: what a journal needs to write
    /// the book back to disk.
    pub fn snapshot(&self) -> Vec<(AccountInfo, TokenHash)> {
        let inner = self.inner.read();
        let mut out: Vec<(AccountInfo, TokenHash)> = inner
            .by_token
            .iter()
            .filter_map(|(hash, id)| inner.accounts.get(id).map(|a| (a.clone(), *hash)))
            .collect();
        out.sort_by(|a, b| (a.0.created_at, &a.0.account_id).cmp(&(b.0.created_at, &b.0.account_id)));
        out
    }

    /// Number of accounts the book holds.
    pub fn len(&self) -> usize {
        self.inner.read().accounts.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------
// Per-source account limits: [accounts]
// ---------------------------------------------------------------------------------------

/// Compiled per-source account limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLimits {
    /// Window of `per_day`, seconds.
    pub window_secs: u64,
    /// Live accounts at once, per key kind (kinds absent are unlimited).
    pub live: BTreeMap<SourceKind, u64>,
    /// Accounts created per window, per key kind (kinds absent are unlimited).
    pub per_day: BTreeMap<SourceKind, u64>,
}

impl Default for AccountLimits {
    /// Defaults sized for honest use: wrangler reuses its cached temporary account for
    /// the whole hour, so one person or CI job needs one live account and a handful a
    /// day. Networks get more room than addresses (NAT, shared offices).
    ///
    /// Fingerprints have no default limit: every copy of one wrangler version on one
    /// Node version has the same HTTP and TLS fingerprint, so a per-fingerprint limit
    /// would throttle all honest users together. Operators add them during an attack
    /// by a distinctive client.
    fn default() -> Self {
        AccountLimits {
            window_secs: 86_400,
            live: BTreeMap::from([
                (SourceKind::Ip, 3),
                (SourceKind::Ipv4_24, 10),
                (SourceKind::Ipv6_64, 3),
                (SourceKind::Ipv6_56, 10),
                (SourceKind::Ipv6_48, 20),
            ]),
            per_day: BTreeMap::from([
                (SourceKind::Ip, 20),
                (SourceKind::Ipv4_24, 60),
                (SourceKind::Ipv6_64, 20),
                (SourceKind::Ipv6_56, 60),
                (SourceKind::Ipv6_48, 120),
            ]),
        }
    }
}

/// Which per-source account limit refused a creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountLimitKind {
    /// Too many live temporary accounts at once.
    Live,
    /// Too many accounts created in the window.
    PerWindow,
}

/// A refused account creation, with a message wrangler prints as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRefusal {
    /// The source key that is at its limit.
    pub key: SourceKey,
    /// Which limit.
    pub limit_kind: AccountLimitKind,
    /// The limit.
    pub limit: u64,
    /// The current count.
    pub current: u64,
    /// Seconds until a slot frees up (an account expires or leaves the window).
    pub retry_after_secs: u64,
    /// User-facing explanation saying what to do.
    pub message: String,
}

impl AccountLimits {
    /// Checks whether `source` may create one more temporary account at `now`.
    ///
    /// Every key of the source is checked, so rotating addresses inside one /64 or /48
    /// does not help. Call it before forwarding the creation request; record the account
    /// with [`AccountBook::record_created`] once the platform answered 2xx.
    pub fn check(
        &self,
        book: &AccountBook,
        source: &SourceKeys,
        now: u64,
    ) -> Result<(), AccountRefusal> {
        let inner = book.inner.read();
        let mut worst: Option<AccountRefusal> = None;
        for key in source.keys() {
            let Some(kind) = key.kind() else { continue };
            let accounts: Vec<&AccountInfo> = inner
                .by_source
                .get(&key)
                .map(|ids| ids.iter().filter_map(|id| inner.accounts.get(id)).collect())
                .unwrap_or_default();
            if let Some(&limit) = self.live.get(&kind) {
                let live: Vec<&&AccountInfo> = accounts.iter().filter(|a| a.is_live(now)).collect();
                if live.len() as u64 >= limit {
                    // The soonest expiry frees a slot; with a limit of 0 none ever does.
                    let retry = if limit == 0 {
                        self.window_secs
                    } else {
                        live.iter()
                            .map(|a| a.expires_at.saturating_sub(now))
                            .min()
                            .unwrap_or(0)
                            .max(1)
                    };
                    let message = format!(
                        "Too many temporary accounts: {} already has {} live (the limit is {limit}). \
                         Reuse the account wrangler cached, claim one, or wait {retry} seconds for one to expire.",
                        describe(&key),
                        live.len()
                    );
                    keep_worst(
                        &mut worst,
                        AccountRefusal {
                            key: key.clone(),
                            limit_kind: AccountLimitKind::Live,
                            limit,
                            current: live.len() as u64,
                            retry_after_secs: retry,
                            message,
                        },
                    );
                }
            }
            if let Some(&limit) = self.per_day.get(&kind) {
                let mut recent: Vec<u64> = accounts
                    .iter()
                    .map(|a| a.created_at)
                    .filter(|&t| t.saturating_add(self.window_secs) > now)
                    .collect();
                if recent.len() as u64 >= limit {
                    recent.sort_unstable();
                    // Creations recent[0..=c-limit] must leave the window to get below
                    // the limit; with a limit of 0 nothing ever helps, say a full window.
                    let idx = usize::try_from(recent.len() as u64 - limit).unwrap_or(usize::MAX);
                    let retry = recent
                        .get(idx)
                        .map_or(self.window_secs, |t| {
                            (t + self.window_secs).saturating_sub(now)
                        })
                        .max(1);
                    let message = format!(
                        "Too many temporary accounts: {} created {} in the last {} (the limit is {limit}). \
                         Try again in {retry} seconds, or claim an account to deploy without temporary-account limits.",
                        describe(&key),
                        recent.len(),
                        human_secs(self.window_secs)
                    );
                    keep_worst(
                        &mut worst,
                        AccountRefusal {
                            key: key.clone(),
                            limit_kind: AccountLimitKind::PerWindow,
                            limit,
                            current: recent.len() as u64,
                            retry_after_secs: retry,
                            message,
                        },
                    );
                }
            }
        }
        worst.map_or(Ok(()), Err)
    }
}

/// Keeps the refusal with the longest wait: that is the one the client must honour.
fn keep_worst(worst: &mut Option<AccountRefusal>, r: AccountRefusal) {
    if worst
        .as_ref()
        .is_none_or(|w| r.retry_after_secs > w.retry_after_secs)
    {
        *worst = Some(r);
    }
}

/// Names a source key for a user: "your address 192.0.2.7", "your network 2001:db8::/48".
/// Fingerprints are not spelled out (they mean nothing to a user).
pub(crate) fn describe(key: &SourceKey) -> String {
    match key {
        SourceKey::Ip(ip) => format!("your address {ip}"),
        SourceKey::Prefix(n) => format!("your network {n}"),
        SourceKey::HttpFp(_) => "your HTTP client".to_string(),
        SourceKey::TlsFp(_) => "your TLS client".to_string(),
        SourceKey::Global => "all clients together".to_string(),
    }
}

/// "24 hours", "90 minutes", "45 seconds".
pub(crate) fn human_secs(secs: u64) -> String {
    if secs >= 3600 && secs / 3600 * 3600 == secs {
        let h = secs / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else if secs >= 60 && secs / 60 * 60 == secs {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    }
}
