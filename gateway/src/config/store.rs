//! `[store]`: where the gateway keeps the state that must outlive a process and, in a
//! fleet, be shared by every gateway.
//!
//! - `path = "FILE"`: the embedded store on this machine (single node).
//! - `redis = "redis://HOST:PORT"`: one Redis shared by the fleet;
//!   `redis = ["redis://A:7000", "redis://B:7001", …]`: the seed nodes of a Redis Cluster.
//!
//! Without `[store]` the state lives in memory only.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default)]
    pub(super) path: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) redis: Option<Spanned<RawRedis>>,
    #[serde(default)]
    pub(super) snapshot_secs: Option<Spanned<u64>>,
}

/// One Redis URL, or a list of cluster seed nodes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRedis {
    One(String),
    Cluster(Vec<String>),
}

/// The compiled `[store]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// The embedded database file (relative paths are resolved against the config file).
    pub path: Option<PathBuf>,
    /// The Redis the fleet shares, if any.
    pub redis: Option<RedisTarget>,
    /// How often the embedded store snapshots the rate-limit and challenge state
    /// (`snapshot_secs`, default [`DEFAULT_SNAPSHOT_SECS`]); also taken at a graceful
    /// shutdown.
    pub snapshot_secs: Option<u64>,
}

/// Seconds between two snapshots of the rate-limit state when `snapshot_secs` is not
/// set: what a `kill -9` can hand back to an abuser at most.
pub const DEFAULT_SNAPSHOT_SECS: u64 = 5;

/// Which Redis deployment the fleet uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://HOST:PORT[/DB]`).
    Single(String),
    /// The seed nodes of a Redis Cluster; the client learns the rest of the topology.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The URLs, for messages and health reports (they carry no secrets once checked:
    /// a URL with a password is refused; see [`compile_store`]).
    pub fn urls(&self) -> Vec<&str> {
        match self {
            RedisTarget::Single(u) => vec![u.as_str()],
            RedisTarget::Cluster(us) => us.iter().map(String::as_str).collect(),
        }
    }
}

/// Checks `[store]`: a non-empty path, `redis://` URLs without passwords (a password
/// belongs in the environment, `GATEWAY_REDIS_PASSWORD`, not in a file that is copied
/// around), and a non-empty cluster list.
pub(super) fn compile_store(
    raw: Option<RawStore>,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<StoreSettings, ConfigError> {
    let Some(raw) = raw else { return Ok(StoreSettings::default()) };
    let path = match &raw.path {
        Some(p) if p.get_ref().trim().is_empty() => {
            return Err(err_at(p.span().start, "store.path must name a file".into()))
        }
        Some(p) => Some(PathBuf::from(p.get_ref())),
        None => None,
    };
    let redis = match &raw.redis {
        None => None,
        Some(r) => {
            let at = r.span().start;
            let check = |url: &str| -> Result<(), ConfigError> {
                let Some(rest) = url.strip_prefix("redis://") else {
                    return Err(err_at(
                        at,
                        format!("store.redis \"{url}\" must start with redis://"),
                    ));
                };
                let authority = rest.split('/').next().unwrap_or_default();
                if authority.contains('@') {
                    return Err(err_at(
                        at,
                        "store.redis must not carry a password; set GATEWAY_REDIS_PASSWORD instead"
                            .into(),
                    ));
                }
                if authority.is_empty() {
                    return Err(err_at(at, format!("store.redis \"{url}\" has no host")));
                }
                Ok(())
            };
            match r.get_ref() {
                RawRedis::One(url) => {
                    check(url)?;
                    Some(RedisTarget::Single(url.clone()))
                }
                RawRedis::Cluster(urls) if urls.is_empty() => {
                    return Err(err_at(at, "store.redis needs at least one cluster node".into()))
                }
                RawRedis::Cluster(urls) => {
                    for u in urls {
                        check(u)?;
                    }
                    Some(RedisTarget::Cluster(urls.clone()))
                }
            }
        }
    };
    let snapshot_secs = match &raw.snapshot_secs {
        Some(n) if *n.get_ref() == 0 || *n.get_ref() > 3600 => {
            return Err(err_at(
                n.span().start,
                "store.snapshot_secs must be between 1 and 3600 seconds".into(),
            ))
        }
        Some(n) => Some(*n.get_ref()),
        None => None,
    };
    Ok(StoreSettings { path, redis, snapshot_secs })
}
