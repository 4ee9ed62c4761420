//! The tracker's hooks into the embedded store ([`crate::store`]): reading the state
//! back at start, and one write-through call at each change, each a no-op without a
//! store. A failed write is logged (and, for an event, reported so the event is
//! answered with an error and sent again): the in-memory state goes on either way.

use std::sync::Arc;

use policy::accounts::{Event, SourceKeys, TokenHash};
use policy::ledger::LedgerEntry;
use policy::quota::AccountUsage;

use super::{EventError, Tracker};
use crate::store::{Embedded, StoreError};

impl Tracker {
    /// This tracker with its state read back from `store`, which it then writes
    /// through; token hashes use the store's key.
    pub fn with_store(mut self, store: Arc<Embedded>) -> Result<Self, StoreError> {
        self.tokens = store.token_hasher();
        let accounts = store.load_accounts(&self.book)?;
        for (id, usage) in store.load_usage()? {
            self.usage.insert(id, usage);
        }
        self.ledger = store.load_ledger()?;
        self.restore_blocks(&store)?;
        tracing::info!(accounts, entries = self.ledger.len(), "state read back from the store");
        self.store = Some(store);
        Ok(self)
    }

    /// Commits a new account (before its create answer is passed on).
    pub(super) fn store_created(
        &self,
        id: &str,
        hash: &TokenHash,
        created_at: u64,
        expires_at: u64,
        source: &SourceKeys,
    ) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.account_created(id, hash, created_at, expires_at, source) {
            tracing::error!(error = %e, account = %id, "account not committed to the store");
        }
    }

    /// Commits an account's resource counts after the platform changed them.
    pub(super) fn store_usage(&self, account: &str, usage: &AccountUsage) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.usage_changed(account, usage) {
            tracing::error!(error = %e, account, "resource counts not committed to the store");
        }
    }

    /// Commits what an event did: the event when it changed the account, the ledger
    /// entry it wrote, and the end of the counts of an account that ended.
    pub(super) fn store_event(
        &self,
        account: &str,
        changed: Option<(Event, u64)>,
        entry: Option<&LedgerEntry>,
        ended: bool,
    ) -> Result<(), EventError> {
        let Some(store) = &self.store else { return Ok(()) };
        store
            .event_applied(account, changed, entry, ended)
            .map_err(|e| EventError::Store(format!("event not committed to the store: {e}")))
    }

    /// Forgets in the store what the book forgot.
    pub(super) fn store_prune(&self) {
        let Some(store) = &self.store else { return };
        let live: Vec<String> =
            self.book.snapshot().into_iter().map(|(a, _)| a.account_id).collect();
        if let Err(e) = store.keep_only_accounts(&live) {
            tracing::error!(error = %e, "cannot prune the store's accounts");
        }
    }
}

/// The store's row for an operator block: kind and value are the two halves of the
/// target's text (`ip:198.51.100.7`, `net:198.51.100.0/24`, `tls_fp:…`).
fn block_row(block: &crate::blocks::Block) -> crate::store::blocks::Block {
    let text = block.target.to_string();
    let (kind, value) = text.split_once(':').unwrap_or(("target", text.as_str()));
    crate::store::blocks::Block {
        kind: kind.to_string(),
        value: value.to_string(),
        until: Some(block.expires_at),
        reason: block.reason.clone(),
        created: block.created_at,
    }
}

impl Tracker {
    /// Reads the operator's blocks back from the store (at start); rows the block list
    /// cannot parse are logged and skipped.
    pub(super) fn restore_blocks(&self, store: &Embedded) -> Result<(), StoreError> {
        let rows = store.list_blocks()?;
        let blocks = rows
            .into_iter()
            .filter_map(|r| match format!("{}:{}", r.kind, r.value).parse() {
                Ok(target) => Some(crate::blocks::Block {
                    target,
                    reason: r.reason,
                    created_at: r.created,
                    expires_at: r.until.unwrap_or(u64::MAX),
                    refused: 0,
                }),
                Err(e) => {
                    tracing::warn!(kind = %r.kind, error = %e, "stored block skipped");
                    None
                }
            })
            .collect();
        // Lapsed blocks are never in force; the list drops them on its own schedule.
        self.blocks.restore(blocks, 0);
        Ok(())
    }

    /// Commits an operator's block, so a restart keeps it.
    pub fn store_block(&self, block: &crate::blocks::Block) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.put_block(&block_row(block)) {
            tracing::error!(error = %e, "block not committed to the store");
        }
    }

    /// Removes a lifted block from the store.
    pub fn store_unblock(&self, target: &crate::blocks::BlockTarget) {
        let Some(store) = &self.store else { return };
        let text = target.to_string();
        let (kind, value) = text.split_once(':').unwrap_or(("target", text.as_str()));
        if let Err(e) = store.remove_block(kind, value) {
            tracing::error!(error = %e, "lifted block not removed from the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::platform::PlatformEvent;
    use policy::quota::{Classified, ResourceKind, ResourceOp};

    fn answer(id: &str, token: &str) -> Vec<u8> {
        serde_json::json!({"success": true, "result": {"account": {
            "id": id, "apiToken": token, "expiresAt": "1970-01-01T01:00:00Z"}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn accounts_counts_and_ledger_come_back_from_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.db");
        let policy = policy::compile_str("p.toml", "version = 1\n").expect("policy");
        let creator = SourceKeys::new("198.51.100.9".parse().expect("ip"), None, None);
        let queue = Classified {
            account_id: Some("acct-live".into()),
            op: ResourceOp::Create { kind: ResourceKind::Queue, name: None },
        };
        {
            let store = Arc::new(Embedded::open(&path, None).expect("store"));
            let before =
                Tracker::new(&policy, None, None).expect("t").with_store(store).expect("s");
            before.record_created(&answer("acct-live", "tok-live"), creator.clone(), 0);
            before.record_created(&answer("acct-gone", "tok-gone"), creator.clone(), 0);
            before.commit("acct-live", &queue, Some("q-1"));
            let gone = PlatformEvent {
                kind: "deleted".into(),
                account_id: "acct-gone".into(),
                at: None,
                removed: None,
            };
            before.apply_event(&policy, &gone, 10).expect("applied").expect("charged");
        }
        let store = Arc::new(Embedded::open(&path, None).expect("reopened"));
        let after = Tracker::new(&policy, None, None).expect("t").with_store(store).expect("s");
        let info = after.account_for(&after.hash_token("tok-live")).expect("same key, same hash");
        assert_eq!(info.source, creator);
        assert_eq!(after.usage_of("acct-live").queues, 1, "counts survive");
        assert_eq!(after.ledger().len(), 1);
        assert_eq!(
            after.book().get("acct-gone").map(|a| a.state),
            Some(policy::accounts::AccountState::Deleted)
        );
    }
}
