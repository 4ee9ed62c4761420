//! The cleanup-cost ledger in the store: one row per entry, the entry as the same JSON
//! the ledger file had (so `gateway ledger` reads either), with its time, account and
//! units as columns for queries. Entries are only appended; the whole history stays.

use std::path::Path;

use policy::ledger::{Ledger, LedgerEntry};
use rusqlite::{params, Connection, Transaction};

use super::{Context, Embedded, StoreError};

/// Appends one entry.
pub(crate) fn insert_entry(
    tx: &Transaction<'_>,
    entry: &LedgerEntry,
) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO ledger (at, account_id, units, entry) VALUES (?1, ?2, ?3, ?4)",
        params![
            i64::try_from(entry.at).unwrap_or(i64::MAX),
            entry.account_id,
            entry.units,
            entry.to_json_line()
        ],
    )?;
    Ok(())
}

/// Every entry of the store at `conn`, oldest first.
pub fn read_ledger(conn: &Connection) -> Result<Ledger, StoreError> {
    let ledger = Ledger::new();
    let mut stmt =
        conn.prepare("SELECT entry FROM ledger ORDER BY seq").doing("reading the ledger")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).doing("reading the ledger")?;
    for row in rows {
        let json = row.doing("reading a ledger entry")?;
        let entry: LedgerEntry = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt { what: "ledger", message: e.to_string() })?;
        ledger.append(entry);
    }
    Ok(ledger)
}

/// The ledger of the store file at `path`, opened read-only (`gateway ledger --store`):
/// safe while a gateway runs on it, since WAL lets readers in beside the writer.
pub fn read_ledger_file(path: &Path) -> Result<Ledger, StoreError> {
    if !path.exists() {
        return Err(StoreError::File { path: path.to_path_buf(), message: "no such store".into() });
    }
    let conn = Embedded::open_read_only(path)?;
    read_ledger(&conn)
}

impl Embedded {
    /// The whole stored ledger (loaded at start).
    pub fn load_ledger(&self) -> Result<Ledger, StoreError> {
        self.read(read_ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::accounts::{Event, SourceKeys};
    use policy::quota::ResourceCounts;

    #[test]
    fn an_event_commits_its_entry_and_a_reader_sees_it_beside_the_writer() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.db");
        let store = Embedded::open(&path, None).expect("store");
        let ledger = Ledger::new();
        let costs = *policy::compile_str("p.toml", "version = 1\n").expect("policy").costs();
        let source = SourceKeys::new("192.0.2.9".parse().expect("ip"), None, None);
        let entry = ledger
            .charge_expired_unclaimed("acct-1", &source, ResourceCounts::default(), 500, &costs)
            .expect("charged");
        store
            .event_applied("acct-1", Some((Event::Expired, 500)), Some(&entry), true)
            .expect("committed");
        // Another process's view: a read-only connection while the store is open.
        let read = read_ledger_file(&path).expect("read");
        assert_eq!(read.entries(), vec![entry.clone()]);
        drop(store);
        let again = Embedded::open(&path, None).expect("reopened");
        assert_eq!(again.load_ledger().expect("loaded").entries(), vec![entry]);
    }
}
