//! The fleet's account map in Redis: the one token-hash key, and which account each
//! token hash belongs to, who created it and what happened to it since.
//!
//! Keys (no token, no claim URL: only keyed hashes and account ids):
//! - `gw:token-key`: the HMAC key every gateway hashes bearer tokens with, set once
//!   per fleet (`SET NX`, then `GET`), so a hash computed on A finds the account on B;
//! - `gw:tok:<hex of the token hash>`: the account id;
//! - `gw:acct:{<id>}`: a hash with `created` (the [`AccountRecord`] as JSON) and one
//!   field per lifecycle event (`claimed`, `expired`, `deleted`: unix seconds);
//! - `gw:upl:<hex of the upload token's hash>`: an asset-upload session (its account
//!   and the sizes its manifest declared, [`SessionRecord`]), for the session's
//!   lifetime, so an upload sent to another gateway than the one that opened the
//!   session is still charged to its account and checked against the manifest.
//!
//! Every key expires after the fleet's retention (the longest budget window plus a
//! day, as the gateway's own memory), so Redis stays as bounded as each book.
//!
//! A creation is written synchronously, before the create answer reaches the client
//! ([`FleetAccounts::created`]): a client that takes its token straight to another
//! gateway is recognised there, which looks the hash up on a miss of its own book
//! ([`FleetAccounts::lookup_token`]). Lifecycle events go through the
//! [`Outbox`](super::outbox::Outbox).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use policy::accounts::{AccountBook, Event, SourceKeys, TokenHash};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::conn::Redis;
use super::outbox::Outbox;
use super::wait::{self, StoreError};

/// Where the fleet's token-hash key is kept.
pub const TOKEN_KEY: &str = "gw:token-key";

/// How many times a starting gateway asks for the token-hash key before it gives up.
const KEY_ATTEMPTS: usize = 10;
/// The pause between those attempts (with each call's own timeout: about 3 to 6 s).
const KEY_RETRY_DELAY: Duration = Duration::from_millis(300);
/// How long a token hash the fleet did not know is not asked about again: made-up
/// tokens (a spray) cost one lookup each per this long, not one per request.
const MISS_TTL: Duration = Duration::from_secs(2);
/// Misses remembered at most (the memory is cleared when full).
const MAX_MISSES: usize = 65_536;

/// What the fleet knows about an account's creation. Holds no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The platform's account id.
    pub account_id: String,
    /// Hex of the keyed token hash.
    pub token_hash: String,
    /// Creation time, unix seconds.
    pub created_at: u64,
    /// When the platform deletes it unless claimed, unix seconds.
    pub expires_at: u64,
    /// Who created it.
    pub source: SourceKeys,
}

impl AccountRecord {
    /// The token hash, when the record's hex is one.
    pub fn hash(&self) -> Option<TokenHash> {
        let bytes = hex::decode(&self.token_hash).ok()?;
        Some(TokenHash::from_bytes(<[u8; 32]>::try_from(bytes).ok()?))
    }
}

/// An account as the fleet has it: its creation and the events since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAccount {
    /// Its creation.
    pub record: AccountRecord,
    /// Lifecycle events, with when they happened.
    pub events: Vec<(Event, u64)>,
}

impl FleetAccount {
    /// Enters the account into `book` (a no-op when the book has it) with its events.
    pub fn remember(&self, book: &AccountBook) {
        let Some(hash) = self.record.hash() else { return };
        let r = &self.record;
        book.record_created(&r.account_id, hash, r.created_at, r.expires_at, r.source.clone());
        for (event, at) in &self.events {
            book.mark(&r.account_id, *event, *at);
        }
    }
}

/// An asset-upload session as the fleet has it. Holds no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The account it belongs to.
    pub account_id: String,
    /// Declared size per content hash.
    pub declared: BTreeMap<String, u64>,
    /// When it was opened, unix seconds.
    pub opened_at: u64,
}

/// What a token hash the local book lacks is, as the fleet has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recalled {
    /// An account's API token.
    Account(FleetAccount),
    /// An asset-upload session's token, and the session's account.
    Session(SessionRecord, FleetAccount),
}

fn upl_key(hash: &TokenHash) -> String {
    format!("gw:upl:{}", hex::encode(hash.as_bytes()))
}

fn tok_key(hash: &TokenHash) -> String {
    format!("gw:tok:{}", hex::encode(hash.as_bytes()))
}

fn acct_key(id: &str) -> String {
    format!("gw:acct:{{{id}}}")
}

fn event_field(event: Event) -> &'static str {
    match event {
        Event::Claimed => "claimed",
        Event::Expired => "expired",
        Event::Deleted => "deleted",
    }
}

/// The account map's side of the fleet store.
pub struct FleetAccounts {
    redis: Arc<Redis>,
    outbox: Arc<Outbox>,
    retention_secs: u64,
    misses: Mutex<HashMap<TokenHash, Instant>>,
}

impl FleetAccounts {
    /// The account map on `redis`; keys live `retention_secs`.
    pub fn new(redis: Arc<Redis>, outbox: Arc<Outbox>, retention_secs: u64) -> Self {
        FleetAccounts { redis, outbox, retention_secs, misses: Mutex::default() }
    }

    /// Whether to look `hash` up: the store answers (the log's tail keeps its health
    /// current, so an outage costs requests no timeout) and it did not just miss.
    pub fn worth_asking(&self, hash: &TokenHash) -> bool {
        if !self.redis.health().is_up() {
            return false;
        }
        let misses = self.misses.lock();
        misses.get(hash).is_none_or(|at| at.elapsed() >= MISS_TTL)
    }

    /// Remembers that the fleet does not know `hash`, for [`MISS_TTL`].
    pub fn note_miss(&self, hash: TokenHash) {
        let mut misses = self.misses.lock();
        if misses.len() >= MAX_MISSES {
            misses.clear();
        }
        misses.insert(hash, Instant::now());
    }

    /// The fleet's token-hash key: this gateway's `candidate` when no gateway set one
    /// before, else the one already set. Asked a few times (a fleet starting with its
    /// Redis); without an answer the gateway cannot hash tokens as the fleet does.
    pub fn token_key(&self, candidate: &[u8]) -> Result<Vec<u8>, String> {
        let mut last = None;
        for attempt in 0..KEY_ATTEMPTS {
            if attempt > 0 {
                // At start, on the main thread, before anything serves.
                std::thread::sleep(KEY_RETRY_DELAY);
            }
            let candidate = hex::encode(candidate);
            match wait::blocking(&self.redis, move |conn| set_key(conn, candidate)) {
                Ok(key) => return Ok(key),
                Err(e) => last = Some(e),
            }
        }
        Err(format!(
            "cannot read the fleet's token-hash key from Redis ({}): {}",
            self.redis.target().urls().join(", "),
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// Puts `key` back when the fleet's Redis lost it (a restart without persistence),
    /// so gateways started later hash tokens as the running ones do.
    pub fn reassert_token_key(&self, key: &[u8]) {
        let key = hex::encode(key);
        self.outbox.push(move |conn| {
            let key = key.clone();
            async move { set_key(conn, key).await.map(|_| ()) }
        });
    }

    /// Records a creation before its answer goes on: the token hash and the record.
    /// When Redis cannot take it now, it is queued and retried; until it lands, other
    /// gateways do not know the account.
    pub fn created(&self, record: AccountRecord) {
        let hash_key = format!("gw:tok:{}", record.token_hash);
        let ttl = self.retention_secs;
        let write = move |conn: super::conn::Conn| {
            let (record, hash_key) = (record.clone(), hash_key.clone());
            async move { write_created(conn, &hash_key, &record, ttl).await }
        };
        let retry = write.clone();
        if !self.redis.health().is_up() {
            self.outbox.push(retry);
            return;
        }
        if let Err(e) = wait::blocking(&self.redis, write) {
            tracing::warn!(error = %e, "the fleet store did not take a new account; queued");
            self.outbox.push(retry);
        }
    }

    /// Records a lifecycle event (queued: nothing waits for it).
    pub fn marked(&self, account_id: &str, event: Event, at: u64) {
        let key = acct_key(account_id);
        let ttl = self.retention_secs;
        self.outbox.push(move |mut conn| {
            let key = key.clone();
            async move {
                let _: () = redis::pipe()
                    .hset(&key, event_field(event), at)
                    .ignore()
                    .expire(&key, ttl as i64)
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
        });
    }

    /// Records an asset-upload session before its answer goes on (as
    /// [`FleetAccounts::created`]: queued when Redis cannot take it now).
    pub fn upload_session(
        &self,
        hash: &TokenHash,
        account_id: &str,
        declared: &BTreeMap<String, u64>,
        now: u64,
    ) {
        let record = SessionRecord {
            account_id: account_id.to_string(),
            declared: declared.clone(),
            opened_at: now,
        };
        let Ok(json) = serde_json::to_string(&record) else { return };
        let key = upl_key(hash);
        let write = move |mut conn: super::conn::Conn| {
            let (key, json) = (key.clone(), json.clone());
            async move {
                let ttl = crate::uploads::SESSION_LIFETIME_SECS;
                let _: () = conn.set_ex(key, json, ttl).await?;
                Ok(())
            }
        };
        let retry = write.clone();
        if !self.redis.health().is_up() {
            self.outbox.push(retry);
            return;
        }
        if let Err(e) = wait::blocking(&self.redis, write) {
            tracing::warn!(error = %e, "the fleet store did not take an upload session; queued");
            self.outbox.push(retry);
        }
    }

    /// What a token hash is (an account's token or an upload session's), as the
    /// fleet has it.
    pub async fn lookup_token(&self, hash: &TokenHash) -> Result<Option<Recalled>, StoreError> {
        let (tok, upl) = (tok_key(hash), upl_key(hash));
        wait::awaited(&self.redis, move |mut conn| async move {
            let id: Option<String> = conn.get(&tok).await?;
            if let Some(id) = id {
                return Ok(read_account(conn, &id).await?.map(Recalled::Account));
            }
            let session: Option<String> = conn.get(&upl).await?;
            let Some(session) = session else { return Ok(None) };
            let session: SessionRecord = serde_json::from_str(&session)
                .map_err(|e| StoreError::Unreadable(format!("upload session: {e}")))?;
            let account = read_account(conn, &session.account_id).await?;
            Ok(account.map(|a| Recalled::Session(session, a)))
        })
        .await
    }

    /// An account by id, as the fleet has it (blocking: for the event handler).
    pub fn lookup_id(&self, account_id: &str) -> Result<Option<FleetAccount>, StoreError> {
        let id = account_id.to_string();
        wait::blocking(&self.redis, move |conn| async move { read_account(conn, &id).await })
    }
}

async fn set_key(mut conn: super::conn::Conn, candidate: String) -> Result<Vec<u8>, StoreError> {
    let _: Option<String> =
        redis::cmd("SET").arg(TOKEN_KEY).arg(candidate).arg("NX").query_async(&mut conn).await?;
    let stored: Option<String> = conn.get(TOKEN_KEY).await?;
    let stored = stored.ok_or_else(|| StoreError::Unreadable(format!("{TOKEN_KEY} is empty")))?;
    hex::decode(stored.trim())
        .ok()
        .filter(|k| k.len() >= 16)
        .ok_or_else(|| StoreError::Unreadable(format!("{TOKEN_KEY} is not a hex key")))
}

async fn write_created(
    mut conn: super::conn::Conn,
    hash_key: &str,
    record: &AccountRecord,
    ttl: u64,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(record).map_err(|e| StoreError::Unreadable(e.to_string()))?;
    let key = acct_key(&record.account_id);
    // Two commands, not one pipeline: in a cluster the keys live on different nodes.
    // The record goes first, so a hash that resolves always finds its record.
    let _: () = redis::pipe()
        .hset(&key, "created", json)
        .ignore()
        .expire(&key, ttl as i64)
        .ignore()
        .query_async(&mut conn)
        .await?;
    let _: () = conn.set_ex(hash_key, &record.account_id, ttl).await?;
    Ok(())
}

async fn read_account(
    mut conn: super::conn::Conn,
    id: &str,
) -> Result<Option<FleetAccount>, StoreError> {
    let fields: std::collections::HashMap<String, String> = conn.hgetall(acct_key(id)).await?;
    let Some(created) = fields.get("created") else { return Ok(None) };
    let record: AccountRecord = serde_json::from_str(created)
        .map_err(|e| StoreError::Unreadable(format!("account {id}: {e}")))?;
    let mut events = Vec::new();
    for event in [Event::Claimed, Event::Expired, Event::Deleted] {
        if let Some(at) = fields.get(event_field(event)).and_then(|v| v.parse().ok()) {
            events.push((event, at));
        }
    }
    Ok(Some(FleetAccount { record, events }))
}
