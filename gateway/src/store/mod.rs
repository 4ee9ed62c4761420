//! The embedded store (`[store] path = "FILE"`): the state of a single gateway that
//! must outlive its process, in one SQLite database in WAL mode.
//!
//! What it keeps, and when it is written:
//! - accounts (creator's source keys, keyed token hash, expiry) and their lifecycle
//!   events: committed before the create answer is passed on, and before an event
//!   call is answered (see [`accounts`]);
//! - the cleanup ledger: committed with the event that wrote the entry ([`ledger`]);
//! - per-account resource counts: committed when the platform's 2xx answer is
//!   settled, before it is passed on;
//! - the rate-limit tables' GCRA debts and the challenge book: snapshots, every
//!   `snapshot_secs` and at a graceful shutdown ([`snapshots`]);
//! - the admin block list ([`blocks`]), for whoever keeps that list in memory.
//!
//! Writes are synchronous, under one mutex: account creations and events come at a
//! low rate, and a commit in WAL mode with `synchronous = NORMAL` is a `write()` to
//! the log, no `fsync` (see [`schema::open_connection`] for why that is the setting).
//! The token-hash key is kept beside the database in `<FILE>.key` (mode 0600), never
//! in the database, so a copy of the database handed out for analysis cannot be used
//! to test guessed tokens.

pub mod accounts;
pub mod blocks;
pub mod import;
pub mod ledger;
pub mod schema;
pub mod snapshots;
pub mod state;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use policy::accounts::TokenHasher;
use rusqlite::Connection;

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("store {what}: {source}")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// SQLite's error (it names no bound value, so no secret).
        source: rusqlite::Error,
    },
    /// A file beside the store (its key, an old ledger or journal) cannot be used.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The database was written by a newer gateway.
    #[error("store schema version {found} is newer than this gateway's {known}; run the newer gateway or restore a backup")]
    TooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this gateway knows.
        known: i64,
    },
    /// A stored row cannot be read back.
    #[error("store row {what} is unreadable: {message}")]
    Corrupt {
        /// Which kind of row.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// Adds what was being done to a SQLite error.
pub(crate) trait Context<T> {
    /// `Err(e)` becomes `StoreError::Sql { what, e }`.
    fn doing(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn doing(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql { what, source })
    }
}

/// The open store.
pub struct Embedded {
    conn: Mutex<Connection>,
    path: PathBuf,
    tokens: TokenHasher,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").field("path", &self.path).finish()
    }
}

impl Embedded {
    /// Opens (creating it if missing) and migrates the store at `path`. The token-hash
    /// key is `<path>.key`; a new store adopts `adopt_key` (the old account journal's
    /// key, so the journal's hashes still match) when given and present, else a
    /// random one.
    pub fn open(path: &Path, adopt_key: Option<&Path>) -> Result<Self, StoreError> {
        let conn = schema::open_connection(path)?;
        let tokens = token_hasher(path, adopt_key)?;
        Ok(Embedded { conn: Mutex::new(conn), path: path.to_path_buf(), tokens })
    }

    /// Opens an existing store for reading (`gateway ledger`): no key, no migration
    /// written, nothing created.
    pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .doing("opening read-only")?;
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).doing("reading the version")?;
        if version > schema::VERSION {
            return Err(StoreError::TooNew { found: version, known: schema::VERSION });
        }
        Ok(conn)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed hash of bearer tokens, with the store's key.
    pub fn token_hasher(&self) -> TokenHasher {
        self.tokens.clone()
    }

    /// Runs `f` in one transaction, committed before this returns.
    pub(crate) fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().doing(what)?;
        let out = f(&tx).doing(what)?;
        tx.commit().doing(what)?;
        Ok(out)
    }

    /// Runs `f` on the connection (reads).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.conn.lock())
    }
}

/// Where the token-hash key of the store at `path` is kept.
pub fn key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn token_hasher(path: &Path, adopt: Option<&Path>) -> Result<TokenHasher, StoreError> {
    let key_path = key_path(path);
    let file_err =
        |e: std::io::Error| StoreError::File { path: key_path.clone(), message: e.to_string() };
    let key = match std::fs::read(&key_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let adopted = adopt.and_then(|p| std::fs::read(p).ok());
            let key = adopted.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
            write_private(&key_path, &key).map_err(file_err)?;
            key
        }
        Err(e) => return Err(file_err(e)),
    };
    TokenHasher::with_key(&key)
        .map_err(|e| StoreError::File { path: key_path.clone(), message: e.to_string() })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
