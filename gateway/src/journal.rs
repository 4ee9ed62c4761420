//! The account journal: what the gateway knows about temporary accounts, on disk, so a
//! restart does not forget who created the accounts still alive (their cleanup would
//! otherwise reach the platform's events as "unknown account" and never be charged).
//!
//! Append-only JSON lines, one per creation and one per lifecycle event, replayed at
//! start and rewritten compactly then. Token hashes are keyed: the key lives in a file
//! of its own (`<journal>.key`, created with mode 0600), and without it the hashes in
//! the journal are useless to whoever reads the journal. Resource counts are not
//! journaled: after a restart an account's quotas count from zero.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use policy::accounts::{AccountBook, AccountState, Event, SourceKeys, TokenHash, TokenHasher};
use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    /// An account was created.
    Created {
        account_id: String,
        /// Hex of the keyed token hash.
        token_hash: String,
        created_at: u64,
        expires_at: u64,
        source: SourceKeys,
    },
    /// Something happened to it.
    Event { account_id: String, event: Event, at: u64 },
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

/// Reads or creates the token-hash key beside the journal.
pub fn token_hasher(journal: &Path) -> std::io::Result<TokenHasher> {
    let key_path = key_path(journal);
    let key = match std::fs::read(&key_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private(&key_path, &key)?;
            key.to_vec()
        }
        Err(e) => return Err(e),
    };
    TokenHasher::with_key(&key)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", key_path.display())))
}

/// Where the token-hash key of `journal` is kept.
pub fn key_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

impl Journal {
    /// Replays `path` into `book` (lines it cannot read are skipped and counted), then
    /// rewrites it with only what `book` still holds and opens it for appending.
    pub fn open(path: &Path, book: &AccountBook) -> std::io::Result<(Self, usize)> {
        let skipped = replay_file(path, book)?;
        Self::rewrite(path, book)?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok((
            Journal { path: path.to_path_buf(), file: Mutex::new(std::io::BufWriter::new(file)) },
            skipped,
        ))
    }

    /// Rewrites the journal with only what `book` still holds (after the book forgot
    /// old accounts), so the file stays as bounded as the memory.
    pub fn compact(&self, book: &AccountBook) -> std::io::Result<()> {
        let mut f = self.file.lock();
        f.flush()?;
        Self::rewrite(&self.path, book)?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        *f = std::io::BufWriter::new(file);
        Ok(())
    }

    /// Writes the book's current content to `path` (via a temporary file and a rename,
    /// so a crash leaves the old journal whole).
    fn rewrite(path: &Path, book: &AccountBook) -> std::io::Result<()> {
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for (info, hash) in book.snapshot() {
                let created = Line::Created {
                    account_id: info.account_id.clone(),
                    token_hash: hex::encode(hash.as_bytes()),
                    created_at: info.created_at,
                    expires_at: info.expires_at,
                    source: info.source.clone(),
                };
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&created).map_err(std::io::Error::other)?
                )?;
                let event = match info.state {
                    AccountState::Live => None,
                    AccountState::Claimed => Some((Event::Claimed, info.claimed_at)),
                    AccountState::Expired => Some((Event::Expired, info.ended_at)),
                    AccountState::Deleted => Some((Event::Deleted, info.ended_at)),
                };
                if let Some((event, at)) = event {
                    let line = Line::Event {
                        account_id: info.account_id,
                        event,
                        at: at.unwrap_or(info.expires_at),
                    };
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string(&line).map_err(std::io::Error::other)?
                    )?;
                }
            }
            out.flush()?;
        }
        std::fs::rename(tmp, path)
    }

    /// Records a creation.
    pub fn created(
        &self,
        account_id: &str,
        hash: &TokenHash,
        created_at: u64,
        expires_at: u64,
        source: &SourceKeys,
    ) {
        self.append(&Line::Created {
            account_id: account_id.to_string(),
            token_hash: hex::encode(hash.as_bytes()),
            created_at,
            expires_at,
            source: source.clone(),
        });
    }

    /// Records an event.
    pub fn event(&self, account_id: &str, event: Event, at: u64) {
        self.append(&Line::Event { account_id: account_id.to_string(), event, at });
    }

    fn append(&self, line: &Line) {
        let Ok(text) = serde_json::to_string(line) else { return };
        let mut f = self.file.lock();
        if let Err(e) = writeln!(f, "{text}").and_then(|_| f.flush()) {
            tracing::error!(error = %e, "cannot append to the account journal");
        }
    }
}

/// Replays the journal at `path` (if it exists) into `book` without touching the file;
/// returns the lines it could not read (skipped).
pub fn replay_file(path: &Path, book: &AccountBook) -> std::io::Result<usize> {
    let mut skipped = 0;
    if let Ok(file) = std::fs::File::open(path) {
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(&line) {
                Ok(l) => replay(book, l),
                Err(_) => skipped += 1,
            }
        }
    }
    Ok(skipped)
}

fn replay(book: &AccountBook, line: Line) {
    match line {
        Line::Created { account_id, token_hash, created_at, expires_at, source } => {
            let Some(bytes) =
                hex::decode(&token_hash).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                return;
            };
            book.record_created(
                &account_id,
                TokenHash::from_bytes(bytes),
                created_at,
                expires_at,
                source,
            );
        }
        Line::Event { account_id, event, at } => {
            book.mark(&account_id, event, at);
        }
    }
}
