//! Accounts, their lifecycle events and their resource counts in the store.
//!
//! An account row is written once, at creation (keyed token hash, never the token);
//! events are appended, and replayed in order at start into the
//! [`AccountBook`](policy::accounts::AccountBook), as the JSON-lines journal was. The
//! resource counts are one JSON row per live account, rewritten whenever the platform's
//! answer changes them.

use policy::accounts::{AccountBook, AccountState, Event, SourceKeys, TokenHash};
use policy::ledger::LedgerEntry;
use policy::quota::AccountUsage;
use rusqlite::{params, Transaction};

use super::{Context, Embedded, StoreError};

/// The stored name of an event.
pub(crate) fn event_name(event: Event) -> &'static str {
    match event {
        Event::Claimed => "claimed",
        Event::Expired => "expired",
        Event::Deleted => "deleted",
    }
}

fn event_of(name: &str) -> Option<Event> {
    match name {
        "claimed" => Some(Event::Claimed),
        "expired" => Some(Event::Expired),
        "deleted" => Some(Event::Deleted),
        _ => None,
    }
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts an account row (a second insert of the same id is ignored, as the book
/// ignores a second creation).
pub(crate) fn insert_account(
    tx: &Transaction<'_>,
    id: &str,
    hash: &TokenHash,
    created_at: u64,
    expires_at: u64,
    source: &SourceKeys,
) -> Result<(), rusqlite::Error> {
    let source = serde_json::to_string(source)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT OR IGNORE INTO accounts (account_id, token_hash, created_at, expires_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, &hash.as_bytes()[..], to_sql(created_at), to_sql(expires_at), source],
    )?;
    Ok(())
}

/// Appends a lifecycle event.
pub(crate) fn insert_event(
    tx: &Transaction<'_>,
    id: &str,
    event: Event,
    at: u64,
) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO account_events (account_id, event, at) VALUES (?1, ?2, ?3)",
        params![id, event_name(event), to_sql(at)],
    )?;
    Ok(())
}

/// The event that put an account of the book in its state, if any (for imports).
pub(crate) fn state_event(
    state: AccountState,
    at: Option<u64>,
    fallback: u64,
) -> Option<(Event, u64)> {
    let event = match state {
        AccountState::Live => return None,
        AccountState::Claimed => Event::Claimed,
        AccountState::Expired => Event::Expired,
        AccountState::Deleted => Event::Deleted,
    };
    Some((event, at.unwrap_or(fallback)))
}

impl Embedded {
    /// Commits a new account: called before its create answer is passed on.
    pub fn account_created(
        &self,
        id: &str,
        hash: &TokenHash,
        created_at: u64,
        expires_at: u64,
        source: &SourceKeys,
    ) -> Result<(), StoreError> {
        self.write("recording an account", |tx| {
            insert_account(tx, id, hash, created_at, expires_at, source)
        })
    }

    /// Commits what one platform event (or a silent expiry) did, in one transaction:
    /// the account's event when it changed the account, the ledger entry it wrote, and
    /// the end of its resource counts when it ended the account. Called before the
    /// event is answered.
    pub fn event_applied(
        &self,
        id: &str,
        event: Option<(Event, u64)>,
        entry: Option<&LedgerEntry>,
        ended: bool,
    ) -> Result<(), StoreError> {
        self.write("recording an event", |tx| {
            if let Some((event, at)) = event {
                insert_event(tx, id, event, at)?;
            }
            if let Some(entry) = entry {
                super::ledger::insert_entry(tx, entry)?;
            }
            if ended {
                tx.execute("DELETE FROM usage WHERE account_id = ?1", [id])?;
            }
            Ok(())
        })
    }

    /// Commits an account's resource counts after the platform changed them.
    pub fn usage_changed(&self, id: &str, usage: &AccountUsage) -> Result<(), StoreError> {
        let json = serde_json::to_string(usage)
            .map_err(|e| StoreError::Corrupt { what: "usage", message: e.to_string() })?;
        self.write("recording resource counts", |tx| {
            tx.execute(
                "INSERT INTO usage (account_id, usage) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO UPDATE SET usage = excluded.usage",
                params![id, json],
            )?;
            Ok(())
        })
    }

    /// Replays every stored account and event into `book`. Returns the accounts read;
    /// rows that cannot be read are skipped with a warning.
    pub fn load_accounts(&self, book: &AccountBook) -> Result<usize, StoreError> {
        self.read(|conn| {
            let mut n = 0;
            let mut stmt = conn
                .prepare(
                    "SELECT account_id, token_hash, created_at, expires_at, source FROM accounts",
                )
                .doing("reading accounts")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .doing("reading accounts")?;
            for row in rows {
                let (id, hash, created, expires, source) = row.doing("reading an account")?;
                let hash = <[u8; 32]>::try_from(hash.as_slice()).ok().map(TokenHash::from_bytes);
                let source = serde_json::from_str::<SourceKeys>(&source).ok();
                let (Some(hash), Some(source)) = (hash, source) else {
                    tracing::warn!(account = %id, "unreadable account row skipped");
                    continue;
                };
                book.record_created(
                    &id,
                    hash,
                    created.max(0) as u64,
                    expires.max(0) as u64,
                    source,
                );
                n += 1;
            }
            let mut stmt = conn
                .prepare("SELECT account_id, event, at FROM account_events ORDER BY seq")
                .doing("reading account events")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .doing("reading account events")?;
            for row in rows {
                let (id, event, at) = row.doing("reading an account event")?;
                if let Some(event) = event_of(&event) {
                    book.mark(&id, event, at.max(0) as u64);
                }
            }
            Ok(n)
        })
    }

    /// Every stored account's resource counts.
    pub fn load_usage(&self) -> Result<Vec<(String, AccountUsage)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT account_id, usage FROM usage").doing("reading resource counts")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .doing("reading resource counts")?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json) = row.doing("reading resource counts")?;
                match serde_json::from_str(&json) {
                    Ok(usage) => out.push((id, usage)),
                    Err(e) => tracing::warn!(account = %id, error = %e, "unreadable resource counts skipped"),
                }
            }
            Ok(out)
        })
    }

    /// Forgets the accounts (and their events and counts) the book no longer holds,
    /// after it pruned old ones: the store stays as bounded as the memory. The ledger
    /// keeps its whole history.
    pub fn keep_only_accounts(&self, live: &[String]) -> Result<usize, StoreError> {
        self.write("pruning accounts", |tx| {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS keep (id TEXT PRIMARY KEY); DELETE FROM keep;",
            )?;
            {
                let mut insert = tx.prepare("INSERT OR IGNORE INTO keep (id) VALUES (?1)")?;
                for id in live {
                    insert.execute([id])?;
                }
            }
            let gone = tx.execute(
                "DELETE FROM accounts WHERE account_id NOT IN (SELECT id FROM keep)",
                [],
            )?;
            tx.execute(
                "DELETE FROM account_events WHERE account_id NOT IN (SELECT id FROM keep)",
                [],
            )?;
            tx.execute("DELETE FROM usage WHERE account_id NOT IN (SELECT id FROM keep)", [])?;
            tx.execute("DELETE FROM keep", [])?;
            Ok(gone)
        })
    }
}
