//! Durable storage for the admin block list: the list itself (and what a block means
//! to a request) is kept in memory by its owner, which writes each change here and
//! reads the list back at start. A block is keyed by (kind, value), so putting the same
//! one again replaces it.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Context, Embedded, StoreError};

/// One stored block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// What is blocked: `ip`, `prefix`, `http_fp`, `tls_fp`, `account`, … (the block
    /// list's own vocabulary; the store does not interpret it).
    pub kind: String,
    /// The blocked value of that kind.
    pub value: String,
    /// Unix seconds when it lapses; `None` for a block until removed.
    pub until: Option<u64>,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// Unix seconds when it was put.
    pub created: u64,
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Embedded {
    /// Puts (or replaces) a block, committed before this returns.
    pub fn put_block(&self, block: &Block) -> Result<(), StoreError> {
        self.write("putting a block", |tx| {
            tx.execute(
                "INSERT INTO blocks (kind, value, until, reason, created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, value) DO UPDATE SET
                     until = excluded.until, reason = excluded.reason, created = excluded.created",
                params![block.kind, block.value, block.until.map(to_sql), block.reason, to_sql(block.created)],
            )?;
            Ok(())
        })
    }

    /// Removes a block; whether there was one.
    pub fn remove_block(&self, kind: &str, value: &str) -> Result<bool, StoreError> {
        self.write("removing a block", |tx| {
            Ok(tx.execute("DELETE FROM blocks WHERE kind = ?1 AND value = ?2", [kind, value])? > 0)
        })
    }

    /// Every stored block, lapsed ones included (the owner decides what a lapsed block
    /// means), by kind then value.
    pub fn list_blocks(&self) -> Result<Vec<Block>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT kind, value, until, reason, created FROM blocks ORDER BY kind, value",
                )
                .doing("listing blocks")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Block {
                        kind: r.get(0)?,
                        value: r.get(1)?,
                        until: r.get::<_, Option<i64>>(2)?.map(|u| u.max(0) as u64),
                        reason: r.get(3)?,
                        created: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })
                .doing("listing blocks")?;
            rows.collect::<Result<Vec<_>, _>>().doing("reading a block")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_put_replaced_listed_and_removed_across_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let block = |kind: &str, value: &str, until| Block {
            kind: kind.into(),
            value: value.into(),
            until,
            reason: "abuse report".into(),
            created: 10,
        };
        {
            let store = Embedded::open(&path, None).expect("store");
            store.put_block(&block("ip", "192.0.2.1", Some(100))).expect("put");
            store.put_block(&block("http_fp", "hf1_x", None)).expect("put");
            store.put_block(&block("ip", "192.0.2.1", Some(200))).expect("replaced");
        }
        let store = Embedded::open(&path, None).expect("reopened");
        assert_eq!(
            store.list_blocks().expect("list"),
            vec![block("http_fp", "hf1_x", None), block("ip", "192.0.2.1", Some(200))]
        );
        assert!(store.remove_block("ip", "192.0.2.1").expect("removed"));
        assert!(!store.remove_block("ip", "192.0.2.1").expect("gone already"));
        assert_eq!(store.list_blocks().expect("list").len(), 1);
    }
}
