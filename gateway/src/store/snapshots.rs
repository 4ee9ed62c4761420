//! Opening the configured store at start, and the snapshots of the state that changes
//! on every request (rate-limit debts, the challenge book): restored at start, taken
//! every `snapshot_secs` on a thread of their own and once more at a graceful
//! shutdown. A `kill -9` loses at most the last interval of that state; what clients
//! were acknowledged (accounts, ledger entries, resource counts) is written through
//! instead, before the acknowledgement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use policy::Engine;

use super::{Embedded, StoreError};
use crate::clock::SharedClock;
use crate::config::GatewayConfig;
use crate::tracker::Tracker;

/// Opens the store `[store] path` names, if any, and imports the old ledger and
/// journal files of `[admin]` into it (once).
pub fn open_configured(config: &GatewayConfig) -> Result<Option<Arc<Embedded>>, String> {
    let Some(path) = &config.store.path else { return Ok(None) };
    let ledger = config.admin.as_ref().and_then(|a| a.ledger_file.clone());
    let journal = config.admin.as_ref().and_then(|a| a.accounts_file.clone());
    let adopt = journal.as_deref().map(crate::journal::key_path);
    let store = Embedded::open(path, adopt.as_deref())
        .map_err(|e| format!("cannot open the store {}: {e}", path.display()))?;
    let imported = store
        .import_legacy(ledger.as_deref(), journal.as_deref())
        .map_err(|e| format!("cannot import into the store {}: {e}", path.display()))?;
    if let (Some(n), Some(file)) = (imported.ledger_entries, &ledger) {
        tracing::info!(entries = n, file = %file.display(), "ledger file imported into the store");
    }
    if let (Some(n), Some(file)) = (imported.accounts, &journal) {
        tracing::info!(accounts = n, file = %file.display(), "account journal imported into the store");
    }
    if ledger.is_some() || journal.is_some() {
        tracing::info!("with [store] path, admin.ledger_file and admin.accounts_file are only read once, for the import");
    }
    tracing::info!(store = %path.display(), "embedded store open");
    Ok(Some(Arc::new(store)))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The snapshots of one gateway's fast-changing state.
pub struct Snapshots {
    store: Arc<Embedded>,
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    clock: SharedClock,
    taken: AtomicU64,
    /// One snapshot at a time, so an older one never overwrites a newer one.
    one: Mutex<()>,
}

impl Snapshots {
    /// Snapshots of `engine`'s limits and `tracker`'s challenge book into `store`.
    pub fn new(
        store: Arc<Embedded>,
        engine: Arc<Engine>,
        tracker: Arc<Tracker>,
        clock: SharedClock,
    ) -> Arc<Self> {
        Arc::new(Snapshots {
            store,
            engine,
            tracker,
            clock,
            taken: AtomicU64::new(0),
            one: Mutex::new(()),
        })
    }

    /// Puts back the last snapshot: the time since it was taken is paid off the debts
    /// (on the wall clock), limits that changed since are left empty.
    pub fn restore(&self) -> Result<(), StoreError> {
        if let Some((limits, taken_ms)) = self.store.load_limits()? {
            let elapsed = Duration::from_millis(now_ms().saturating_sub(taken_ms));
            let report = self.engine.import_limits(&limits, elapsed);
            tracing::info!(
                restored = report.restored,
                expired = report.expired,
                changed_limits = ?report.unmatched,
                fair_share = report.fair_share,
                age_ms = elapsed.as_millis() as u64,
                "rate-limit state restored"
            );
        }
        let book = self.store.load_challenges()?;
        let taken = self.tracker.challenges().restore(&book, self.clock.now());
        tracing::info!(challenges = taken, "challenge book restored");
        Ok(())
    }

    /// Takes a snapshot now. Returns its number (1, 2, … in this process).
    pub fn take(&self) -> Result<u64, StoreError> {
        let _one = self.one.lock();
        let at = now_ms();
        let limits = self.engine.export_limits();
        let book = self.tracker.challenges().snapshot(self.clock.now());
        self.store.save_limits(&limits, at)?;
        self.store.save_challenges(&book, at)?;
        let n = self.taken.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            keys = limits.keys(),
            challenges = book.challenges.len(),
            "rate-limit snapshot {n} taken"
        );
        Ok(n)
    }

    /// Takes a snapshot every `every`, on a thread of its own, for the life of the process.
    pub fn start(self: &Arc<Self>, every: Duration) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new().name("store-snapshots".into()).spawn(move || loop {
            std::thread::sleep(every);
            if let Err(e) = me.take() {
                tracing::error!(error = %e, "cannot snapshot the rate-limit state");
            }
        })?;
        Ok(())
    }
}
