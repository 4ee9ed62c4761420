//! Resource counts of the fleet's accounts in Redis, reserved atomically fleet-wide.
//!
//! Per account and resource kind, two keys sharing the hash tag `{<account>}` (one
//! cluster node holds all of an account's counters):
//! - `gw:res:{<account>}:<kind>`: the set of what the account holds (ids, script names);
//! - `gw:flight:{<account>}:<kind>`: the reservations in flight, scored by deadline.
//!
//! A create is checked and reserved by one Lua script (`usage.lua`) that looks at
//! every counter the operation touches, refuses on the first at its limit, and
//! otherwise reserves in each: two gateways racing for an account's last slot run the
//! script one after the other and exactly one gets it. The answer settles it
//! (`usage_settle.lua`, atomic: the slot moves from in flight to held) or gives it back;
//! both are queued in the [`Outbox`], since a reservation counts as much as what it
//! becomes and a late settle or release is never looser than the truth. A reservation
//! whose gateway died before the answer lapses after [`RESERVATION_LIFETIME`].
//!
//! Static-asset files are counted the same way, per file while an upload streams
//! (`usage_files.lua`: `gw:files:{<account>}` the files held, by content hash, and
//! the hashes of uploads in flight), so an account's files add up over every gateway.
//! Deletes, updates and asset manifests are checked against the policy alone.

use std::sync::Arc;
use std::time::Duration;

use policy::quota::{QuotaRefusal, QuotaSpec, ResourceKind, ResourceOp};
use policy::Policy;

use super::conn::{Conn, Redis};
use super::outbox::Outbox;
use super::wait::{self, StoreError};

/// How long a reservation holds its slot without an answer (longer than any upstream
/// call may take, so only a gateway that died leaves one to lapse).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(600);

/// What the fleet's reservation gave.
#[derive(Debug)]
pub enum Reserved {
    /// Room in every counter; `Some(id)` of the reservation when it holds a slot
    /// (`None` for an update of a script the account holds).
    Granted(Option<String>),
    /// A counter at its limit.
    Refused(QuotaRefusal),
}

/// What a quota check does when the fleet store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Check against this gateway's own counts (what it saw created) and go on.
    Open,
    /// Refuse with 503: the quota cannot be checked.
    Closed,
}

/// The rule for a quota reservation the fleet store cannot take: closed, since a
/// quota is a hard bound and what this gateway alone counts can be far below what the
/// fleet holds. The one place to change when the policy says otherwise.
pub fn on_store_error(_policy: &Policy) -> OnStoreError {
    OnStoreError::Closed
}

/// The message of a quota call refused because the store is unreachable.
pub const STORE_DOWN_MESSAGE: &str = "The gateway cannot reach the fleet's shared store to \
     check this account's quotas right now. Nothing was created; try again in a few seconds.";

fn kind_name(kind: ResourceKind) -> &'static str {
    kind.quota_name()
}

fn files_keys(account: &str) -> Vec<String> {
    vec![
        format!("gw:files:{{{account}}}"),
        format!("gw:files-flight:{{{account}}}"),
        format!("gw:files-refs:{{{account}}}"),
    ]
}

fn held_key(account: &str, kind: ResourceKind) -> String {
    format!("gw:res:{{{account}}}:{}", kind_name(kind))
}

fn flight_key(account: &str, kind: ResourceKind) -> String {
    format!("gw:flight:{{{account}}}:{}", kind_name(kind))
}

/// The resource counts' side of the fleet store.
pub struct FleetUsage {
    redis: Arc<Redis>,
    outbox: Arc<Outbox>,
    retention_ms: u64,
    reserve: redis::Script,
    settle: redis::Script,
    files: redis::Script,
}

impl FleetUsage {
    /// The counts on `redis`; keys live `retention_secs` after their last change.
    pub fn new(redis: Arc<Redis>, outbox: Arc<Outbox>, retention_secs: u64) -> Self {
        FleetUsage {
            redis,
            outbox,
            retention_ms: retention_secs.saturating_mul(1000),
            reserve: redis::Script::new(include_str!("usage.lua")),
            settle: redis::Script::new(include_str!("usage_settle.lua")),
            files: redis::Script::new(include_str!("usage_files.lua")),
        }
    }

    /// Checks and reserves `op` of `account` fleet-wide (blocking, bounded). Only
    /// creates need the store; every other operation is granted with nothing held.
    pub fn reserve(
        &self,
        spec: &QuotaSpec,
        account: &str,
        op: &ResourceOp,
    ) -> Result<Reserved, StoreError> {
        let ResourceOp::Create { kind, name } = op else {
            return Ok(Reserved::Granted(None));
        };
        if !self.redis.health().is_up() {
            // The log's tail keeps the health current: fail at once, not after a timeout.
            return Err(StoreError::Down);
        }
        let (kind, name) = (*kind, name.clone().unwrap_or_default());
        let limit = spec.limit_of(kind);
        let rid = format!("{:016x}", rand::random::<u64>());
        let keys = vec![held_key(account, kind), flight_key(account, kind)];
        let args = vec![
            rid.clone(),
            (RESERVATION_LIFETIME.as_millis() as u64).to_string(),
            self.retention_ms.to_string(),
            limit.to_string(),
            name,
        ];
        let script = self.reserve.clone();
        let answer: (i64, i64, u64) =
            wait::blocking(&self.redis, move |conn: Conn| run_script(script, keys, args, conn))?;
        match answer {
            (1, 1, _) => Ok(Reserved::Granted(Some(rid))),
            (1, _, _) => Ok(Reserved::Granted(None)),
            (_, _, current) => Ok(Reserved::Refused(refusal(kind, limit, current))),
        }
    }

    /// Counts an operation the platform answered 2xx: the reservation `rid` becomes the
    /// resource `id` (a create), or the resource leaves the account (a delete).
    pub fn settle(&self, account: &str, op: &ResourceOp, rid: Option<String>, id: Option<&str>) {
        match op {
            ResourceOp::Create { kind, name } => {
                let id = name
                    .clone()
                    .or_else(|| id.map(str::to_string))
                    .unwrap_or_else(|| format!("\u{0}unknown-{}", rid.clone().unwrap_or_default()));
                let keys = vec![held_key(account, *kind), flight_key(account, *kind)];
                let args = vec![rid.unwrap_or_default(), id, self.retention_ms.to_string()];
                let script = self.settle.clone();
                self.outbox.push(move |conn| {
                    let (script, keys, args) = (script.clone(), keys.clone(), args.clone());
                    async move { run_script::<i64>(script, keys, args, conn).await.map(|_| ()) }
                });
            }
            ResourceOp::Delete { kind, id } => {
                let (key, id) = (held_key(account, *kind), id.clone());
                self.outbox.push(move |mut conn| {
                    let (key, id) = (key.clone(), id.clone());
                    async move {
                        let _: i64 =
                            redis::cmd("SREM").arg(key).arg(id).query_async(&mut conn).await?;
                        Ok(())
                    }
                });
            }
            _ => {}
        }
    }

    /// Checks and reserves one static-asset file of an upload fleet-wide (blocking,
    /// bounded): refused when it is new to the account and the account, with every
    /// upload in flight on any gateway, already holds `max_asset_files`.
    pub fn reserve_file(
        &self,
        spec: &QuotaSpec,
        account: &str,
        hash: &str,
    ) -> Result<Result<(), QuotaRefusal>, StoreError> {
        if !self.redis.health().is_up() {
            return Err(StoreError::Down);
        }
        let args = vec![
            "reserve".to_string(),
            (RESERVATION_LIFETIME.as_millis() as u64).to_string(),
            self.retention_ms.to_string(),
            spec.max_asset_files.to_string(),
            hash.to_string(),
        ];
        let (script, keys) = (self.files.clone(), files_keys(account));
        let answer: (i64, u64) =
            wait::blocking(&self.redis, move |conn| run_script(script, keys, args, conn))?;
        Ok(match answer {
            (1, _) => Ok(()),
            (_, current) => Err(QuotaRefusal {
                quota: "asset_files".into(),
                limit: spec.max_asset_files,
                current,
                message: format!(
                    "Quota \"asset_files\" reached: a temporary account may hold at most {} static-asset \
                     files (it has {current}, over all its uploads through any gateway). Upload fewer \
                     files or claim the account to lift temporary-account limits.",
                    spec.max_asset_files
                ),
            }),
        })
    }

    /// Ends the file reservations of an upload: held from now on when the platform
    /// answered 2xx (`files`: content hash and bytes), else given back.
    pub fn end_files(&self, account: &str, files: Vec<(String, u64)>, settled: bool) {
        if files.is_empty() {
            return;
        }
        let mut args = vec![
            if settled { "settle" } else { "release" }.to_string(),
            String::new(),
            self.retention_ms.to_string(),
            String::new(),
        ];
        for (hash, bytes) in files {
            args.push(hash);
            if settled {
                args.push(bytes.to_string());
            }
        }
        let (script, keys) = (self.files.clone(), files_keys(account));
        self.outbox.push(move |conn| {
            let (script, keys, args) = (script.clone(), keys.clone(), args.clone());
            async move { run_script::<(i64, u64)>(script, keys, args, conn).await.map(|_| ()) }
        });
    }

    /// Gives back the reservation `rid` of a create the platform did not answer 2xx.
    pub fn release(&self, account: &str, op: &ResourceOp, rid: String) {
        let ResourceOp::Create { kind, .. } = op else { return };
        let key = flight_key(account, *kind);
        self.outbox.push(move |mut conn| {
            let (key, rid) = (key.clone(), rid.clone());
            async move {
                let _: i64 = redis::cmd("ZREM").arg(key).arg(rid).query_async(&mut conn).await?;
                Ok(())
            }
        });
    }
}

/// Runs `script` with `keys` and `args` (owned, so the call can move to the store's
/// runtime).
async fn run_script<T: redis::FromRedisValue>(
    script: redis::Script,
    keys: Vec<String>,
    args: Vec<String>,
    mut conn: Conn,
) -> Result<T, StoreError> {
    let mut invocation = script.prepare_invoke();
    for key in &keys {
        invocation.key(key);
    }
    for arg in &args {
        invocation.arg(arg);
    }
    Ok(invocation.invoke_async(&mut conn).await?)
}

fn refusal(kind: ResourceKind, limit: u64, current: u64) -> QuotaRefusal {
    let quota = kind.quota_name();
    let what = kind.plural();
    QuotaRefusal {
        quota: quota.into(),
        limit,
        current,
        message: format!(
            "Quota \"{quota}\" reached: a temporary account may have at most {limit} {what} \
             (it has {current}, counting creates still in progress on any gateway). Delete one \
             or claim the account to lift temporary-account limits."
        ),
    }
}
