//! Snapshots in the store: the rate-limit tables' debts and the challenge book. Each
//! snapshot replaces the previous one whole, in one transaction, so a crash leaves one
//! complete snapshot, the last or the one before.

use policy::pow::{BookSnapshot, SavedChallenge};
use policy::{LimitSnapshot, LimitState};
use rusqlite::{params, OptionalExtension};

use super::{Context, Embedded, StoreError};

const LIMITS_TAKEN_AT: &str = "limits_taken_at_ms";

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Embedded {
    /// Replaces the stored rate-limit snapshot with `snapshot`, taken at
    /// `taken_at_ms` (unix milliseconds).
    pub fn save_limits(
        &self,
        snapshot: &LimitSnapshot,
        taken_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.write("saving the rate-limit snapshot", |tx| {
            tx.execute("DELETE FROM limit_debts", [])?;
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO limit_debts (rule, key_text, rate, burst, value, ahead_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for l in &snapshot.limits {
                for (value, ahead) in &l.debts {
                    insert.execute(params![
                        l.rule,
                        l.key,
                        l.rate,
                        l.burst,
                        value,
                        to_sql(*ahead)
                    ])?;
                }
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![LIMITS_TAKEN_AT, taken_at_ms.to_string()],
            )?;
            Ok(())
        })
    }

    /// The stored rate-limit snapshot and when it was taken (unix milliseconds), if any.
    pub fn load_limits(&self) -> Result<Option<(LimitSnapshot, u64)>, StoreError> {
        self.read(|conn| {
            let taken: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [LIMITS_TAKEN_AT], |r| r.get(0))
                .optional()
                .doing("reading the rate-limit snapshot")?;
            let Some(taken) = taken.and_then(|t| t.parse::<u64>().ok()) else { return Ok(None) };
            let mut stmt = conn
                .prepare(
                    "SELECT rule, key_text, rate, burst, value, ahead_ns FROM limit_debts
                     ORDER BY rule, key_text, rate, burst, value",
                )
                .doing("reading the rate-limit snapshot")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .doing("reading the rate-limit snapshot")?;
            let mut snapshot = LimitSnapshot::default();
            for row in rows {
                let (rule, key, rate, burst, value, ahead) = row.doing("reading a limit debt")?;
                let same = snapshot.limits.last().is_some_and(|l| {
                    l.rule == rule && l.key == key && l.rate == rate && l.burst == burst
                });
                if !same {
                    snapshot.limits.push(LimitState { rule, key, rate, burst, debts: Vec::new() });
                }
                if let Some(l) = snapshot.limits.last_mut() {
                    l.debts.push((value, from_sql(ahead)));
                }
            }
            Ok(Some((snapshot, taken)))
        })
    }

    /// Replaces the stored challenge book with `book`.
    pub fn save_challenges(&self, book: &BookSnapshot) -> Result<(), StoreError> {
        self.write("saving the challenge book", |tx| {
            tx.execute("DELETE FROM challenges", [])?;
            tx.execute("DELETE FROM seen_digests", [])?;
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO challenges
                 (token_hash, k, k_prime, g, expires_at, issued_to, burned, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (seq, c) in book.challenges.iter().enumerate() {
                insert.execute(params![
                    c.token_hash,
                    c.k,
                    c.k_prime,
                    c.g,
                    to_sql(c.expires_at),
                    c.issued_to,
                    c.burned,
                    seq as i64
                ])?;
            }
            let mut seen = tx.prepare(
                "INSERT OR REPLACE INTO seen_digests (digest, expires_at) VALUES (?1, ?2)",
            )?;
            for (digest, exp) in &book.seen {
                // Stored as the same 64 bits, signed.
                seen.execute(params![*digest as i64, to_sql(*exp)])?;
            }
            Ok(())
        })
    }

    /// The stored challenge book (empty when none was saved).
    pub fn load_challenges(&self) -> Result<BookSnapshot, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT token_hash, k, k_prime, g, expires_at, issued_to, burned
                     FROM challenges ORDER BY seq",
                )
                .doing("reading the challenge book")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(SavedChallenge {
                        token_hash: r.get(0)?,
                        k: r.get(1)?,
                        k_prime: r.get(2)?,
                        g: r.get(3)?,
                        expires_at: from_sql(r.get(4)?),
                        issued_to: r.get(5)?,
                        burned: r.get(6)?,
                    })
                })
                .doing("reading the challenge book")?;
            let challenges = rows.collect::<Result<Vec<_>, _>>().doing("reading a challenge")?;
            let mut stmt = conn
                .prepare("SELECT digest, expires_at FROM seen_digests")
                .doing("reading solution digests")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, from_sql(r.get(1)?))))
                .doing("reading solution digests")?;
            let seen = rows.collect::<Result<Vec<_>, _>>().doing("reading a digest")?;
            Ok(BookSnapshot { challenges, seen })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let first = LimitSnapshot { limits: vec![limit("a", vec![("192.0.2.1".into(), 5)])] };
        store.save_limits(&first, 1000).expect("saved");
        let second = LimitSnapshot {
            limits: vec![limit("b", vec![("192.0.2.2".into(), 7), ("192.0.2.3".into(), u64::MAX)])],
        };
        store.save_limits(&second, 2000).expect("saved");
        let (back, at) = store.load_limits().expect("read").expect("taken");
        assert_eq!(at, 2000);
        let mut expected = second.clone();
        expected.limits[0].debts[1].1 = i64::MAX as u64;
        assert_eq!(back, expected, "only the last snapshot, clamped to what SQLite holds");

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
        store.save_challenges(&book).expect("saved");
        assert_eq!(store.load_challenges().expect("read"), book);
    }
}
