//! The quota a forwarded call holds until its answer, as a guard.
//!
//! `decide` (or `body`, for asset manifests) reserves the call's place in the account's
//! quotas and stores a [`QuotaHold`] in the request's context. `learn` settles it on a
//! 2xx answer; every other ending gives it back when the context is dropped: a non-2xx
//! answer, an upstream failure, a refusal while reading the body, a client that went
//! away. A 2xx answer whose body never arrives whole still counts (the platform made
//! the resource; only its id is unknown).

use std::sync::Arc;

use policy::quota::{Classified, Reservation};

use crate::tracker::Tracker;

/// A reservation of one call against its account's quotas.
pub struct QuotaHold {
    tracker: Arc<Tracker>,
    account: String,
    op: Classified,
    reservation: Option<Reservation>,
    answered_2xx: bool,
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
