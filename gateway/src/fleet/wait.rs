//! Running one Redis call on the store's own runtime and waiting for its answer, from
//! synchronous code (a request check, a response-body filter, an admin handler) or from
//! async code on another runtime.
//!
//! The call itself runs on [`Redis::runtime`], where the connection's tasks live; the
//! caller only waits on a channel, bounded by [`WAIT_LIMIT`], so no caller ever runs
//! `block_on` inside a Pingora runtime and a stalled Redis holds a caller at most that
//! long. Every outcome is counted in the store's [`Health`](super::conn::Health).

use std::future::Future;
use std::time::Duration;

use super::conn::{Conn, Redis, RESPONSE_TIMEOUT};

/// How long a caller waits for one call: the connection's own response timeout plus
/// room for the hop between runtimes.
pub const WAIT_LIMIT: Duration = Duration::from_millis(RESPONSE_TIMEOUT.as_millis() as u64 + 100);

/// Why a call to the store gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection failed.
    #[error("the fleet store failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// The last calls failed and the store has not answered since: not asked.
    #[error("the fleet store is unreachable")]
    Down,
    /// No answer within [`WAIT_LIMIT`].
    #[error("the fleet store did not answer in time")]
    Timeout,
    /// An answer that is not what this gateway writes (another program's key, a
    /// newer gateway's format).
    #[error("the fleet store holds something unreadable: {0}")]
    Unreadable(String),
}

/// Runs `call` on the store's runtime and blocks the current thread until it answers
/// (at most [`WAIT_LIMIT`]). Never call it from the store's runtime itself.
pub fn blocking<T, F, Fut>(redis: &Redis, call: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let conn = redis.conn();
    let health = redis.health().clone();
    redis.runtime().spawn(async move {
        let out = match tokio::time::timeout(WAIT_LIMIT, call(conn)).await {
            Ok(out) => out,
            Err(_) => Err(StoreError::Timeout),
        };
        health.record(&out);
        let _ = tx.send(out);
    });
    rx.recv_timeout(WAIT_LIMIT + Duration::from_millis(50)).unwrap_or(Err(StoreError::Timeout))
}

/// Runs `call` on the store's runtime and awaits it from another runtime (at most
/// [`WAIT_LIMIT`]).
pub async fn awaited<T, F, Fut>(redis: &Redis, call: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let conn = redis.conn();
    let health = redis.health().clone();
    let task = redis.runtime().spawn(async move {
        let out = match tokio::time::timeout(WAIT_LIMIT, call(conn)).await {
            Ok(out) => out,
            Err(_) => Err(StoreError::Timeout),
        };
        health.record(&out);
        out
    });
    match tokio::time::timeout(WAIT_LIMIT + Duration::from_millis(50), task).await {
        Ok(Ok(out)) => out,
        _ => Err(StoreError::Timeout),
    }
}
