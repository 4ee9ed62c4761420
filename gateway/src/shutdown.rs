//! Shutdown that waits for in-flight requests, but not longer than the grace period.
//!
//! Pingora's graceful terminate sleeps for the whole `grace_period_seconds` before it
//! stops its runtimes, even when nothing is in flight, and its runtime shutdown cancels
//! whatever is still running. So the gateway sets Pingora's grace period to zero and
//! does the waiting itself: on SIGTERM or SIGINT it waits until the in-flight counter
//! reaches zero (woken by the last request to finish, no polling) or the configured
//! grace period runs out, then lets Pingora stop.

use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::inflight::InFlight;

/// Waits for SIGTERM/SIGINT, then drains in-flight requests within `grace`.
pub struct DrainingShutdown {
    /// Requests in flight.
    pub in_flight: InFlight,
    /// Upper bound on the wait.
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainingShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        let waiting = self.in_flight.current();
        tracing::info!(
            signal = which,
            in_flight = waiting,
            grace_ms = self.grace.as_millis() as u64,
            "shutting down"
        );
        // Returns as soon as the last request in flight finishes, or at the deadline.
        let _ = tokio::time::timeout(self.grace, self.in_flight.idle()).await;
        let left = self.in_flight.current();
        if left > 0 {
            tracing::warn!(abandoned = left, "grace period over with requests still in flight");
        }
        crate::audit::flush_all(Duration::from_secs(2));
        ShutdownSignal::FastShutdown
    }
}
