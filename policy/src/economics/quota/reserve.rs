//! Check-and-reserve: what keeps concurrent calls of one account from overshooting a
//! quota.
//!
//! [`AccountUsage::check`] alone answers for the account as committed, so N creates in
//! flight at once would all see `limit - 1` and pass. [`AccountUsage::reserve`] counts
//! the creates already checked and forwarded but not yet answered as if they had
//! succeeded, and adds the new one in the same step (the caller holds the account's
//! usage entry for both). The answer then settles the reservation
//! ([`AccountUsage::settle`], on 2xx) or gives it back ([`AccountUsage::release`],
//! on anything else: a refusal, an upstream failure, a client that went away).
//!
//! Asset uploads reserve per file while their body streams
//! ([`AccountUsage::reserve_asset_file`]): the files are counted as the platform counts
//! them, one account-wide set of content hashes, so a file already held (or carried by
//! another upload in flight) counts once.

use super::{AccountUsage, QuotaRefusal, QuotaSpec, ResourceKind, ResourceOp};

/// What one forwarded call holds against the account's quotas until it is answered.
/// Empty for calls that create nothing (deletes, updates of an existing script).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a reservation must be settled or released, or the quota stays held"]
pub struct Reservation {
    /// A create of this kind, counted as in flight.
    kind: Option<ResourceKind>,
    /// Asset files this upload carries, by content hash -> bytes.
    files: Vec<(String, u64)>,
}

impl Reservation {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.files.is_empty()
    }

    /// Asset files reserved so far.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

impl AccountUsage {
    /// Creates of `kind` reserved and not yet answered.
    pub fn reserved(&self, kind: ResourceKind) -> u64 {
        self.reserved.get(&kind).copied().unwrap_or(0)
    }

    /// Asset files the account holds plus those of uploads in flight.
    pub fn asset_files_with_reserved(&self) -> u64 {
        let in_flight =
            self.reserved_files.keys().filter(|h| !self.asset_files.contains_key(*h)).count();
        (self.asset_files.len() + in_flight) as u64
    }

    /// Checks `op` as [`AccountUsage::check`] does, counting creates in flight as
    /// done, and reserves it when it passes.
    pub fn reserve(
        &mut self,
        spec: &QuotaSpec,
        op: &ResourceOp,
    ) -> Result<Reservation, QuotaRefusal> {
        let ResourceOp::Create { kind, name } = op else {
            self.check(spec, op)?;
            return Ok(Reservation::default());
        };
        if let Some(name) = name {
            if self.resources.get(kind).is_some_and(|s| s.contains(name)) {
                return Ok(Reservation::default()); // an update of an existing script
            }
        }
        let limit = spec.limit_of(*kind);
        let current = self.count(*kind).saturating_add(self.reserved(*kind));
        if current >= limit {
            let quota = kind.quota_name();
            let what = kind.plural();
            return Err(QuotaRefusal {
                quota: quota.into(),
                limit,
                current,
                message: format!(
                    "Quota \"{quota}\" reached: a temporary account may have at most {limit} {what} \
                     (it has {current}, counting creates still in progress). Delete one or claim the \
                     account to lift temporary-account limits."
                ),
            });
        }
        *self.reserved.entry(*kind).or_default() += 1;
        Ok(Reservation { kind: Some(*kind), files: Vec::new() })
    }

    /// Adds one file of an asset upload to `reservation` once its real size is known:
    /// refused when it is larger than `max_asset_file_bytes`, or when it is new to the
    /// account and the account (with the uploads in flight) already has
    /// `max_asset_files`.
    pub fn reserve_asset_file(
        &mut self,
        spec: &QuotaSpec,
        reservation: &mut Reservation,
        hash: &str,
        bytes: u64,
    ) -> Result<(), QuotaRefusal> {
        if bytes > spec.max_asset_file_bytes {
            return Err(file_too_large(spec, bytes));
        }
        let known = self.asset_files.contains_key(hash) || self.reserved_files.contains_key(hash);
        if !known {
            let current = self.asset_files_with_reserved();
            if current >= spec.max_asset_files {
                return Err(QuotaRefusal {
                    quota: "asset_files".into(),
                    limit: spec.max_asset_files,
                    current,
                    message: format!(
                        "Quota \"asset_files\" reached: a temporary account may hold at most {} static-asset \
                         files (it has {current}, over all its uploads). Upload fewer files or claim the \
                         account to lift temporary-account limits.",
                        spec.max_asset_files
                    ),
                });
            }
        }
        *self.reserved_files.entry(hash.to_string()).or_default() += 1;
        reservation.files.push((hash.to_string(), bytes));
        Ok(())
    }

    /// Gives a reservation back: the call was not answered 2xx.
    pub fn release(&mut self, reservation: Reservation) {
        if let Some(kind) = reservation.kind {
            if let Some(n) = self.reserved.get_mut(&kind) {
                *n = n.saturating_sub(1);
            }
        }
        for (hash, _) in &reservation.files {
            if let Some(n) = self.reserved_files.get_mut(hash) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.reserved_files.remove(hash);
                }
            }
        }
    }

    /// Settles a reservation the platform answered 2xx: what it reserved becomes
    /// committed ([`AccountUsage::commit`]; `created_id` as there).
    pub fn settle(&mut self, reservation: Reservation, op: &ResourceOp, created_id: Option<&str>) {
        let files = reservation.files.clone();
        self.release(reservation);
        self.commit(op, created_id);
        for (hash, bytes) in files {
            self.asset_files.insert(hash, bytes);
        }
    }
}

/// The refusal of an asset file above the per-file limit.
pub fn file_too_large(spec: &QuotaSpec, bytes: u64) -> QuotaRefusal {
    QuotaRefusal {
        quota: "asset_file_bytes".into(),
        limit: spec.max_asset_file_bytes,
        current: bytes,
        message: format!(
            "Quota \"asset_file_bytes\" reached: each static-asset file of a temporary account may be at \
             most {} bytes (this upload carries one of at least {bytes}). Shrink or drop that file, or \
             claim the account to lift temporary-account limits.",
            spec.max_asset_file_bytes
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> ResourceOp {
        ResourceOp::Create { kind: ResourceKind::KvNamespace, name: None }
    }

    #[test]
    fn creates_in_flight_count_against_the_quota() {
        let spec = QuotaSpec { max_kv_namespaces: 2, ..QuotaSpec::default() };
        let mut u = AccountUsage::new();
        let a = u.reserve(&spec, &kv()).expect("first");
        let b = u.reserve(&spec, &kv()).expect("second");
        let refused = u.reserve(&spec, &kv()).expect_err("two in flight fill the quota");
        assert_eq!((refused.limit, refused.current), (2, 2));
        assert!(u.check(&spec, &kv()).is_ok(), "check alone sees nothing committed");
        u.release(a);
        let c = u.reserve(&spec, &kv()).expect("a failed create gave its place back");
        u.settle(b, &kv(), Some("ns-b"));
        u.settle(c, &kv(), None);
        assert_eq!(
            (u.count(ResourceKind::KvNamespace), u.reserved(ResourceKind::KvNamespace)),
            (2, 0)
        );
        assert!(u.reserve(&spec, &kv()).is_err());
    }

    #[test]
    fn an_update_of_an_existing_script_reserves_nothing() {
        let spec = QuotaSpec { max_worker_scripts: 1, ..QuotaSpec::default() };
        let put = ResourceOp::Create { kind: ResourceKind::WorkerScript, name: Some("w".into()) };
        let mut u = AccountUsage::new();
        let r = u.reserve(&spec, &put).expect("first");
        assert!(!r.is_empty());
        u.settle(r, &put, None);
        let again = u.reserve(&spec, &put).expect("an update passes at the limit");
        assert!(again.is_empty());
        u.release(again);
        let other = ResourceOp::Create { kind: ResourceKind::WorkerScript, name: Some("x".into()) };
        assert!(u.reserve(&spec, &other).is_err());
    }

    #[test]
    fn asset_files_accumulate_across_uploads_and_count_once_per_hash() {
        let spec =
            QuotaSpec { max_asset_files: 3, max_asset_file_bytes: 100, ..QuotaSpec::default() };
        let mut u = AccountUsage::new();
        let mut first = Reservation::default();
        u.reserve_asset_file(&spec, &mut first, "h1", 10).expect("h1");
        u.reserve_asset_file(&spec, &mut first, "h2", 20).expect("h2");
        let refused = u.reserve_asset_file(&spec, &mut first, "big", 101).expect_err("too large");
        assert_eq!(refused.quota, "asset_file_bytes");
        u.settle(first, &ResourceOp::AssetFiles, None);
        assert_eq!((u.counts().asset_files, u.counts().stored_bytes), (2, 30));

        let mut second = Reservation::default();
        u.reserve_asset_file(&spec, &mut second, "h1", 10).expect("held already: no new file");
        u.reserve_asset_file(&spec, &mut second, "h3", 5).expect("third file");
        let mut third = Reservation::default();
        let refused = u.reserve_asset_file(&spec, &mut third, "h4", 5).expect_err("fourth file");
        assert_eq!((refused.quota.as_str(), refused.current), ("asset_files", 3));
        u.release(third);
        u.release(second);
        assert_eq!(u.asset_files_with_reserved(), 2, "a failed upload holds nothing");
    }
}
