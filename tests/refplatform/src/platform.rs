//! The platform: shared state and the operations behind the HTTP API.
//!
//! HTTP handlers (in `provisioning`, `workers`, `resources`, `claim`,
//! `internal`) are thin: they parse, then call into [`Platform`], which
//! owns all state behind one lock. Keeping the logic here lets in-process
//! tests drive the same code without HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::accounts::{Account, AccountSnapshot, AccountStatus, ResourceCounts};
use crate::clock::Clock;
use crate::config::PlatformConfig;
use crate::envelope::ApiError;
use crate::events::{self, EventType, PlatformEvent};
use crate::pow::ChallengeBook;
use crate::sweeper::{CleanupReason, CleanupRecord};

/// One API call as recorded for inspection: never the query string, and
/// claim secrets are redacted, so the log holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path without query; `/claim/<secret>` becomes `/claim/{redacted}`.
    pub path: String,
    /// Response status.
    pub status: u16,
}

/// What account creation hands back. Contains the secrets: give it only to
/// the client that created the account.
#[derive(Debug, Clone)]
pub struct ProvisionedAccount {
    /// 32-hex account id.
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Bearer token for the account's API calls.
    pub api_token: String,
    /// When the unclaimed account will be deleted.
    pub expires_at: OffsetDateTime,
    /// Secret claim URL (`{public_base_url}/claim/{secret}`).
    pub claim_url: String,
    /// Until when the claim URL works (same as `expires_at`).
    pub claim_expires_at: OffsetDateTime,
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// No account has this claim secret (never issued, already used, or
    /// the account is gone).
    #[error("unknown or already used claim link")]
    Unknown,
    /// The account expired before it was claimed.
    #[error("this temporary account has expired and can no longer be claimed")]
    Expired,
}

/// An asset upload session: which hashes the client still has to send.
#[derive(Debug, Clone)]
pub(crate) struct AssetSession {
    pub account_id: String,
    /// hash -> declared size, for files not yet uploaded.
    pub pending: HashMap<String, u64>,
    pub completion_token: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub accounts: HashMap<String, Account>,
    /// sha256(api token) -> account id.
    pub tokens: HashMap<[u8; 32], String>,
    /// sha256(claim secret) -> account id.
    pub claims: HashMap<[u8; 32], String>,
    /// sha256(upload session token) -> session.
    pub asset_sessions: HashMap<[u8; 32], AssetSession>,
}

/// The emulated temporary-deploy platform.
pub struct Platform {
    pub(crate) config: PlatformConfig,
    clock: Arc<dyn Clock>,
    pub(crate) state: Mutex<State>,
    pub(crate) challenges: Mutex<ChallengeBook>,
    base_url: RwLock<String>,
    request_log: Mutex<Vec<RequestRecord>>,
    cleanup_log: Mutex<Vec<CleanupRecord>>,
    event_log: Mutex<Vec<PlatformEvent>>,
    deliveries: Arc<Deliveries>,
    http: reqwest::Client,
}

/// Event deliveries still under way, so a test can wait for the receiver to have been
/// told (or for delivery to have failed) instead of polling the receiver.
#[derive(Default)]
struct Deliveries {
    pending: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

impl Deliveries {
    fn start(self: &Arc<Self>) -> DeliveryGuard {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        DeliveryGuard(self.clone())
    }
}

/// Marks one delivery finished when dropped (also when its task is cancelled).
struct DeliveryGuard(Arc<Deliveries>);

impl Drop for DeliveryGuard {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("base_url", &*self.base_url.read()).finish_non_exhaustive()
    }
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn random_uuid() -> String {
    let h = random_hex(16);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// RFC 3339 text of `t` (falls back to the unix timestamp, which cannot
/// happen for in-range dates).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Some(token.trim())
    } else {
        None
    }
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers)
}

impl Platform {
    /// A platform with `config`, reading time from `clock`.
    pub fn new(config: PlatformConfig, clock: Arc<dyn Clock>) -> Arc<Self> {
        let challenges = ChallengeBook::new(
            config.pow_k,
            config.pow_g,
            config.challenge_ttl,
            config.pow_spot_checks,
        );
        let base = config.public_base_url.clone().unwrap_or_else(|| "http://127.0.0.1".to_string());
        Arc::new(Self {
            config,
            clock,
            state: Mutex::new(State::default()),
            challenges: Mutex::new(challenges),
            base_url: RwLock::new(base.trim_end_matches('/').to_string()),
            request_log: Mutex::new(Vec::new()),
            cleanup_log: Mutex::new(Vec::new()),
            event_log: Mutex::new(Vec::new()),
            deliveries: Arc::new(Deliveries::default()),
            http: reqwest::Client::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// Current time by the injected clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Base of claim URLs.
    pub fn public_base_url(&self) -> String {
        self.base_url.read().clone()
    }

    /// Set the base of claim URLs (done by `spawn` once the port is known,
    /// unless the config fixed it).
    pub fn set_public_base_url(&self, url: &str) {
        *self.base_url.write() = url.trim_end_matches('/').to_string();
    }

    fn lifetime(&self) -> time::Duration {
        time::Duration::try_from(self.config.account_lifetime).unwrap_or(time::Duration::hours(1))
    }

    /// Create a temporary account without proof-of-work. The HTTP path
    /// checks the proof first; in-process tests may call this directly.
    pub fn provision_account(&self) -> ProvisionedAccount {
        let now = self.now();
        let id = random_hex(16);
        let name = format!("Temporary account {}", &id[..8]);
        let subdomain = format!("tmp-{}", &id[..10]);
        let expires_at = now + self.lifetime();
        let token = random_secret();
        let claim_secret = random_secret();
        let claim_url = format!("{}/claim/{}", self.public_base_url(), claim_secret);
        let mut st = self.state.lock();
        st.tokens.insert(digest(&token), id.clone());
        st.claims.insert(digest(&claim_secret), id.clone());
        st.accounts
            .insert(id.clone(), Account::new(id.clone(), name.clone(), subdomain, now, expires_at));
        drop(st);
        tracing::info!(account = %id, expires_at = %rfc3339(expires_at), "temporary account created");
        ProvisionedAccount {
            account_id: id,
            name,
            api_token: token,
            expires_at,
            claim_url,
            claim_expires_at: expires_at,
        }
    }

    /// Check the bearer token in `headers` against `account_id`: 401 when
    /// missing, unknown, or its account is expired/deleted; 403 when it
    /// belongs to a different account.
    pub(crate) fn authorize(&self, headers: &HeaderMap, account_id: &str) -> Result<(), ApiError> {
        let token = bearer(headers).ok_or_else(ApiError::unauthenticated)?;
        let now = self.now();
        let st = self.state.lock();
        let owner = st.tokens.get(&digest(token)).ok_or_else(ApiError::unauthenticated)?;
        let acct = st.accounts.get(owner).ok_or_else(ApiError::unauthenticated)?;
        if !acct.usable_at(now) {
            return Err(ApiError::unauthenticated());
        }
        if owner != account_id {
            return Err(ApiError::forbidden());
        }
        Ok(())
    }

    /// Authorize, then run `f` on the account under the state lock.
    pub(crate) fn with_account<T>(
        &self,
        headers: &HeaderMap,
        account_id: &str,
        f: impl FnOnce(&mut Account, OffsetDateTime) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.authorize(headers, account_id)?;
        let now = self.now();
        let mut st = self.state.lock();
        let acct = st.accounts.get_mut(account_id).ok_or_else(ApiError::unauthenticated)?;
        f(acct, now)
    }

    /// Claim the account behind `secret`. The secret is single-use; a
    /// claimed account is kept past its expiry.
    pub fn claim(&self, secret: &str) -> Result<AccountSnapshot, ClaimError> {
        let now = self.now();
        let d = digest(secret);
        let mut st = self.state.lock();
        let id = st.claims.get(&d).cloned().ok_or(ClaimError::Unknown)?;
        let acct = st.accounts.get_mut(&id).ok_or(ClaimError::Unknown)?;
        match acct.effective_status(now) {
            AccountStatus::Live => {}
            AccountStatus::Expired => return Err(ClaimError::Expired),
            AccountStatus::Claimed | AccountStatus::Deleted => return Err(ClaimError::Unknown),
        }
        acct.status = AccountStatus::Claimed;
        acct.status_changed_at = Some(now);
        let snap = acct.snapshot(now);
        st.claims.remove(&d);
        drop(st);
        tracing::info!(account = %id, "temporary account claimed");
        self.emit(PlatformEvent {
            kind: EventType::Claimed,
            account_id: id,
            at: now,
            removed: ResourceCounts::default(),
        });
        Ok(snap)
    }

    /// True if `secret` currently names a claimable account (for the claim
    /// page's GET).
    pub(crate) fn claimable(&self, secret: &str) -> Result<AccountSnapshot, ClaimError> {
        let now = self.now();
        let st = self.state.lock();
        let id = st.claims.get(&digest(secret)).ok_or(ClaimError::Unknown)?;
        let acct = st.accounts.get(id).ok_or(ClaimError::Unknown)?;
        match acct.effective_status(now) {
            AccountStatus::Live => Ok(acct.snapshot(now)),
            AccountStatus::Expired => Err(ClaimError::Expired),
            _ => Err(ClaimError::Unknown),
        }
    }

    /// Remove an account and everything in it, leaving a tombstone with
    /// `reason`'s status. Revokes its token and claim secret, records the
    /// cleanup and emits the event. `None` if it was already gone.
    pub(crate) fn remove_account(&self, id: &str, reason: CleanupReason) -> Option<CleanupRecord> {
        let now = self.now();
        let mut st = self.state.lock();
        let acct = st.accounts.get_mut(id)?;
        if matches!(acct.status, AccountStatus::Expired | AccountStatus::Deleted) {
            return None;
        }
        let removed = acct.purge();
        acct.status = match reason {
            CleanupReason::Expired => AccountStatus::Expired,
            CleanupReason::Deleted => AccountStatus::Deleted,
        };
        acct.status_changed_at = Some(now);
        st.tokens.retain(|_, owner| owner != id);
        st.claims.retain(|_, owner| owner != id);
        st.asset_sessions.retain(|_, s| s.account_id != id);
        drop(st);
        let record = CleanupRecord { account_id: id.to_string(), at: now, reason, removed };
        tracing::info!(account = %id, ?reason, ?removed, "account removed");
        self.cleanup_log.lock().push(record.clone());
        self.emit(PlatformEvent {
            kind: match reason {
                CleanupReason::Expired => EventType::Expired,
                CleanupReason::Deleted => EventType::Deleted,
            },
            account_id: id.to_string(),
            at: now,
            removed,
        });
        Some(record)
    }

    /// Delete an account on request (not expiry).
    pub fn delete_account(&self, id: &str) -> Option<CleanupRecord> {
        self.remove_account(id, CleanupReason::Deleted)
    }

    /// Delete every unclaimed account whose lifetime has passed.
    pub fn sweep(&self) -> Vec<CleanupRecord> {
        let now = self.now();
        let due: Vec<String> = {
            let st = self.state.lock();
            st.accounts
                .values()
                .filter(|a| a.status == AccountStatus::Live && now >= a.expires_at)
                .map(|a| a.id.clone())
                .collect()
        };
        due.iter().filter_map(|id| self.remove_account(id, CleanupReason::Expired)).collect()
    }

    /// Snapshots of all accounts, tombstones included, oldest first.
    pub fn accounts(&self) -> Vec<AccountSnapshot> {
        let now = self.now();
        let st = self.state.lock();
        let mut v: Vec<_> = st.accounts.values().map(|a| a.snapshot(now)).collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Snapshot of one account.
    pub fn account(&self, id: &str) -> Option<AccountSnapshot> {
        let now = self.now();
        self.state.lock().accounts.get(id).map(|a| a.snapshot(now))
    }

    /// Every API call so far (method, path, status), oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.request_log.lock().clone()
    }

    pub(crate) fn record_request(&self, rec: RequestRecord) {
        self.request_log.lock().push(rec);
    }

    /// Every cleanup so far, oldest first.
    pub fn cleanup_log(&self) -> Vec<CleanupRecord> {
        self.cleanup_log.lock().clone()
    }

    /// Every event emitted so far (whether or not delivery is configured).
    pub fn event_log(&self) -> Vec<PlatformEvent> {
        self.event_log.lock().clone()
    }

    /// Waits until every event emitted so far has been delivered (or its delivery
    /// failed): after `sweep()` or a claim, the receiver has been told.
    pub async fn events_settled(&self) {
        loop {
            // Register before looking, so the last delivery finishing in between is seen.
            let settled = self.deliveries.settled.notified();
            if self.deliveries.pending.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Record an event and, if a receiver is configured and a tokio runtime
    /// is available, deliver it in the background.
    fn emit(&self, event: PlatformEvent) {
        self.event_log.lock().push(event.clone());
        let Some(cfg) = self.config.events.clone().filter(|c| !c.url.is_empty()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let (guard, http) = (self.deliveries.start(), self.http.clone());
                handle.spawn(async move {
                    events::deliver(http, cfg, event).await;
                    drop(guard);
                });
            }
            Err(_) => {
                tracing::warn!(kind = ?event.kind, account = %event.account_id, "no tokio runtime; event not delivered");
            }
        }
    }
}
