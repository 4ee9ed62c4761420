//! The quota a forwarded call holds until its answer, as a guard.
//!
//! `decide` (or `body`, for asset manifests) reserves the call's place in the account's
//! quotas and stores a [`QuotaHold`] in the request's context. `learn` settles it on a
//! 2xx answer; every other ending gives it back when the context is dropped: a non-2xx
//! answer, an upstream failure, a refusal while reading the body, a client that went
//! away. A 2xx answer whose body never arrives whole still counts (the platform made
//! the resource; only its id is unknown).
//!
//! In a fleet ([`crate::fleet`]) a create is reserved in Redis, across every gateway
//! ([`reserve`]); the hold then settles or gives back the fleet's reservation as well,
//! and the gateway's own counts only mirror what it saw (for `/accounts/usage`).

use std::sync::Arc;

use policy::quota::{Classified, Reservation, ResourceOp};

use super::refusal::{Refusal, Why};
use crate::fleet::member::Fleet;
use crate::fleet::usage::{on_store_error, OnStoreError, Reserved, STORE_DOWN_MESSAGE};
use crate::tracker::Tracker;

/// What a reservation is judged by: the policy in force and this gateway's tracker.
#[derive(Clone, Copy)]
pub struct Policed<'a> {
    /// The policy in force (its quotas).
    pub policy: &'a policy::Policy,
    /// This gateway's accounts and counts.
    pub tracker: &'a Arc<Tracker>,
}

/// Seconds a client is asked to wait when the fleet store cannot be reached.
const STORE_RETRY_SECS: u64 = 2;

/// Reserves `op` of `account`: fleet-wide in Redis for a create when the gateway is
/// part of a fleet, else (and for every other operation) against this gateway's counts.
/// A store that cannot be reached follows [`on_store_error`].
/// A refusal carries the name of the quota it hit, for the audit log.
pub fn reserve(
    c: Policed<'_>,
    account: &str,
    op: &Classified,
) -> Result<QuotaHold, (Refusal, Option<String>)> {
    let local = |tracker: &Arc<Tracker>| {
        let r = tracker
            .reserve_quota(c.policy, account, op)
            .map_err(|r| (Refusal::new(Why::Quota, r.message), Some(r.quota.to_string())))?;
        Ok(QuotaHold::new(tracker.clone(), account, op.clone(), r))
    };
    let Some(fleet) = c.tracker.fleet() else { return local(c.tracker) };
    if !matches!(op.op, ResourceOp::Create { .. }) {
        // Nothing to count before the answer; a delete is settled fleet-wide.
        return Ok(local(c.tracker)?.in_fleet(fleet.clone(), None));
    }
    match fleet.usage.reserve(c.policy.quotas(), account, &op.op) {
        Ok(Reserved::Granted(rid)) => {
            Ok(QuotaHold::new(c.tracker.clone(), account, op.clone(), Reservation::default())
                .in_fleet(fleet.clone(), rid))
        }
        Ok(Reserved::Refused(r)) => {
            Err((Refusal::new(Why::Quota, r.message), Some(r.quota.to_string())))
        }
        Err(e) => match on_store_error(c.policy) {
            OnStoreError::Closed => {
                tracing::warn!(error = %e, account, "quota reservation refused: the fleet store is unreachable");
                Err((store_down(), None))
            }
            OnStoreError::Open => {
                tracing::warn!(error = %e, account, "quota checked against this gateway's counts: the fleet store is unreachable");
                local(c.tracker)
            }
        },
    }
}

/// The fleet's side of a hold: where to settle, and the reservation it holds there.
struct FleetHold {
    fleet: Arc<Fleet>,
    rid: Option<String>,
    /// Asset files reserved fleet-wide: content hash and bytes.
    files: Vec<(String, u64)>,
}

/// The refusal of a call whose quota cannot be checked because the store is away.
fn store_down() -> Refusal {
    Refusal::retry_after(Why::Busy, STORE_DOWN_MESSAGE, STORE_RETRY_SECS)
}

/// A reservation of one call against its account's quotas.
pub struct QuotaHold {
    tracker: Arc<Tracker>,
    account: String,
    op: Classified,
    reservation: Option<Reservation>,
    answered_2xx: bool,
    fleet: Option<FleetHold>,
}

impl QuotaHold {
    /// Holds `reservation` for `op` of `account`.
    pub fn new(
        tracker: Arc<Tracker>,
        account: &str,
        op: Classified,
        reservation: Reservation,
    ) -> Self {
        QuotaHold {
            tracker,
            account: account.to_string(),
            op,
            reservation: Some(reservation),
            answered_2xx: false,
            fleet: None,
        }
    }

    /// The hold also holds `rid` in the fleet's counts (and settles there).
    fn in_fleet(mut self, fleet: Arc<Fleet>, rid: Option<String>) -> Self {
        self.fleet = Some(FleetHold { fleet, rid, files: Vec::new() });
        self
    }

    /// Adds one uploaded asset file, of its real size, to the hold: checked against
    /// this gateway's counts and, in a fleet, reserved across the fleet.
    pub fn reserve_file(
        &mut self,
        policy: &policy::Policy,
        hash: &str,
        bytes: u64,
    ) -> Result<(), Refusal> {
        let Some(reservation) = self.reservation.as_mut() else { return Ok(()) };
        self.tracker
            .reserve_asset_file(policy, &self.account, reservation, hash, bytes)
            .map_err(|r| Refusal::new(Why::Quota, r.message))?;
        let Some(hold) = self.fleet.as_mut() else { return Ok(()) };
        match hold.fleet.usage.reserve_file(policy.quotas(), &self.account, hash) {
            Ok(Ok(())) => {
                hold.files.push((hash.to_string(), bytes));
                Ok(())
            }
            Ok(Err(r)) => Err(Refusal::new(Why::Quota, r.message)),
            Err(e) => match on_store_error(policy) {
                OnStoreError::Closed => {
                    tracing::warn!(error = %e, account = %self.account, "asset upload refused: the fleet store is unreachable");
                    Err(store_down())
                }
                OnStoreError::Open => Ok(()),
            },
        }
    }

    /// Settles or gives back the fleet's side.
    fn end_in_fleet(&mut self, settled: bool, created_id: Option<&str>) {
        let Some(hold) = self.fleet.take() else { return };
        let usage = &hold.fleet.usage;
        usage.end_files(&self.account, hold.files, settled);
        match (settled, hold.rid) {
            (true, rid) => usage.settle(&self.account, &self.op.op, rid, created_id),
            (false, Some(rid)) => usage.release(&self.account, &self.op.op, rid),
            (false, None) => {}
        }
    }

    /// The platform answered 2xx: from now on, dropping the hold counts the call.
    pub fn answered_2xx(&mut self) {
        self.answered_2xx = true;
    }

    /// The reservation, to add asset files to while an upload streams.
    pub fn reservation_mut(&mut self) -> Option<&mut Reservation> {
        self.reservation.as_mut()
    }

    /// The account held for.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Counts the call as done, with the created id when the answer named one.
    pub fn settle(mut self, created_id: Option<&str>) {
        if let Some(r) = self.reservation.take() {
            self.tracker.settle(&self.account, r, &self.op, created_id);
            self.end_in_fleet(true, created_id);
        }
    }
}

impl Drop for QuotaHold {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            if self.answered_2xx {
                self.tracker.settle(&self.account, r, &self.op, None);
            } else {
                self.tracker.release(&self.account, r);
            }
            self.end_in_fleet(self.answered_2xx, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::platform::classify_default;

    #[test]
    fn a_hold_is_given_back_unless_answered_2xx() {
        let policy =
            policy::compile_str("p.toml", "version = 1\n[quotas]\nmax_kv_namespaces = 1\n")
                .expect("policy");
        let tracker = Arc::new(Tracker::new(&policy, None, None).expect("tracker"));
        let op = classify_default("POST", "/client/v4/accounts/a/storage/kv/namespaces");
        let r = tracker.reserve_quota(&policy, "a", &op).expect("room");
        let hold = QuotaHold::new(tracker.clone(), "a", op.clone(), r);
        assert!(tracker.reserve_quota(&policy, "a", &op).is_err(), "held");
        drop(hold);
        let r = tracker.reserve_quota(&policy, "a", &op).expect("given back");
        let mut hold = QuotaHold::new(tracker.clone(), "a", op.clone(), r);
        hold.answered_2xx();
        drop(hold);
        assert_eq!(tracker.usage_of("a").kv_namespaces, 1, "counted without an id");
    }
}
