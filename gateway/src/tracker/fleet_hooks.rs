//! What the tracker needs to share its state with a fleet of gateways
//! ([`crate::fleet`]): the fleet's handles, set once at start, and the fleet's
//! token-hash key in place of the gateway's own.

use std::sync::Arc;

use policy::accounts::TokenHasher;

use super::Tracker;
use crate::fleet::member::Fleet;

impl Tracker {
    /// The fleet's key once joined, else this gateway's own.
    pub(super) fn hasher(&self) -> &TokenHasher {
        self.fleet_tokens.get().unwrap_or(&self.tokens)
    }

    /// Makes the tracker share its state with the fleet, hashing tokens with the
    /// fleet's key (once, at start, before any request).
    pub fn join_fleet(&self, fleet: Arc<Fleet>, tokens: TokenHasher) {
        let _ = self.fleet_tokens.set(tokens);
        let _ = self.fleet.set(fleet);
    }

    /// The fleet's shared state, when the gateway is part of one.
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.get()
    }

    /// Forgets what an ended account held and its upload sessions.
    pub fn forget_usage(&self, account: &str) {
        self.usage.remove(account);
        self.uploads.forget_account(account);
    }
}

impl crate::fleet::ledger::LogTarget for Tracker {
    fn book(&self) -> &policy::accounts::AccountBook {
        Tracker::book(self)
    }

    fn forget_usage(&self, account: &str) {
        Tracker::forget_usage(self, account)
    }

    fn ledger(&self) -> &policy::ledger::Ledger {
        Tracker::ledger(self)
    }

    fn blocks(&self) -> &crate::blocks::BlockList {
        Tracker::blocks(self)
    }
}
