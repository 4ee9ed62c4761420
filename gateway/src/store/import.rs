//! One-time import of the files the gateway kept before it had a store: the JSON-lines
//! ledger (`[admin] ledger_file`) and account journal (`[admin] accounts_file`).
//!
//! Each file is imported in one transaction that also records the import in `meta`
//! (`imported:ledger`, `imported:journal`), so it is never imported twice, even if the
//! gateway dies halfway or the files stay configured. The files themselves are left
//! as they were (a backup of the past, and a way back to a gateway without a store).
//! The journal's token hashes only match with the journal's key: a new store adopts
//! that key (see [`Embedded::open`]).

use std::path::Path;

use policy::accounts::AccountBook;
use policy::ledger::Ledger;
use rusqlite::{params, OptionalExtension, Transaction};

use super::accounts::{insert_account, insert_event, state_event};
use super::{Embedded, StoreError};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Ledger entries imported now (`None`: nothing to import, or imported before).
    pub ledger_entries: Option<usize>,
    /// Accounts imported now from the journal.
    pub accounts: Option<usize>,
}

fn done(tx: &Transaction<'_>, what: &str) -> Result<bool, rusqlite::Error> {
    Ok(tx
        .query_row("SELECT 1 FROM meta WHERE key = ?1", [format!("imported:{what}")], |_| Ok(()))
        .optional()?
        .is_some())
}

fn record(tx: &Transaction<'_>, what: &str, path: &Path, n: usize) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        params![format!("imported:{what}"), format!("{} ({n} rows)", path.display())],
    )?;
    Ok(())
}

impl Embedded {
    /// Imports the old ledger file and account journal, each once. A file that does
    /// not exist is not recorded, so nothing is imported from it and nothing is lost.
    pub fn import_legacy(
        &self,
        ledger: Option<&Path>,
        journal: Option<&Path>,
    ) -> Result<Imported, StoreError> {
        let mut out = Imported::default();
        if let Some(path) = ledger.filter(|p| p.exists()) {
            let file = std::fs::File::open(path).map_err(|e| StoreError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let read = Ledger::read_json_lines(std::io::BufReader::new(file)).map_err(|e| {
                StoreError::File { path: path.to_path_buf(), message: e.to_string() }
            })?;
            out.ledger_entries = self.write("importing the ledger file", |tx| {
                if done(tx, "ledger")? {
                    return Ok(None);
                }
                let entries = read.entries();
                for e in &entries {
                    super::ledger::insert_entry(tx, e)?;
                }
                record(tx, "ledger", path, entries.len())?;
                Ok(Some(entries.len()))
            })?;
        }
        if let Some(path) = journal.filter(|p| p.exists()) {
            let book = AccountBook::new();
            let skipped = crate::journal::replay_file(path, &book).map_err(|e| {
                StoreError::File { path: path.to_path_buf(), message: e.to_string() }
            })?;
            if skipped > 0 {
                tracing::warn!(skipped, file = %path.display(), "unreadable account-journal lines not imported");
            }
            out.accounts = self.write("importing the account journal", |tx| {
                if done(tx, "journal")? {
                    return Ok(None);
                }
                let accounts = book.snapshot();
                for (info, hash) in &accounts {
                    let id = &info.account_id;
                    insert_account(tx, id, hash, info.created_at, info.expires_at, &info.source)?;
                    let at = match info.state {
                        policy::accounts::AccountState::Claimed => info.claimed_at,
                        _ => info.ended_at,
                    };
                    if let Some((event, at)) = state_event(info.state, at, info.expires_at) {
                        insert_event(tx, id, event, at)?;
                    }
                }
                record(tx, "journal", path, accounts.len())?;
                Ok(Some(accounts.len()))
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::accounts::SourceKeys;
    use policy::quota::ResourceCounts;

    #[test]
    fn old_files_are_imported_once_with_the_journals_key() {
        let dir = tempfile::tempdir().expect("dir");
        let ledger_path = dir.path().join("ledger.jsonl");
        let journal_path = dir.path().join("accounts.jsonl");
        let source = SourceKeys::new("192.0.2.5".parse().expect("ip"), None, None);
        // The old files, as a gateway without a store wrote them.
        let hasher = crate::journal::token_hasher(&journal_path).expect("journal key");
        {
            let book = AccountBook::new();
            let (journal, _) =
                crate::journal::Journal::open(&journal_path, &book).expect("journal");
            journal.created("acct-1", &hasher.hash("token-1"), 0, 3600, &source);
            journal.created("acct-2", &hasher.hash("token-2"), 0, 3600, &source);
            journal.event("acct-2", policy::accounts::Event::Claimed, 50);
        }
        let costs = *policy::compile_str("p.toml", "version = 1\n").expect("policy").costs();
        let old = Ledger::new();
        old.charge_expired_unclaimed("acct-0", &source, ResourceCounts::default(), 10, &costs);
        let mut text = Vec::new();
        old.write_json_lines(&mut text).expect("ledger text");
        std::fs::write(&ledger_path, text).expect("ledger file");

        let db = dir.path().join("state.db");
        let key = crate::journal::key_path(&journal_path);
        let store = Embedded::open(&db, Some(&key)).expect("store");
        let first = store.import_legacy(Some(&ledger_path), Some(&journal_path)).expect("import");
        assert_eq!(first, Imported { ledger_entries: Some(1), accounts: Some(2) });
        let again = store.import_legacy(Some(&ledger_path), Some(&journal_path)).expect("again");
        assert_eq!(again, Imported::default(), "never twice");
        assert_eq!(store.load_ledger().expect("ledger").len(), 1);

        let book = AccountBook::new();
        assert_eq!(store.load_accounts(&book).expect("accounts"), 2);
        let tokens = store.token_hasher();
        let info = book.by_token(&tokens.hash("token-1")).expect("the journal's key was adopted");
        assert_eq!(info.source, source);
        assert_eq!(
            book.get("acct-2").map(|a| a.state),
            Some(policy::accounts::AccountState::Claimed)
        );
    }
}
