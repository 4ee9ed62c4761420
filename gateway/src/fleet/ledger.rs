//! The fleet's log: one Redis stream (`gw:fleet:log`) of every account creation,
//! lifecycle event and ledger entry any gateway recorded, which every gateway tails
//! into its own book and [`Ledger`](policy::ledger::Ledger).
//!
//! - Written through the [`Outbox`] (in the order the gateway decided, retried while
//!   Redis is away), with `XADD … MINID ~` so entries older than the retention (the
//!   longest budget window plus a day) are trimmed.
//! - Replayed from the start when a gateway joins ([`FleetLog::replay`]), so a
//!   restarted gateway has the fleet's whole ledger and account book before it serves.
//! - Tailed every [`TAIL_INTERVAL`] on the store's runtime ([`FleetLog::spawn_tail`]).
//!   The multiplexed connection carries every other call too, so the tail polls
//!   (`XRANGE` after the last id) rather than blocking the connection in `XREAD BLOCK`.
//!
//! Applying is idempotent, so a gateway's own entries coming back, a replay over what
//! the ledger file already loaded, or two gateways recording the same event are
//! harmless: the book ignores a known creation and an event that changes nothing, and
//! the ledger takes one charge and one credit per account
//! ([`Ledger::append_once`](policy::ledger::Ledger::append_once)).
//!
//! Staleness: a budget check on one gateway sees another's charge one tail interval
//! plus a round trip later (about 100 ms), or, while Redis is unreachable, once it is
//! back. Budgets sum charges over hours; a charge arriving a fraction of a second late
//! lets at most the requests of that fraction through at the old difficulty.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use policy::accounts::Event;
use policy::ledger::LedgerEntry;
use serde::{Deserialize, Serialize};

use super::accounts::{AccountRecord, FleetAccount};
use super::conn::{Conn, Redis};
use super::outbox::Outbox;
use super::wait::{self, StoreError};

/// The stream every gateway writes to and tails.
pub const LOG_KEY: &str = "gw:fleet:log";
/// How often a gateway reads what the others wrote.
pub const TAIL_INTERVAL: Duration = Duration::from_millis(100);
/// Entries read per call.
const BATCH: usize = 1000;

/// What the fleet's log is applied to. The tracker implements it
/// (`tracker/fleet_hooks.rs`); a trait, so that the log does not import the tracker
/// that holds the fleet.
pub trait LogTarget: Send + Sync {
    /// The account book.
    fn book(&self) -> &policy::accounts::AccountBook;
    /// Drops an ended account's resource counts.
    fn forget_usage(&self, account: &str);
    /// The cleanup-cost ledger.
    fn ledger(&self) -> &policy::ledger::Ledger;
    /// The operator's blocks.
    fn blocks(&self) -> &crate::blocks::BlockList;
}

/// One entry of the fleet's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum LogEntry {
    /// An account was created (through the gateway that wrote it).
    Created(AccountRecord),
    /// Something happened to an account.
    Event {
        /// The account.
        account_id: String,
        /// What.
        event: Event,
        /// When, unix seconds.
        at: u64,
    },
    /// A ledger entry (charge or credit).
    Ledger(LedgerEntry),
    /// An operator blocked an address, network or fingerprint.
    Block(crate::blocks::Block),
    /// An operator lifted the block of a target (`ip:…`, `net:…`, `tls_fp:…`).
    Unblock {
        /// The target's text.
        target: String,
        /// When, unix seconds.
        at: u64,
    },
}

impl LogEntry {
    /// Applies the entry to this gateway's state (idempotent).
    pub fn apply(self, tracker: &dyn LogTarget) {
        match self {
            LogEntry::Created(record) => {
                FleetAccount { record, events: Vec::new() }.remember(tracker.book());
            }
            LogEntry::Event { account_id, event, at } => {
                if tracker.book().mark(&account_id, event, at) && event != Event::Claimed {
                    tracker.forget_usage(&account_id);
                }
            }
            LogEntry::Ledger(entry) => {
                tracker.ledger().append_once(entry);
            }
            LogEntry::Block(block) => {
                tracing::info!(target = %block.target, "fleet log: block applied");
                tracker.blocks().put(block);
            }
            LogEntry::Unblock { target, at } => {
                if let Ok(parsed) = target.parse() {
                    tracker.blocks().unblock(&parsed, at);
                    tracing::info!(target = %target, "fleet log: block lifted");
                }
            }
        }
    }
}

/// The log's side of the fleet store.
pub struct FleetLog {
    redis: Arc<Redis>,
    outbox: Arc<Outbox>,
    retention_ms: u64,
}

impl FleetLog {
    /// The log on `redis`, trimmed to `retention_secs`.
    pub fn new(redis: Arc<Redis>, outbox: Arc<Outbox>, retention_secs: u64) -> Self {
        FleetLog { redis, outbox, retention_ms: retention_secs.saturating_mul(1000) }
    }

    /// Queues `entry` for the fleet.
    pub fn publish(&self, entry: &LogEntry) {
        let Ok(json) = serde_json::to_string(entry) else { return };
        let retention_ms = self.retention_ms;
        self.outbox.push(move |mut conn| {
            let json = json.clone();
            async move {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let _: String = redis::cmd("XADD")
                    .arg(LOG_KEY)
                    .arg("MINID")
                    .arg("~")
                    .arg(now_ms.saturating_sub(retention_ms))
                    .arg("*")
                    .arg("e")
                    .arg(json)
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
        });
    }

    /// Applies the whole log to `tracker` (blocking; at start, before the gateway
    /// serves). Returns the id of the last entry read (`-` for an empty log).
    pub fn replay(&self, tracker: &dyn LogTarget) -> Result<String, StoreError> {
        let mut last = String::from("-");
        let mut applied = 0usize;
        loop {
            let after = last.clone();
            let batch = wait::blocking(&self.redis, move |conn| read_after(conn, after))?;
            let done = batch.len() < BATCH;
            for (id, entry) in batch {
                if let Some(entry) = entry {
                    entry.apply(tracker);
                    applied += 1;
                }
                last = id;
            }
            if done {
                break;
            }
        }
        tracing::info!(
            entries = applied,
            accounts = tracker.book().len(),
            ledger = tracker.ledger().len(),
            "fleet log replayed"
        );
        Ok(last)
    }

    /// Tails the log on the store's runtime from after `last`, applying what other
    /// gateways write. `on_recover` runs when a read succeeds after failed ones (Redis
    /// is back, maybe emptied by a restart).
    pub fn spawn_tail(
        &self,
        tracker: Arc<dyn LogTarget>,
        mut last: String,
        on_recover: impl Fn() + Send + 'static,
    ) {
        let conn = self.redis.conn();
        let health = self.redis.health().clone();
        self.redis.runtime().spawn(async move {
            let mut tick = tokio::time::interval(TAIL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let read =
                    match tokio::time::timeout(wait::WAIT_LIMIT, read_after(conn.clone(), last.clone()))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(StoreError::Timeout),
                    };
                health.record(&read);
                match read {
                    Ok(batch) => {
                        if failing {
                            failing = false;
                            tracing::info!("the fleet store answers again");
                            on_recover();
                        }
                        for (id, entry) in batch {
                            if let Some(entry) = entry {
                                entry.apply(&*tracker);
                            }
                            last = id;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "cannot read the fleet log; the budgets see only this gateway's charges until Redis is back");
                        }
                        failing = true;
                    }
                }
            }
        });
    }
}

/// Up to [`BATCH`] entries after `last` (`-`: from the start). An entry this gateway
/// cannot read (another format) is returned as `None`, so the tail moves past it.
async fn read_after(
    mut conn: Conn,
    last: String,
) -> Result<Vec<(String, Option<LogEntry>)>, StoreError> {
    let start = if last == "-" { last } else { format!("({last}") };
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(LOG_KEY)
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(BATCH)
        .query_async(&mut conn)
        .await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|sid| {
            let entry = sid
                .get::<String>("e")
                .and_then(|json| serde_json::from_str::<LogEntry>(&json).ok());
            (sid.id, entry)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Tracker;
    use policy::accounts::SourceKeys;
    use policy::ledger::{Costs, Ledger};
    use policy::quota::ResourceCounts;

    fn record(id: &str) -> AccountRecord {
        AccountRecord {
            account_id: id.into(),
            token_hash: hex::encode([7u8; 32]),
            created_at: 10,
            expires_at: 3610,
            source: SourceKeys::new("198.51.100.9".parse().expect("ip"), None, None),
        }
    }

    #[test]
    fn log_entries_read_back_and_apply_once() {
        let policy = policy::compile_str("p.toml", "version = 1\n").expect("policy");
        let tracker = Tracker::new(&policy, None, None).expect("tracker");
        let charge = Ledger::new()
            .charge_expired_unclaimed(
                "acct-1",
                &record("acct-1").source,
                ResourceCounts::default(),
                3700,
                &Costs::default(),
            )
            .expect("charge");
        let entries = [
            LogEntry::Created(record("acct-1")),
            LogEntry::Event { account_id: "acct-1".into(), event: Event::Expired, at: 3700 },
            LogEntry::Ledger(charge),
        ];
        for _ in 0..2 {
            for entry in &entries {
                let json = serde_json::to_string(entry).expect("json");
                let back: LogEntry = serde_json::from_str(&json).expect("reads back");
                assert_eq!(&back, entry);
                back.apply(&tracker);
            }
        }
        assert_eq!((tracker.book().len(), tracker.ledger().len()), (1, 1), "applied once");
        let info = tracker.book().get("acct-1").expect("known");
        assert_eq!(info.state, policy::accounts::AccountState::Expired);
        let hash = record("acct-1").hash().expect("hash");
        assert_eq!(tracker.book().by_token(&hash).map(|a| a.account_id), Some("acct-1".into()));
    }

    #[test]
    fn an_entry_of_another_format_is_skipped_not_fatal() {
        assert!(serde_json::from_str::<LogEntry>(r#"{"t":"future_kind","x":1}"#).is_err());
    }
}
