//! The store's schema, versioned with `PRAGMA user_version` and migrated one step at a
//! time: [`MIGRATIONS`]`[n]` takes a file from version `n` to `n + 1`, in one
//! transaction that also sets the new version, so a crash mid-migration leaves the
//! file at the old version, whole. A file newer than [`VERSION`] is refused rather
//! than guessed at.
//!
//! - v1: `meta` (key/value: imports done, snapshot times), `accounts`,
//!   `account_events`, `ledger` (entries as JSON), `usage` (per-account resources).
//! - v2: the ledger gets a `units` column (backfilled from the JSON) and indexes by
//!   time and account for `gateway ledger`; `snapshots` (one row each for the
//!   rate-limit state and the challenge book, replaced whole) and the admin block list
//!   (`blocks`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction};

use super::{Context, StoreError};

/// The newest schema version this gateway writes.
pub const VERSION: i64 = 2;

/// One migration step.
type Step = fn(&Transaction<'_>) -> Result<(), rusqlite::Error>;

/// `MIGRATIONS[n]` migrates version `n` to `n + 1`.
const MIGRATIONS: [Step; VERSION as usize] = [v0_to_v1, v1_to_v2];

fn v0_to_v1(tx: &Transaction<'_>) -> Result<(), rusqlite::Error> {
    tx.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE accounts (
             account_id TEXT PRIMARY KEY,
             token_hash BLOB NOT NULL,
             created_at INTEGER NOT NULL,
             expires_at INTEGER NOT NULL,
             source TEXT NOT NULL
         );
         CREATE TABLE account_events (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             account_id TEXT NOT NULL,
             event TEXT NOT NULL,
             at INTEGER NOT NULL
         );
         CREATE INDEX account_events_by_account ON account_events (account_id);
         CREATE TABLE ledger (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             at INTEGER NOT NULL,
             account_id TEXT NOT NULL,
             entry TEXT NOT NULL
         );
         CREATE TABLE usage (account_id TEXT PRIMARY KEY, usage TEXT NOT NULL);",
    )
}

fn v1_to_v2(tx: &Transaction<'_>) -> Result<(), rusqlite::Error> {
    tx.execute_batch(
        "ALTER TABLE ledger ADD COLUMN units INTEGER NOT NULL DEFAULT 0;
         UPDATE ledger SET units = COALESCE(json_extract(entry, '$.units'), 0);
         CREATE INDEX ledger_by_time ON ledger (at);
         CREATE INDEX ledger_by_account ON ledger (account_id);
         CREATE TABLE snapshots (
             name TEXT PRIMARY KEY,
             taken_at_ms INTEGER NOT NULL,
             body BLOB NOT NULL
         );
         CREATE TABLE blocks (
             kind TEXT NOT NULL,
             value TEXT NOT NULL,
             until INTEGER,
             reason TEXT NOT NULL,
             created INTEGER NOT NULL,
             PRIMARY KEY (kind, value)
         );",
    )
}

/// The schema version of an open database.
pub fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).doing("reading the schema version")
}

/// Brings `conn` to [`VERSION`], one step per transaction. Returns the version found.
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let found = version(conn)?;
    if found > VERSION {
        return Err(StoreError::TooNew { found, known: VERSION });
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let tx = conn.transaction().doing("starting a migration")?;
        step(&tx).doing("migrating the schema")?;
        tx.pragma_update(None, "user_version", from as i64 + 1).doing("setting the version")?;
        tx.commit().doing("committing a migration")?;
        tracing::info!(from, to = from + 1, "store schema migrated");
    }
    Ok(found)
}

/// Opens (or creates) the database at `path` in WAL mode and migrates it.
///
/// `synchronous = NORMAL`: in WAL mode a commit then appends to the log without an
/// `fsync`; the log is synced at each checkpoint. A committed transaction is in the
/// operating system's cache when `COMMIT` returns, so it survives the gateway being
/// killed (`kill -9`, a panic, the OOM killer), which is the failure the gateway's
/// durability promise covers, and the database is never corrupted. What `NORMAL` gives
/// up is the last commits since a checkpoint on a power cut or kernel crash; `FULL`
/// would keep them at one `fsync` per commit (milliseconds on common disks), on the
/// request path of every resource create. A host that must survive power loss without
/// losing a single account should run on a battery-backed or replicated disk, or
/// snapshot the file as README.md describes.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).doing("opening")?;
    conn.busy_timeout(Duration::from_secs(5)).doing("setting the busy timeout")?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).doing("switching to WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::File {
            path: path.to_path_buf(),
            message: format!("the file system does not support WAL (journal mode {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL").doing("setting synchronous")?;
    migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1 as a gateway of that version wrote it: frozen here, whatever the
    /// migrations become.
    const V1: &str = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE accounts (account_id TEXT PRIMARY KEY, token_hash BLOB NOT NULL,
             created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, source TEXT NOT NULL);
         CREATE TABLE account_events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
             account_id TEXT NOT NULL, event TEXT NOT NULL, at INTEGER NOT NULL);
         CREATE INDEX account_events_by_account ON account_events (account_id);
         CREATE TABLE ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
             account_id TEXT NOT NULL, entry TEXT NOT NULL);
         CREATE TABLE usage (account_id TEXT PRIMARY KEY, usage TEXT NOT NULL);
         PRAGMA user_version = 1;";

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.map(|r| r.expect("row")).filter(|n: &String| !n.starts_with("sqlite_")).collect()
    }

    #[test]
    fn a_new_file_is_created_at_the_newest_version_in_wal_mode() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = open_connection(&dir.path().join("new.db")).expect("open");
        assert_eq!(version(&conn).expect("version"), VERSION);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("sync");
        assert_eq!(sync, 1, "NORMAL");
        assert_eq!(
            tables(&conn),
            ["account_events", "accounts", "blocks", "ledger", "meta", "snapshots", "usage"]
        );
    }

    #[test]
    fn a_v1_file_written_by_the_test_migrates_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(V1).expect("v1 schema");
            conn.execute(
                "INSERT INTO ledger (at, account_id, entry) VALUES (100, 'acct-1', ?1)",
                [r#"{"at":100,"account_id":"acct-1","source_keys":[],"reason":"expired_unclaimed","units":14,"resources":{}}"#],
            )
            .expect("v1 ledger row");
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('imported:ledger', 'ledger.jsonl')",
                [],
            )
            .expect("v1 meta row");
        }
        let conn = open_connection(&path).expect("migrated");
        assert_eq!(version(&conn).expect("version"), VERSION);
        let (account, units): (String, i64) = conn
            .query_row("SELECT account_id, units FROM ledger", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("the v1 row is still there");
        assert_eq!((account.as_str(), units), ("acct-1", 14), "units backfilled from the JSON");
        let imported: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'imported:ledger'", [], |r| r.get(0))
            .expect("meta kept");
        assert_eq!(imported, "ledger.jsonl");
        assert!(tables(&conn).contains(&"blocks".to_string()));
        drop(conn);
        // Opening again migrates nothing and changes nothing.
        let mut again = open_connection(&path).expect("reopened");
        assert_eq!(migrate(&mut again).expect("no-op"), VERSION);
    }

    #[test]
    fn a_file_from_a_newer_gateway_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("future.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch(&format!("PRAGMA user_version = {};", VERSION + 1)))
            .expect("future file");
        match open_connection(&path) {
            Err(StoreError::TooNew { found, known }) => {
                assert_eq!((found, known), (VERSION + 1, VERSION))
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_step_leaves_the_file_at_its_old_version() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("half.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(V1).expect("v1");
            // A table v2 wants to create already exists: the step fails.
            conn.execute_batch("CREATE TABLE blocks (x INTEGER);").expect("clash");
        }
        assert!(open_connection(&path).is_err());
        let conn = Connection::open(&path).expect("reopen");
        assert_eq!(version(&conn).expect("version"), 1);
        let has_units: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('ledger') WHERE name = 'units'",
                [],
                |r| r.get(0),
            )
            .expect("columns");
        assert_eq!(has_units, 0, "the half-done step was rolled back");
    }
}
