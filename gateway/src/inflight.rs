//! Requests in flight, so that shutdown can wait for them (see [`crate::shutdown`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts requests in flight. Cloned handles share one count.
#[derive(Clone, Default)]
pub struct InFlight(Arc<InFlightInner>);

#[derive(Default)]
struct InFlightInner {
    count: AtomicU64,
    /// Woken when the count drops to zero.
    idle: tokio::sync::Notify,
}

impl InFlight {
    /// Requests currently being handled.
    pub fn current(&self) -> u64 {
        self.0.count.load(Ordering::Acquire)
    }

    /// Waits until no request is in flight.
    pub async fn idle(&self) {
        loop {
            // Register before looking, so a drop to zero in between is not missed.
            let woken = self.0.idle.notified();
            if self.current() == 0 {
                return;
            }
            woken.await;
        }
    }

    /// Counts one more request until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

/// One request in flight; dropping it ends the request.
pub struct InFlightGuard(Arc<InFlightInner>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[tokio::test(start_paused = true)]
    async fn idle_wakes_when_the_last_request_finishes() {
        let in_flight = InFlight::default();
        in_flight.idle().await; // nothing in flight: returns at once
        let first = in_flight.enter();
        let second = in_flight.enter();
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one request is still in flight");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken by the last request")
            .expect("waiter");
        assert_eq!(in_flight.current(), 0);
    }
}
