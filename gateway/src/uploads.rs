//! Asset-upload sessions: which account an upload token belongs to, and what its
//! manifest declared.
//!
//! `POST .../assets-upload-session` answers a JWT that authorizes the session's file
//! uploads (`POST .../workers/assets/upload`, `Authorization: Bearer <JWT>`) instead of
//! the account's API token. The gateway learns it from that answer and keeps only its
//! keyed hash, like API tokens, mapped to the account and to the size the manifest
//! declared for each file, so an upload is charged to its account and checked against
//! what was declared.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use dashmap::DashMap;
use policy::accounts::TokenHash;

/// Sessions kept per account; an account opening more forgets its oldest (its
/// uploads are then refused as unknown tokens' are: without quota, by the platform).
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 8;

/// How long a session is kept when nothing else ends it: the platform's upload
/// tokens live an hour.
pub const SESSION_LIFETIME_SECS: u64 = 3600;

/// One upload session.
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// The account it belongs to.
    pub account_id: String,
    /// Declared size per content hash.
    pub declared: Arc<BTreeMap<String, u64>>,
    /// When the gateway forgets it (Unix seconds).
    pub expires_at: u64,
}

/// Upload sessions by the keyed hash of their token.
#[derive(Default)]
pub struct UploadSessions {
    by_token: DashMap<TokenHash, UploadSession>,
    by_account: DashMap<String, VecDeque<TokenHash>>,
}

impl UploadSessions {
    /// Records a session of `account_id`.
    pub fn record(
        &self,
        token: TokenHash,
        account_id: &str,
        declared: Arc<BTreeMap<String, u64>>,
        now: u64,
    ) {
        let session = UploadSession {
            account_id: account_id.to_string(),
            declared,
            expires_at: now.saturating_add(SESSION_LIFETIME_SECS),
        };
        self.by_token.insert(token, session);
        let mut tokens = self.by_account.entry(account_id.to_string()).or_default();
        tokens.push_back(token);
        while tokens.len() > MAX_SESSIONS_PER_ACCOUNT {
            if let Some(old) = tokens.pop_front() {
                self.by_token.remove(&old);
            }
        }
    }

    /// The session of a token, until it is forgotten (its account ended, or
    /// [`UploadSessions::forget_expired`] found it past its lifetime).
    pub fn get(&self, token: &TokenHash) -> Option<UploadSession> {
        self.by_token.get(token).map(|s| s.clone())
    }

    /// Forgets the sessions of an account that ended.
    pub fn forget_account(&self, account_id: &str) {
        if let Some((_, tokens)) = self.by_account.remove(account_id) {
            for t in tokens {
                self.by_token.remove(&t);
            }
        }
    }

    /// Forgets sessions past their lifetime; returns how many.
    pub fn forget_expired(&self, now: u64) -> usize {
        let before = self.by_token.len();
        self.by_token.retain(|_, s| s.expires_at > now);
        self.by_account.retain(|_, tokens| {
            tokens.retain(|t| self.by_token.contains_key(t));
            !tokens.is_empty()
        });
        before - self.by_token.len()
    }

    /// Sessions kept.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}
