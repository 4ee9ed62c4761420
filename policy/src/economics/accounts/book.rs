//! The account book: every temporary account seen created and its lifecycle.

use super::{SourceKey, SourceKeys, TokenHash};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

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
pub(super) struct BookInner {
    pub(super) accounts: HashMap<String, AccountInfo>,
    by_token: HashMap<TokenHash, String>,
    /// Account ids per source key, in creation order.
    pub(super) by_source: HashMap<SourceKey, Vec<String>>,
}

/// Concurrent record of the temporary accounts created through the gateway.
///
/// Readers (every authenticated request looks up its token) vastly outnumber writers
/// (account creation, lifecycle events), hence a read-write lock.
#[derive(Default)]
pub struct AccountBook {
    pub(super) inner: RwLock<BookInner>,
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
            inner.by_source.entry(key).or_default().push(account_id.to_string());
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
        let mut out: Vec<AccountInfo> =
            inner.accounts.values().filter(|a| a.is_expired_unclaimed(now)).cloned().collect();
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
            ids.iter().filter_map(|id| inner.accounts.get(id)).filter(|a| a.is_live(now)).count()
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
        out.sort_by(|a, b| {
            (a.0.created_at, &a.0.account_id).cmp(&(b.0.created_at, &b.0.account_id))
        });
        out
    }

    /// How many accounts are live, claimed, expired (told so, or past their expiry
    /// unclaimed) and deleted at `now`, in that order: one pass under the read lock,
    /// cheap enough for every metrics scrape (unlike [`AccountBook::snapshot`]).
    pub fn count_by_state(&self, now: u64) -> [usize; 4] {
        let mut counts = [0; 4];
        for info in self.inner.read().accounts.values() {
            let slot = match info.state {
                AccountState::Live if info.is_live(now) => 0,
                AccountState::Claimed => 1,
                AccountState::Live | AccountState::Expired => 2,
                AccountState::Deleted => 3,
            };
            counts[slot] += 1;
        }
        counts
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
