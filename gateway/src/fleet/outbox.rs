//! Writes to the fleet's store that need not hold up a request, in order, retried
//! until Redis takes them.
//!
//! Settling or giving back a quota reservation, a lifecycle event, a ledger entry: the
//! caller must not wait for Redis (the admin listener answers the platform, a request
//! ends), but the write must not be lost to a short outage either. Each is queued here
//! and one task on the store's runtime sends them one after another, retrying a failed
//! write with backoff before the next, so the order the gateway decided them in is the
//! order the fleet sees. The queue is bounded ([`MAX_QUEUED`]); past it, writes are
//! dropped and counted, and the fleet converges again from the next ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::conn::{Conn, Redis};
use super::wait::{StoreError, WAIT_LIMIT};

/// Writes queued at most (a long outage fills it; later writes are dropped, counted).
pub const MAX_QUEUED: usize = 100_000;

type Job =
    Box<dyn FnMut(Conn) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send>;

/// The queue of pending writes.
pub struct Outbox {
    tx: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Starts the sending task on the store's runtime.
    pub fn start(redis: &Redis) -> Outbox {
        let (tx, mut rx) = mpsc::channel::<Job>(MAX_QUEUED);
        let conn = redis.conn();
        let health = redis.health().clone();
        redis.runtime().spawn(async move {
            while let Some(mut job) = rx.recv().await {
                let mut backoff = Duration::from_millis(50);
                loop {
                    let out = match tokio::time::timeout(WAIT_LIMIT, job(conn.clone())).await {
                        Ok(out) => out,
                        Err(_) => Err(StoreError::Timeout),
                    };
                    health.record(&out);
                    match out {
                        Ok(()) => break,
                        // A write Redis refuses for what it is (not for being down)
                        // would fail forever: drop it, or it holds up every later one.
                        Err(StoreError::Redis(e))
                            if e.kind()
                                == redis::ErrorKind::Server(
                                    redis::ServerErrorKind::ResponseError,
                                ) =>
                        {
                            tracing::error!(error = %e, "the fleet store refused a write; dropped");
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "fleet write failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            }
        });
        Outbox { tx, dropped: Arc::default() }
    }

    /// Queues `write` (called again on each retry with a fresh connection handle).
    pub fn push<F, Fut>(&self, mut write: F)
    where
        F: FnMut(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| Box::pin(write(conn)));
        if self.tx.try_send(job).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    "the fleet store's write queue is full; writes dropped"
                );
            }
        }
    }

    /// Writes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
