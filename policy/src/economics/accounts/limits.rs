//! Per-source account limits, the model of `[accounts]`.

use super::{describe, human_secs, AccountBook, AccountInfo, SourceKey, SourceKeys, SourceKind};
use std::collections::BTreeMap;

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
                        .map_or(self.window_secs, |t| (t + self.window_secs).saturating_sub(now))
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
    if worst.as_ref().is_none_or(|w| r.retry_after_secs > w.retry_after_secs) {
        *worst = Some(r);
    }
}
