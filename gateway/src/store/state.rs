//! Snapshots in the store: the rate-limit tables' debts and the challenge book, each
//! one row of JSON in `snapshots`, replaced whole in one transaction (a crash leaves
//! the last complete one). One row rather than a row per key: a busy gateway has up to
//! `max_keys` keys in debt per limit, and the snapshot is serialized outside the
//! store's lock and written in one statement, so the commits that acknowledge clients
//! wait for one row's write, not for a hundred thousand inserts.

use policy::pow::BookSnapshot;
use policy::LimitSnapshot;
use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Context, Embedded, StoreError};

const LIMITS: &str = "limits";
const CHALLENGES: &str = "challenges";

impl Embedded {
    fn save_snapshot<T: Serialize>(
        &self,
        name: &str,
        taken_at_ms: u64,
        value: &T,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| StoreError::Corrupt { what: "snapshot", message: e.to_string() })?;
        self.write("saving a snapshot", |tx| {
            tx.execute(
                "INSERT INTO snapshots (name, taken_at_ms, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET
                     taken_at_ms = excluded.taken_at_ms, body = excluded.body",
                params![name, i64::try_from(taken_at_ms).unwrap_or(i64::MAX), body],
            )?;
            Ok(())
        })
    }

    fn load_snapshot<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<(T, u64)>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self.read(|conn| {
            conn.query_row("SELECT taken_at_ms, body FROM snapshots WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .doing("reading a snapshot")
        })?;
        let Some((taken, body)) = row else { return Ok(None) };
        let value = serde_json::from_slice(&body)
            .map_err(|e| StoreError::Corrupt { what: "snapshot", message: e.to_string() })?;
        Ok(Some((value, u64::try_from(taken).unwrap_or(0))))
    }

    /// Replaces the stored rate-limit snapshot with `snapshot`, taken at
    /// `taken_at_ms` (unix milliseconds).
    pub fn save_limits(
        &self,
        snapshot: &LimitSnapshot,
        taken_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.save_snapshot(LIMITS, taken_at_ms, snapshot)
    }

    /// The stored rate-limit snapshot and when it was taken (unix milliseconds), if any.
    pub fn load_limits(&self) -> Result<Option<(LimitSnapshot, u64)>, StoreError> {
        self.load_snapshot(LIMITS)
    }

    /// Replaces the stored challenge book with `book`.
    pub fn save_challenges(&self, book: &BookSnapshot, taken_at_ms: u64) -> Result<(), StoreError> {
        self.save_snapshot(CHALLENGES, taken_at_ms, book)
    }

    /// The stored challenge book (empty when none was saved).
    pub fn load_challenges(&self) -> Result<BookSnapshot, StoreError> {
        Ok(self.load_snapshot(CHALLENGES)?.map(|(book, _)| book).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::pow::SavedChallenge;
    use policy::LimitState;

    #[test]
    fn snapshots_replace_each_other_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Embedded::open(&dir.path().join("s.db"), None).expect("store");
        assert!(store.load_limits().expect("read").is_none(), "none taken yet");
        let limit = |rule: &str, debts: Vec<(String, u64)>| LimitState {
            rule: rule.into(),
            key: "ip".into(),
            rate: "1/hour".into(),
            burst: 3,
            debts,
        };
        let first = LimitSnapshot {
            limits: vec![limit("a", vec![("192.0.2.1".into(), 5)])],
            fair_share: None,
        };
        store.save_limits(&first, 1000).expect("saved");
        let second = LimitSnapshot {
            limits: vec![limit("b", vec![("192.0.2.2".into(), 7), ("192.0.2.3".into(), u64::MAX)])],
            fair_share: Some(policy::FairShareState {
                spec: "ceiling".into(),
                total: 2.5,
                networks: vec![(Some("10.1.0.0".parse().expect("net")), 2.5), (None, 0.5)],
            }),
        };
        store.save_limits(&second, 2000).expect("saved");
        assert_eq!(store.load_limits().expect("read"), Some((second, 2000)), "only the last one");

        assert_eq!(store.load_challenges().expect("read"), BookSnapshot::default());
        let book = BookSnapshot {
            challenges: vec![SavedChallenge {
                token_hash: "ab".repeat(32),
                k: 4,
                k_prime: 9,
                g: 256,
                expires_at: 99,
                issued_to: "cd".repeat(16),
                burned: true,
            }],
            seen: vec![(u64::MAX - 1, 99)],
        };
        store.save_challenges(&book, 3000).expect("saved");
        assert_eq!(store.load_challenges().expect("read"), book);
    }
}
