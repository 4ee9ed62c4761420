//! Temporary accounts through the gateway: who created each one, what it holds, and
//! what its cleanup cost its creator.
//!
//! The pure logic lives in the `policy` crate ([`policy::accounts`], [`policy::quota`],
//! [`policy::ledger`], [`policy::pow`]); this module holds the state of one gateway
//! process and the glue the request phases call:
//! - provisioning answers teach it the account id, expiry and a keyed hash of the
//!   token (never the token), recorded against the creating source's keys;
//! - later calls carrying that token are attributed to the account and its creator;
//! - resource operations are checked against the account's quotas before forwarding
//!   and counted when the platform answers 2xx;
//! - platform events (and a reconciliation pass as fallback) turn expired-unclaimed
//!   accounts into ledger charges and claims into credit.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use parking_lot::Mutex;
use policy::accounts::{AccountBook, AccountInfo, Event, SourceKeys, TokenHash, TokenHasher};
use policy::ledger::{Ledger, LedgerEntry};
use policy::platform::CreatedAccount;
use policy::pow::ChallengeBook;
use policy::quota::{AccountUsage, Classified, QuotaRefusal, Reservation, ResourceCounts};
use policy::Policy;

use crate::held::HeldBudget;
use crate::uploads::UploadSessions;

use policy::platform::PlatformEvent;

mod durable;
mod fleet_hooks;

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Unknown `type`.
    #[error("unknown event type \"{0}\" (expected claimed, expired or deleted)")]
    UnknownType(String),
    /// The account was not created through this gateway (or it forgot it).
    #[error("account {0} is unknown to this gateway")]
    UnknownAccount(String),
    /// Applied in memory but not committed to the store: not acknowledged (the store's
    /// disk needs attention; the running gateway still acts on the event).
    #[error("{0}")]
    Store(String),
}

/// Per-process account state.
pub struct Tracker {
    book: AccountBook,
    usage: DashMap<String, AccountUsage>,
    ledger: Ledger,
    challenges: ChallengeBook,
    tokens: TokenHasher,
    journal: Option<crate::journal::Journal>,
    ledger_file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    pow_verifies: AtomicU64,
    pow_hashes: AtomicU64,
    uploads: UploadSessions,
    held: Arc<HeldBudget>,
    blocks: crate::blocks::BlockList,
    decisions: crate::decisions::DecisionTally,
    /// The fleet's shared state, once joined ([`crate::fleet::join::join`]).
    fleet: OnceLock<Arc<crate::fleet::member::Fleet>>,
    /// The fleet's token-hash key, which replaces `tokens` once joined.
    fleet_tokens: OnceLock<TokenHasher>,
    /// The embedded store, when `[store] path` is set: written through at each change.
    store: Option<Arc<crate::store::Embedded>>,
}

impl Tracker {
    /// A tracker; `ledger_file`, when given, is loaded (if present) and appended to.
    /// `journal_file`, when given, keeps the account book across restarts (see
    /// [`crate::journal`]); token hashes then use a key stored beside it.
    pub fn new(
        policy: &Policy,
        ledger_file: Option<PathBuf>,
        journal_file: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let book = AccountBook::new();
        let (tokens, journal) = match &journal_file {
            Some(path) => {
                let tokens = crate::journal::token_hasher(path)?;
                let (journal, skipped) = crate::journal::Journal::open(path, &book)?;
                if skipped > 0 {
                    tracing::warn!(skipped, file = %path.display(), "unreadable account-journal lines skipped");
                }
                tracing::info!(accounts = book.len(), "account journal replayed");
                (tokens, Some(journal))
            }
            None => (TokenHasher::random(), None),
        };
        let mut ledger = Ledger::new();
        let mut sink = None;
        if let Some(path) = ledger_file {
            if path.exists() {
                let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
                ledger = Ledger::read_json_lines(reader)
                    .map_err(|e| std::io::Error::other(format!("{}: {e:?}", path.display())))?;
            }
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            sink = Some(Mutex::new(std::io::BufWriter::new(file)));
        }
        Ok(Tracker {
            book,
            usage: DashMap::new(),
            ledger,
            challenges: ChallengeBook::from_policy(policy.pow()),
            tokens,
            journal,
            ledger_file: sink,
            pow_verifies: AtomicU64::new(0),
            pow_hashes: AtomicU64::new(0),
            uploads: UploadSessions::default(),
            held: Arc::new(HeldBudget::default()),
            blocks: crate::blocks::BlockList::default(),
            decisions: crate::decisions::DecisionTally::default(),
            fleet: OnceLock::new(),
            fleet_tokens: OnceLock::new(),
            store: None,
        })
    }

    /// The operator's blocks, checked first by every request.
    pub fn blocks(&self) -> &crate::blocks::BlockList {
        &self.blocks
    }

    /// What the request checks decided, in total and per address.
    pub fn decisions(&self) -> &crate::decisions::DecisionTally {
        &self.decisions
    }

    /// The keyed hash of a bearer token.
    pub fn hash_token(&self, token: &str) -> TokenHash {
        self.hasher().hash(token)
    }

    /// The account a token belongs to, if it was created through this gateway: an
    /// account's API token, or the upload token of one of its asset-upload sessions.
    pub fn account_for(&self, token: &TokenHash) -> Option<AccountInfo> {
        self.book.by_token(token).or_else(|| {
            let session = self.uploads.get(token)?;
            self.book.get(&session.account_id)
        })
    }

    /// Asset-upload sessions learnt from the platform's answers.
    pub fn uploads(&self) -> &UploadSessions {
        &self.uploads
    }

    /// Remembers an asset-upload session's token (hashed here, then dropped).
    pub fn record_upload_session(
        &self,
        jwt: &str,
        account: &str,
        declared: Arc<std::collections::BTreeMap<String, u64>>,
        now: u64,
    ) {
        let hash = self.hasher().hash(jwt);
        if let Some(fleet) = self.fleet() {
            fleet.accounts.upload_session(&hash, account, &declared, now);
        }
        self.uploads.record(hash, account, declared, now);
    }

    /// The gateway-wide budget of held request-body bytes.
    pub fn held(&self) -> &Arc<HeldBudget> {
        &self.held
    }

    /// Account book (read-only use: queries).
    pub fn book(&self) -> &AccountBook {
        &self.book
    }

    /// The ledger (queries).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Counts one verification of the gateway's extra proof-of-work segments.
    pub fn note_pow_verify(&self, hashes: u64) {
        self.pow_verifies.fetch_add(1, Ordering::Relaxed);
        self.pow_hashes.fetch_add(hashes, Ordering::Relaxed);
    }

    /// (verifications, hashes spent) so far: the cost of adaptive proof-of-work to
    /// the gateway, bounded by `(spot_checks + 1) * g` per verification.
    pub fn pow_cost(&self) -> (u64, u64) {
        (self.pow_verifies.load(Ordering::Relaxed), self.pow_hashes.load(Ordering::Relaxed))
    }

    /// Every challenge the gateway passed on: to whom, at what difficulty, burned or not.
    pub fn challenges(&self) -> &ChallengeBook {
        &self.challenges
    }

    /// Records an account from the platform's 2xx answer to `POST .../previews`.
    /// Returns the account id. The token is hashed here and dropped.
    pub fn record_created(&self, answer: &[u8], source: SourceKeys, now: u64) -> Option<String> {
        let created = CreatedAccount::parse(answer)?;
        let id = created.id.clone();
        let token_hash = self.hasher().hash(&created.api_token);
        let expires_at = created.expires_at_or(now);
        drop(created);
        // Book first, journal second: a compaction in between writes the account from
        // the book, and the later line is a duplicate that replay ignores.
        if self.book.record_created(&id, token_hash, now, expires_at, source.clone()) {
            self.usage.insert(id.clone(), AccountUsage::new());
            if let Some(journal) = &self.journal {
                journal.created(&id, &token_hash, now, expires_at, &source);
            }
            if let Some(fleet) = self.fleet() {
                fleet.created(&id, &token_hash, now, expires_at, &source);
            }
            self.store_created(&id, &token_hash, now, expires_at, &source);
        }
        Some(id)
    }

    /// Checks and reserves an operation in one step, under the account's usage entry,
    /// so concurrent calls cannot all pass at `limit - 1`.
    pub fn reserve_quota(
        &self,
        policy: &Policy,
        account: &str,
        op: &Classified,
    ) -> Result<Reservation, QuotaRefusal> {
        self.usage.entry(account.to_string()).or_default().reserve(policy.quotas(), &op.op)
    }

    /// Adds one uploaded asset file, of its real size, to an upload's reservation.
    pub fn reserve_asset_file(
        &self,
        policy: &Policy,
        account: &str,
        reservation: &mut Reservation,
        hash: &str,
        bytes: u64,
    ) -> Result<(), QuotaRefusal> {
        self.usage.entry(account.to_string()).or_default().reserve_asset_file(
            policy.quotas(),
            reservation,
            hash,
            bytes,
        )
    }

    /// Gives back a reservation the platform did not answer 2xx.
    pub fn release(&self, account: &str, reservation: Reservation) {
        if let Some(mut usage) = self.usage.get_mut(account) {
            usage.release(reservation);
        }
    }

    /// Settles a reservation the platform answered 2xx.
    pub fn settle(
        &self,
        account: &str,
        reservation: Reservation,
        op: &Classified,
        created_id: Option<&str>,
    ) {
        let mut usage = self.usage.entry(account.to_string()).or_default();
        usage.settle(reservation, &op.op, created_id);
        self.store_usage(account, &usage);
    }

    /// Counts an operation the platform answered 2xx.
    pub fn commit(&self, account: &str, op: &Classified, created_id: Option<&str>) {
        let mut usage = self.usage.entry(account.to_string()).or_default();
        usage.commit(&op.op, created_id);
        self.store_usage(account, &usage);
    }

    /// What the gateway saw the account create.
    pub fn usage_of(&self, account: &str) -> ResourceCounts {
        self.usage.get(account).map(|u| u.counts()).unwrap_or_default()
    }

    /// Applies a platform event: marks the account and writes the ledger entry.
    pub fn apply_event(
        &self,
        policy: &Policy,
        event: &PlatformEvent,
        now: u64,
    ) -> Result<Option<LedgerEntry>, EventError> {
        let at = event.at_unix().unwrap_or(now);
        let kind = match event.kind.as_str() {
            "claimed" => Event::Claimed,
            "expired" => Event::Expired,
            "deleted" => Event::Deleted,
            other => return Err(EventError::UnknownType(other.to_string())),
        };
        let info = self
            .book
            .get(&event.account_id)
            .or_else(|| {
                let fleet = self.fleet()?;
                fleet.recall_id(&self.book, &event.account_id).then_some(())?;
                self.book.get(&event.account_id)
            })
            .ok_or_else(|| EventError::UnknownAccount(event.account_id.clone()))?;
        let marked = self.book.mark(&event.account_id, kind, at);
        if marked {
            if let Some(journal) = &self.journal {
                journal.event(&event.account_id, kind, at);
            }
            if let Some(fleet) = self.fleet() {
                fleet.marked(&event.account_id, kind, at);
            }
        }
        let resources = match event.removed {
            // The platform's own count of what it cleaned up is authoritative, so the
            // ledger's totals match the platform's cleanup.
            Some(r) if kind != Event::Claimed => r.into(),
            _ => self.usage_of(&event.account_id),
        };
        let entry = match kind {
            Event::Claimed => self.ledger.credit_claimed(
                &event.account_id,
                &info.source,
                resources,
                at,
                policy.costs(),
            ),
            Event::Expired | Event::Deleted => self.ledger.charge_expired_unclaimed(
                &event.account_id,
                &info.source,
                resources,
                at,
                policy.costs(),
            ),
        };
        if kind != Event::Claimed {
            self.usage.remove(&event.account_id);
            self.uploads.forget_account(&event.account_id);
        }
        let ended = kind != Event::Claimed;
        self.store_event(&event.account_id, marked.then_some((kind, at)), entry.as_ref(), ended)?;
        if let Some(entry) = &entry {
            self.persist(entry);
            if let Some(fleet) = self.fleet() {
                fleet.charged(entry);
            }
            tracing::info!(account = %entry.account_id, units = entry.units, reason = ?entry.reason, "ledger entry");
        }
        Ok(entry)
    }

    /// Live accounts past their expiry at `now` that no event has settled yet: what a
    /// reconciliation pass asks the platform about.
    pub fn overdue(&self, now: u64) -> Vec<AccountInfo> {
        self.book
            .expired_unclaimed(now)
            .into_iter()
            .filter(|a| a.state == policy::accounts::AccountState::Live)
            .collect()
    }

    /// Accounts past their expiry without any event after `grace_secs`: the fallback
    /// when events are lost. Charged from what the gateway saw them create.
    pub fn charge_silent_expiries(
        &self,
        policy: &Policy,
        now: u64,
        grace_secs: u64,
    ) -> Vec<LedgerEntry> {
        let mut out = Vec::new();
        for info in self.book.take_expired_unclaimed(now.saturating_sub(grace_secs)) {
            if let Some(journal) = &self.journal {
                journal.event(&info.account_id, Event::Expired, info.expires_at);
            }
            if let Some(fleet) = self.fleet() {
                fleet.marked(&info.account_id, Event::Expired, info.expires_at);
            }
            let resources = self.usage_of(&info.account_id);
            let entry = self.ledger.charge_expired_unclaimed(
                &info.account_id,
                &info.source,
                resources,
                info.expires_at,
                policy.costs(),
            );
            let expired = Some((Event::Expired, info.expires_at));
            if let Err(e) = self.store_event(&info.account_id, expired, entry.as_ref(), true) {
                tracing::error!(error = %e, account = %info.account_id, "silent expiry");
            }
            if let Some(entry) = entry {
                self.persist(&entry);
                if let Some(fleet) = self.fleet() {
                    fleet.charged(&entry);
                }
                out.push(entry);
            }
            self.usage.remove(&info.account_id);
            self.uploads.forget_account(&info.account_id);
        }
        out
    }

    /// Bounds memory: forgets ended accounts and ledger entries older than the longest
    /// budget window (plus a day of slack for late events). The ledger file keeps the
    /// whole history for `gateway ledger`.
    pub fn forget_old(&self, policy: &Policy, now: u64) -> (usize, usize) {
        let budgets = policy.budgets();
        let longest = budgets
            .rules
            .iter()
            .map(|r| r.window_secs)
            .chain(budgets.global.iter().map(|g| g.window_secs))
            .chain([budgets.window_secs, policy.account_limits().window_secs])
            .max()
            .unwrap_or(86_400);
        self.uploads.forget_expired(now);
        let cut = now.saturating_sub(longest.saturating_add(86_400));
        let accounts = self.book.prune(cut);
        if accounts > 0 {
            self.store_prune();
            if let Some(journal) = &self.journal {
                if let Err(e) = journal.compact(&self.book) {
                    tracing::error!(error = %e, "cannot compact the account journal");
                }
            }
        }
        (accounts, self.ledger.forget_before(cut))
    }

    fn persist(&self, entry: &LedgerEntry) {
        crate::audit::log().ledger(entry);
        if let Some(file) = &self.ledger_file {
            let mut f = file.lock();
            let line = entry.to_json_line();
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                tracing::error!(error = %e, "cannot append to the ledger file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, token: &str) -> Vec<u8> {
        serde_json::json!({"success": true, "result": {"account": {
            "id": id, "apiToken": token, "expiresAt": "1970-01-01T01:00:00Z"}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_token_is_attributed_to_its_creator_and_old_history_is_forgotten() {
        let policy = policy::compile_str("p.toml", "version = 1\n").expect("policy");
        let tracker = Tracker::new(&policy, None, None).expect("tracker");
        let creator = SourceKeys::new("198.51.100.1".parse().unwrap(), None, None);
        let id = tracker
            .record_created(&answer("acct-1", "secret-token"), creator, 0)
            .expect("recorded");
        let info = tracker.account_for(&tracker.hash_token("secret-token")).expect("attributed");
        assert_eq!((info.account_id.as_str(), info.expires_at), (id.as_str(), 3600));
        assert!(tracker.account_for(&tracker.hash_token("another-token")).is_none());

        let expired = PlatformEvent {
            kind: "expired".into(),
            account_id: id.clone(),
            at: None,
            removed: None,
        };
        let entry =
            tracker.apply_event(&policy, &expired, 4000).expect("applied").expect("charged");
        assert_eq!(entry.units, 10, "one empty account at the default cost");
        assert!(
            tracker.apply_event(&policy, &expired, 4001).expect("known").is_none(),
            "charged once"
        );

        // Within the longest window (one day) plus a day of slack nothing is forgotten.
        assert_eq!(tracker.forget_old(&policy, 4000 + 86_400), (0, 0));
        assert_eq!(tracker.forget_old(&policy, 4000 + 3 * 86_400), (1, 1));
        assert_eq!((tracker.book().len(), tracker.ledger().len()), (0, 0));
    }

    #[test]
    fn the_journal_keeps_attribution_across_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let journal = dir.path().join("accounts.jsonl");
        let policy = policy::compile_str("p.toml", "version = 1\n").expect("policy");
        let creator = SourceKeys::new("198.51.100.2".parse().unwrap(), Some("hf1_x".into()), None);
        {
            let before = Tracker::new(&policy, None, Some(journal.clone())).expect("tracker");
            before
                .record_created(&answer("acct-live", "token-live"), creator.clone(), 0)
                .expect("recorded");
            before
                .record_created(&answer("acct-claimed", "token-claimed"), creator.clone(), 0)
                .expect("recorded");
            let claimed = PlatformEvent {
                kind: "claimed".into(),
                account_id: "acct-claimed".into(),
                at: None,
                removed: None,
            };
            before.apply_event(&policy, &claimed, 100).expect("applied");
        }
        let text = std::fs::read_to_string(&journal).expect("journal");
        assert!(!text.contains("token-live"), "no token on disk");
        let after = Tracker::new(&policy, None, Some(journal)).expect("restarted");
        let info = after.account_for(&after.hash_token("token-live")).expect("same key, same hash");
        assert_eq!(info.source, creator, "still attributed to its creator");
        assert_eq!(
            after.book().get("acct-claimed").map(|a| a.state),
            Some(policy::accounts::AccountState::Claimed)
        );
        // Its expiry after the restart is charged to the creator.
        let expired = PlatformEvent {
            kind: "expired".into(),
            account_id: "acct-live".into(),
            at: None,
            removed: None,
        };
        let entry = after.apply_event(&policy, &expired, 4000).expect("known").expect("charged");
        assert!(entry.source_keys.iter().any(|k| k.to_string() == "ip:198.51.100.2"));
    }
}
