//! The fleet's Redis connection: one server or a Redis Cluster, reconnected with
//! backoff, with its health counted for `/stats` and `/metrics`.
//!
//! The connection's driver tasks run on a runtime of their own (one thread), not on a
//! Pingora service runtime: requests on any service await it through channels, and a
//! stalled Redis never occupies a proxy worker. Every call has a response timeout, so a
//! request that needs the store waits at most that long before its rule's
//! `on_store_error` applies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisTarget;

/// How long one Redis call may take before it counts as a store error.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A cheap-to-clone handle on the fleet's Redis: a multiplexed connection that
/// reconnects by itself.
#[derive(Clone)]
pub enum Conn {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster (keys are routed by their hash slot).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What the gateway knows about the store's health.
#[derive(Debug, Default)]
pub struct Health {
    up: AtomicBool,
    errors: AtomicU64,
    calls: AtomicU64,
}

impl Health {
    /// Records the outcome of one call.
    pub fn record<T, E>(&self, result: &Result<T, E>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => self.up.store(true, Ordering::Relaxed),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.up.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Whether the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Calls that failed (timeouts, refused connections, script errors).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Calls made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// The fleet's Redis: where it is, the connection, its health.
pub struct Redis {
    target: RedisTarget,
    conn: Conn,
    health: Arc<Health>,
    runtime: tokio::runtime::Handle,
}

impl Redis {
    /// Connects to `target` on a runtime thread of its own. A single server is connected
    /// lazily (the gateway starts while Redis is down and connects when it is back); a
    /// cluster needs one seed node answering at start to learn its topology.
    /// `GATEWAY_REDIS_PASSWORD`, when set, is the password.
    pub fn connect(target: &RedisTarget) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Redis runtime: {e}"))?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("redis-runtime".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("cannot start the Redis runtime: {e}"))?;
        let password = std::env::var("GATEWAY_REDIS_PASSWORD").ok();
        let target_in = target.clone();
        // Opened on the Redis runtime, so the connection's tasks live there.
        let conn = std::thread::spawn({
            let handle = handle.clone();
            move || handle.block_on(async move { open(&target_in, password).await })
        })
        .join()
        .map_err(|_| "the Redis connection thread panicked".to_string())??;
        Ok(Redis { target: target.clone(), conn, health: Arc::default(), runtime: handle })
    }

    /// A handle on the connection (cheap: the connection is multiplexed).
    pub fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The store's health counters.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Where the store is (URLs without credentials).
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The runtime the connection's tasks run on (for background loops of the store).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }
}

async fn open(target: &RedisTarget, password: Option<String>) -> Result<Conn, String> {
    match target {
        RedisTarget::Single(url) => {
            let mut info: redis::ConnectionInfo =
                redis::IntoConnectionInfo::into_connection_info(url.as_str())
                    .map_err(|e| format!("store.redis \"{url}\": {e}"))?;
            if let Some(p) = password {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            let client =
                redis::Client::open(info).map_err(|e| format!("store.redis \"{url}\": {e}"))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(2));
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| format!("store.redis \"{url}\": {e}"))?;
            Ok(Conn::Single(manager))
        }
        RedisTarget::Cluster(urls) => {
            let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT);
            if let Some(p) = password {
                builder = builder.password(p);
            }
            let client = builder
                .build()
                .map_err(|e| format!("store.redis cluster {}: {e}", urls.join(", ")))?;
            let conn = client
                .get_async_connection()
                .await
                .map_err(|e| format!("store.redis cluster {}: {e}", urls.join(", ")))?;
            Ok(Conn::Cluster(conn))
        }
    }
}
