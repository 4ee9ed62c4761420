//! This gateway as a member of the fleet: the handles on the shared account map, the
//! resource counts and the log, and [`join`], which makes the tracker use them.
//!
//! Joining happens once at start, before the gateway serves: the fleet's token-hash
//! key replaces the tracker's own (so tokens hash alike on every gateway), the log is
//! replayed into the book and the ledger, and the tail starts. From then on the
//! tracker calls [`Fleet`] at each state change (one call each).

use std::sync::Arc;

use policy::accounts::{AccountBook, Event, SourceKeys, TokenHash};
use policy::ledger::LedgerEntry;
use policy::Policy;

use super::accounts::{AccountRecord, FleetAccounts};
use super::conn::Redis;
use super::ledger::{FleetLog, LogEntry};
use super::outbox::Outbox;
use super::usage::FleetUsage;

/// The fleet's shared state, as this gateway reaches it.
pub struct Fleet {
    /// The account map and the token-hash key.
    pub accounts: FleetAccounts,
    /// Resource counts and their reservations.
    pub usage: FleetUsage,
    /// The log every gateway tails.
    pub log: FleetLog,
    /// Pending writes.
    pub outbox: Arc<Outbox>,
    /// The connection.
    pub redis: Arc<Redis>,
}

impl Fleet {
    /// A new account (called once its creation answer is read, before the answer
    /// goes on): written to the account map synchronously, to the log queued.
    pub fn created(
        &self,
        account_id: &str,
        hash: &TokenHash,
        created_at: u64,
        expires_at: u64,
        source: &SourceKeys,
    ) {
        let record = AccountRecord {
            account_id: account_id.to_string(),
            token_hash: hex::encode(hash.as_bytes()),
            created_at,
            expires_at,
            source: source.clone(),
        };
        self.accounts.created(record.clone());
        self.log.publish(&LogEntry::Created(record));
    }

    /// An account's lifecycle event this gateway applied.
    pub fn marked(&self, account_id: &str, event: Event, at: u64) {
        self.accounts.marked(account_id, event, at);
        self.log.publish(&LogEntry::Event { account_id: account_id.to_string(), event, at });
    }

    /// A block an operator set through this gateway: every gateway of the fleet
    /// refuses its target from when its log brings it (within one tail interval).
    pub fn blocked(&self, block: &crate::blocks::Block) {
        self.log.publish(&LogEntry::Block(block.clone()));
    }

    /// A block an operator lifted through this gateway.
    pub fn unblocked(&self, target: &crate::blocks::BlockTarget, at: u64) {
        self.log.publish(&LogEntry::Unblock { target: target.to_string(), at });
    }

    /// A ledger entry this gateway wrote.
    pub fn charged(&self, entry: &LedgerEntry) {
        self.log.publish(&LogEntry::Ledger(entry.clone()));
    }

    /// Finds an account this gateway's book lacks (an event for an account created
    /// through another gateway, before the log brought it) and enters it into `book`.
    /// A store that cannot be reached finds nothing.
    pub fn recall_id(&self, book: &AccountBook, account_id: &str) -> bool {
        match self.accounts.lookup_id(account_id) {
            Ok(Some(account)) => {
                account.remember(book);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, account = account_id, "cannot look the account up in the fleet store");
                false
            }
        }
    }
}

/// Seconds the fleet keeps state: the longest budget or account-limit window plus a
/// day for late events, as each gateway's own memory ([`crate::tracker::Tracker::forget_old`]).
pub fn retention_secs(policy: &Policy) -> u64 {
    let budgets = policy.budgets();
    budgets
        .rules
        .iter()
        .map(|r| r.window_secs)
        .chain(budgets.global.iter().map(|g| g.window_secs))
        .chain([budgets.window_secs, policy.account_limits().window_secs])
        .max()
        .unwrap_or(86_400)
        .saturating_add(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_keeps_state_for_the_longest_window_and_a_day() {
        let default = policy::compile_str("p.toml", "version = 1\n").expect("policy");
        assert_eq!(retention_secs(&default), 2 * 86_400);
        let week = policy::compile_str("p.toml", "version = 1\n[budgets]\nwindow_secs = 604800\n")
            .expect("policy");
        assert_eq!(retention_secs(&week), 604_800 + 86_400);
    }
}
