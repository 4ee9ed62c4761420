//! The challenge book as data, for a durable store: what was issued to whom at what
//! difficulty, which tokens are burned, and the digests of verified solutions, so a
//! restart neither forgets the harder challenge a debtor was sent nor lets a burned
//! token or a reused chain through again.

use serde::{Deserialize, Serialize};

use super::{BookInner, ChallengeBook, ChallengeRecord, IssuedTo, Slot};

/// One challenge of the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedChallenge {
    /// Hex of the SHA-256 of the challenge token (the token itself is never kept).
    pub token_hash: String,
    /// Platform's k.
    pub k: u32,
    /// The k' its fetcher was asked for.
    pub k_prime: u32,
    /// Rounds per segment.
    pub g: u32,
    /// When it is forgotten, unix seconds.
    pub expires_at: u64,
    /// Hex of the fetcher's compact identity ([`IssuedTo`]).
    pub issued_to: String,
    /// Redeemed already.
    pub burned: bool,
}

/// The whole book at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookSnapshot {
    /// Live challenges, oldest first.
    pub challenges: Vec<SavedChallenge>,
    /// (short digest, expiry) of the extra checkpoints of verified solutions.
    pub seen: Vec<(u64, u64)>,
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex::decode(s).ok()?.try_into().ok()
}

impl ChallengeBook {
    /// What the book holds now (expired entries left out).
    pub fn snapshot(&self, now: u64) -> BookSnapshot {
        let inner = self.inner.lock();
        let mut challenges: Vec<(u64, SavedChallenge)> = inner
            .map
            .iter()
            .filter(|(_, (_, slot))| slot.record.expires_at > now)
            .map(|(key, (seq, slot))| {
                let r = &slot.record;
                (
                    *seq,
                    SavedChallenge {
                        token_hash: hex::encode(key),
                        k: r.k,
                        k_prime: r.k_prime,
                        g: r.g,
                        expires_at: r.expires_at,
                        issued_to: hex::encode(r.issued_to.0),
                        burned: slot.burned,
                    },
                )
            })
            .collect();
        drop(inner);
        challenges.sort_by_key(|(seq, _)| *seq);
        let seen = self.seen.lock();
        let seen =
            seen.expiry.iter().filter(|(_, exp)| **exp > now).map(|(d, e)| (*d, *e)).collect();
        BookSnapshot { challenges: challenges.into_iter().map(|(_, c)| c).collect(), seen }
    }

    /// Adds what `snapshot` holds (entries unreadable or expired at `now` are skipped),
    /// within the book's capacity. Returns the challenges taken.
    pub fn restore(&self, snapshot: &BookSnapshot, now: u64) -> usize {
        let mut taken = 0;
        {
            let mut inner = self.inner.lock();
            let BookInner { map, order, seq, max, .. } = &mut *inner;
            for c in &snapshot.challenges {
                let (Some(key), Some(to)) = (unhex::<32>(&c.token_hash), unhex::<16>(&c.issued_to))
                else {
                    continue;
                };
                if c.expires_at <= now || map.len() >= *max || map.contains_key(&key) {
                    continue;
                }
                *seq += 1;
                let record = ChallengeRecord {
                    k: c.k,
                    k_prime: c.k_prime,
                    g: c.g,
                    expires_at: c.expires_at,
                    issued_to: IssuedTo(to),
                };
                map.insert(key, (*seq, Slot { record, burned: c.burned }));
                order.push_back((key, *seq));
                taken += 1;
            }
        }
        let mut seen = self.seen.lock();
        for &(d, exp) in &snapshot.seen {
            if exp > now && seen.order.len() < super::MAX_SEEN_DIGESTS {
                seen.expiry.insert(d, exp);
                seen.order.push_back((d, exp));
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::economics::accounts::SourceKeys;
    use crate::economics::pow::Redeemed;

    #[test]
    fn a_burned_token_stays_burned_and_a_harder_challenge_stays_harder() {
        let before = ChallengeBook::new(10, 300);
        let to = IssuedTo::of(&SourceKeys::new("192.0.2.1".parse().expect("ip"), None, None));
        before.remember("tok-burned", 4, 8, 256, to, 100);
        before.remember("tok-open", 4, 12, 256, to, 100);
        assert!(matches!(before.redeem("tok-burned", 101), Redeemed::Open(_)));
        assert!(before.first_use(&[[7u8; 32]], 101));
        let snap: BookSnapshot =
            serde_json::from_str(&serde_json::to_string(&before.snapshot(102)).expect("json"))
                .expect("back");
        let after = ChallengeBook::new(10, 300);
        assert_eq!(after.restore(&snap, 103), 2);
        assert_eq!(after.redeem("tok-burned", 104), Redeemed::Burned);
        match after.redeem("tok-open", 104) {
            Redeemed::Open(r) => assert_eq!((r.k_prime, r.issued_to), (12, to)),
            other => panic!("{other:?}"),
        }
        assert!(!after.first_use(&[[7u8; 32]], 104), "a chain seen before is still refused");
        // Nothing expired comes back.
        assert_eq!(ChallengeBook::new(10, 300).restore(&snap, 400), 0);
    }
}
