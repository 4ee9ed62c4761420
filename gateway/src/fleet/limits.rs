//! Rate limits shared by the fleet: the policy's limits counted in Redis, one atomic
//! server-side script ([`gcra.lua`](./gcra.lua)) per decision.
//!
//! - *Keys*: `gw:rl:{K}:L`, `K` and `L` the first 16 hex digits of the SHA-256 of the
//!   bucket key (`ip=192.0.2.1`) and of the limit's stable id (`rule/key rate burst N`).
//!   The hash tag `{K}` is the bucket key alone, so on a Redis Cluster every limit of a
//!   decision keyed the same way (two rules both keyed on `ip`) lives in one slot. Limits
//!   keyed differently (`ip`, `prefix`, `global`) live in different slots: such a
//!   decision probes every slot's limits (one script per slot, in parallel) and, when
//!   all pass, charges the slots one after another in plan order (one script each),
//!   stopping at the first that refuses. Each bucket's check and charge stays atomic,
//!   so no bucket ever admits more than its limit; what a multi-slot decision concedes
//!   is the all-or-nothing charge across slots: a request that passed the probe can
//!   lose a race in a later slot after the earlier ones charged it, and is then
//!   refused with those charges kept (the local engine concedes the same under
//!   concurrency). On one Redis server every decision is one script.
//! - *Clock*: the script reads Redis's `TIME`; gateways' clocks never enter, so skew
//!   between gateways cannot give anyone extra requests. (In a Cluster a bucket always
//!   counts on the clock of the master holding its slot.)
//! - *Refusals stay off Redis*: a refused key is cached until its retry time
//!   ([`super::over_limit`]); decisions of concurrent requests are pipelined on one
//!   multiplexed connection per server.
//! - *Outages*: every call is bounded by [`RESPONSE_TIMEOUT`]; the caller applies each
//!   rule's `on_store_error` ([`crate::stage::fleet_limits`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy::{PlannedLimit, Verdict};
use sha2::{Digest, Sha256};

use super::conn::{Conn, Redis, RESPONSE_TIMEOUT};
use super::over_limit::OverLimit;
use crate::config::RedisTarget;

const GCRA: &str = include_str!("gcra.lua");

/// What a request waits for an answer beyond [`RESPONSE_TIMEOUT`] (the hop back from
/// the Redis runtime).
const ANSWER_SLACK: Duration = Duration::from_millis(50);

/// How often the store is pinged so its health is known without traffic (and a
/// reconnect after an outage is noticed).
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Counters of the shared limits, for `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Decisions refused from the over-limit cache, without asking Redis.
    pub cached_refusals: AtomicU64,
    /// Decisions the local limiter made because Redis did not answer (`open`).
    pub local_fallbacks: AtomicU64,
    /// Requests refused with 503 because Redis did not answer (`closed`).
    pub closed_refusals: AtomicU64,
    /// Script calls made, and their summed and largest latency in microseconds.
    pub script_calls: AtomicU64,
    /// Summed latency of the script calls, microseconds.
    pub latency_us_sum: AtomicU64,
    /// Largest latency of one script call, microseconds.
    pub latency_us_max: AtomicU64,
}

/// The fleet's shared rate limits.
pub struct FleetLimits {
    redis: Arc<Redis>,
    script: redis::Script,
    cache: OverLimit,
    stats: LimitStats,
}

impl FleetLimits {
    /// Shared limits on `redis`; starts the health probe on its runtime.
    pub fn new(redis: Arc<Redis>) -> Arc<Self> {
        let limits = Arc::new(FleetLimits {
            redis,
            script: redis::Script::new(GCRA),
            cache: OverLimit::default(),
            stats: LimitStats::default(),
        });
        let (conn, health) = (limits.redis.conn(), limits.redis.health().clone());
        limits.redis.runtime().spawn(async move {
            let mut tick = tokio::time::interval(HEALTH_INTERVAL);
            loop {
                tick.tick().await;
                let mut conn = conn.clone();
                let ping = redis::cmd("PING");
                let result = tokio::time::timeout(RESPONSE_TIMEOUT, async {
                    ping.query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
                })
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r);
                health.record(&result);
            }
        });
        limits
    }

    /// The store itself (its health and target).
    pub fn redis(&self) -> &Arc<Redis> {
        &self.redis
    }

    /// The counters.
    pub fn stats(&self) -> &LimitStats {
        &self.stats
    }

    /// Keys in the over-limit cache.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// The store's verdicts on `limits` (one each, in order), charging them when
    /// `charge` and no limit rule refuses. `Err` when Redis did not answer in time.
    pub async fn verdicts(
        &self,
        limits: &[PlannedLimit],
        charge: bool,
    ) -> Result<Vec<Verdict>, String> {
        let keys: Vec<String> = limits.iter().map(bucket_key).collect();
        let now = Instant::now();
        let cached: Vec<Option<Duration>> = limits
            .iter()
            .zip(&keys)
            .map(|(l, k)| if l.shadow { None } else { self.cache.refusing(k, now) })
            .collect();
        if cached.iter().any(Option::is_some) {
            self.stats.cached_refusals.fetch_add(1, Ordering::Relaxed);
            return Ok(cached
                .iter()
                .map(|c| c.map_or(Verdict::NotAsked, |wait| Verdict::Refuse { wait }))
                .collect());
        }
        let slots = self.slots(&keys);
        let verdicts = if slots.len() == 1 {
            self.run(limits, &keys, &slots[0], charge).await?
        } else {
            let probed = self.run_slots(limits, &keys, &slots, false).await?;
            let refused = limits
                .iter()
                .zip(&probed)
                .any(|(l, v)| !l.shadow && matches!(v, Verdict::Refuse { .. }));
            if refused || !charge {
                probed
            } else {
                // Charge only the rules whose limits all passed the probe.
                let failed: Vec<usize> = limits
                    .iter()
                    .zip(&probed)
                    .filter(|(_, v)| matches!(v, Verdict::Refuse { .. }))
                    .map(|(l, _)| l.group)
                    .collect();
                let keep: Vec<Vec<usize>> = slots
                    .iter()
                    .map(|s| {
                        s.iter().copied().filter(|i| !failed.contains(&limits[*i].group)).collect()
                    })
                    .filter(|s: &Vec<usize>| !s.is_empty())
                    .collect();
                // One slot after another, in plan order, stopping at the first that
                // refuses (a race lost since the probe): a slot is charged only for
                // requests every slot before it admitted, so a later slot never runs
                // dry on requests an earlier one refused.
                let mut verdicts = probed;
                for slot in &keep {
                    let charged = self.run(limits, &keys, slot, true).await?;
                    let lost = slot
                        .iter()
                        .zip(&charged)
                        .any(|(i, v)| !limits[*i].shadow && matches!(v, Verdict::Refuse { .. }));
                    for (i, v) in slot.iter().zip(charged) {
                        verdicts[*i] = v;
                    }
                    if lost {
                        break;
                    }
                }
                verdicts
            }
        };
        let now = Instant::now();
        for ((l, k), v) in limits.iter().zip(&keys).zip(&verdicts) {
            if let (false, Verdict::Refuse { wait }) = (l.shadow, v) {
                self.cache.remember(k, now, *wait);
            }
        }
        Ok(verdicts)
    }

    /// The limits' indices grouped by the Redis call that decides them: all in one on
    /// a single server, one per hash tag on a Cluster.
    fn slots(&self, keys: &[String]) -> Vec<Vec<usize>> {
        if matches!(self.redis.target(), RedisTarget::Single(_)) {
            return vec![(0..keys.len()).collect()];
        }
        let mut order: Vec<&str> = Vec::new();
        let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let tag = hash_tag(k);
            if !by_tag.contains_key(tag) {
                order.push(tag);
            }
            by_tag.entry(tag).or_default().push(i);
        }
        order.into_iter().filter_map(|t| by_tag.remove(t)).collect()
    }

    /// Runs the script for several slots at once (every call is sent before any
    /// answer is awaited); verdicts for every limit (those of no slot stay `NotAsked`).
    async fn run_slots(
        &self,
        limits: &[PlannedLimit],
        keys: &[String],
        slots: &[Vec<usize>],
        charge: bool,
    ) -> Result<Vec<Verdict>, String> {
        let calls: Vec<Call> = slots.iter().map(|s| self.send(limits, keys, s, charge)).collect();
        let mut out = vec![Verdict::NotAsked; limits.len()];
        for (slot, call) in slots.iter().zip(calls) {
            for (i, v) in slot.iter().zip(self.answer(limits, slot, call).await?) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    /// One script call for the limits `which`; their verdicts in that order.
    async fn run(
        &self,
        limits: &[PlannedLimit],
        keys: &[String],
        which: &[usize],
        charge: bool,
    ) -> Result<Vec<Verdict>, String> {
        let call = self.send(limits, keys, which, charge);
        self.answer(limits, which, call).await
    }

    /// Starts one script call on the Redis runtime, bounded by [`RESPONSE_TIMEOUT`].
    fn send(
        &self,
        limits: &[PlannedLimit],
        keys: &[String],
        which: &[usize],
        charge: bool,
    ) -> Call {
        let mut args: Vec<String> = Vec::with_capacity(1 + which.len() * 4);
        args.push(if charge { "1" } else { "0" }.to_string());
        let mut bucket_keys = Vec::with_capacity(which.len());
        for &i in which {
            let l = &limits[i];
            let kind = if l.shadow { 's' } else { 'l' };
            bucket_keys.push(keys[i].clone());
            args.push((l.interval().as_nanos() as u64).to_string());
            args.push(l.burst.to_string());
            args.push(l.cost.to_string());
            args.push(format!("{kind}{}", l.group));
        }
        let script = self.script.clone();
        let mut conn: Conn = self.redis.conn();
        let started = Instant::now();
        let task = self.redis.runtime().spawn(async move {
            let mut invocation = script.prepare_invoke();
            invocation.key(bucket_keys).arg(args);
            tokio::time::timeout(RESPONSE_TIMEOUT, invocation.invoke_async::<Vec<i64>>(&mut conn))
                .await
                .map_err(|_| format!("no answer within {} ms", RESPONSE_TIMEOUT.as_millis()))?
                .map_err(|e| e.to_string())
        });
        Call { task, started }
    }

    /// Awaits one call, records its health and latency, and reads its verdicts.
    async fn answer(
        &self,
        limits: &[PlannedLimit],
        which: &[usize],
        call: Call,
    ) -> Result<Vec<Verdict>, String> {
        // Bounded here too: a starved Redis runtime must not hold the request either.
        let result = tokio::time::timeout(RESPONSE_TIMEOUT + ANSWER_SLACK, call.task)
            .await
            .map_err(|_| format!("no answer within {} ms", RESPONSE_TIMEOUT.as_millis()))
            .and_then(|joined| joined.map_err(|e| format!("Redis task failed: {e}")))
            .and_then(|r| r);
        let micros = call.started.elapsed().as_micros() as u64;
        self.redis.health().record(&result);
        self.stats.script_calls.fetch_add(1, Ordering::Relaxed);
        self.stats.latency_us_sum.fetch_add(micros, Ordering::Relaxed);
        self.stats.latency_us_max.fetch_max(micros, Ordering::Relaxed);
        let raw = result?;
        if raw.len() != which.len() * 2 {
            return Err(format!("the rate-limit script answered {} values", raw.len()));
        }
        Ok(which
            .iter()
            .zip(raw.chunks(2))
            .map(|(&i, pair)| verdict(&limits[i], pair[0], pair[1]))
            .collect())
    }
}

/// A script call in flight on the Redis runtime.
struct Call {
    task: tokio::task::JoinHandle<Result<Vec<i64>, String>>,
    started: Instant,
}

/// One limit's verdict from the script's two integers.
fn verdict(l: &PlannedLimit, status: i64, value: i64) -> Verdict {
    let value = u64::try_from(value).unwrap_or(0);
    if status == 1 {
        let remaining = u32::try_from(value).unwrap_or(u32::MAX).min(l.burst);
        Verdict::Pass { remaining, reset: l.interval() * (l.burst - remaining) }
    } else {
        Verdict::Refuse { wait: Duration::from_micros(value) }
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The Redis key of a limit's bucket: `gw:rl:{hash of the key}:hash of the limit id`.
pub fn bucket_key(l: &PlannedLimit) -> String {
    format!("gw:rl:{{{}}}:{}", short_hash(&l.key), short_hash(&l.id))
}

/// The hash tag of a bucket key (between its braces).
fn hash_tag(key: &str) -> &str {
    let start = key.find('{').map_or(0, |i| i + 1);
    let end = key[start..].find('}').map_or(key.len(), |i| start + i);
    &key[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(src: &str, path: &str) -> Vec<PlannedLimit> {
        let policy = policy::compile_str("p.toml", src).expect("policy");
        let engine = policy::Engine::new(policy);
        let current = engine.current_policy();
        let req = policy::Request {
            method: "POST",
            path,
            peer: "192.0.2.1".parse().expect("ip"),
            http_version: "HTTP/1.1",
            headers: &[],
            tls_fp: None,
            account: None,
        };
        let id = policy::Identity::derive(&current, req);
        engine.plan(&id).limits().to_vec()
    }

    #[test]
    fn limits_keyed_alike_share_a_slot_and_others_do_not() {
        let limits = planned(
            r#"version = 1
[[rule]]
name = "a"
action = "limit"
limits = [{ key = "ip", rate = "5/hour" }, { key = "global", rate = "50/hour" }]
[[rule]]
name = "b"
action = "limit"
limits = [{ key = "ip", rate = "9/hour" }]
"#,
            "/client/v4/provisioning/previews",
        );
        let keys: Vec<String> = limits.iter().map(bucket_key).collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k.starts_with("gw:rl:{")), "{keys:?}");
        assert_eq!(hash_tag(&keys[0]), hash_tag(&keys[2]), "both ip limits: one slot");
        assert_ne!(hash_tag(&keys[0]), hash_tag(&keys[1]), "ip and global: two slots");
        assert_ne!(keys[0], keys[2], "two limits, two buckets");
        let again: Vec<String> = limits.iter().map(bucket_key).collect();
        assert_eq!(keys, again, "every gateway names the same buckets");
    }

    #[test]
    fn verdicts_read_the_scripts_integers() {
        let limits = planned(
            "version = 1\n[[rule]]\nname = \"a\"\naction = \"limit\"\nlimits = [{ key = \"ip\", rate = \"6/hour\", burst = 3 }]\n",
            "/",
        );
        let l = &limits[0];
        assert_eq!(
            verdict(l, 1, 2),
            Verdict::Pass { remaining: 2, reset: Duration::from_secs(600) }
        );
        assert_eq!(verdict(l, 0, 1_500_000), Verdict::Refuse { wait: Duration::from_millis(1500) });
        assert_eq!(
            verdict(l, 1, -4),
            Verdict::Pass { remaining: 0, reset: Duration::from_secs(1800) }
        );
    }
}
