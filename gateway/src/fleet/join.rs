//! Joining the fleet at start: the fleet's token-hash key, the replay of its log, the
//! tail that keeps this gateway's state up with the others.

use std::sync::Arc;

use policy::accounts::TokenHasher;

use super::accounts::FleetAccounts;
use super::ledger::FleetLog;
use super::member::{retention_secs, Fleet};
use super::outbox::Outbox;
use super::usage::FleetUsage;
use crate::enforce::Enforcer;

/// Joins the fleet when the enforcer has a Redis and a policy: adopts the fleet's
/// token-hash key, replays the log, starts the tail. An error (no answer from Redis
/// for the key) stops the start: a gateway hashing tokens with a key of its own would
/// know none of the fleet's accounts and teach the fleet none of its own.
pub fn join(enforcer: &Enforcer) -> Result<(), String> {
    let (Some(redis), Some(loaded)) = (enforcer.redis(), enforcer.loaded()) else {
        return Ok(());
    };
    let policy = loaded.engine.current_policy();
    let retention = retention_secs(&policy);
    let outbox = Arc::new(Outbox::start(redis));
    let accounts = FleetAccounts::new(redis.clone(), outbox.clone(), retention);
    let key = accounts.token_key(&rand::random::<[u8; 32]>())?;
    let hasher = TokenHasher::with_key(&key)
        .map_err(|e| format!("the fleet's token-hash key is unusable: {e}"))?;
    let fleet = Arc::new(Fleet {
        accounts,
        usage: FleetUsage::new(redis.clone(), outbox.clone(), retention),
        log: FleetLog::new(redis.clone(), outbox.clone(), retention),
        outbox,
        redis: redis.clone(),
    });
    let tracker = loaded.tracker.clone();
    tracker.join_fleet(fleet.clone(), hasher);
    let last =
        fleet.log.replay(&*tracker).map_err(|e| format!("cannot replay the fleet log: {e}"))?;
    let again = fleet.clone();
    fleet.log.spawn_tail(tracker, last, move || again.accounts.reassert_token_key(&key));
    tracing::info!(store = %redis.target().urls().join(", "), "joined the fleet");
    Ok(())
}
