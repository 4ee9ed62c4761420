//! Agent archetypes: the kinds of client the gateway has to tell apart,
//! and how each behaves by default.
//!
//! Each archetype stands for people who deploy once and claim, buggy CI
//! loops (polite or rude about `Retry-After`), evaders rotating IPv6
//! addresses or header fingerprints, botnets spread over many networks, or
//! accounts that fill every quota. An archetype is plain data (a
//! [`Behaviour`] and an [`Addressing`] plan): the loop that acts on it is
//! in `agent`, the scenario's per-group overrides in `scenario`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The kinds of agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Archetype {
    /// Deploys once, honours `Retry-After`, claims its account.
    #[serde(rename = "well-behaved")]
    WellBehaved,
    /// A buggy loop that redeploys from a fresh account over and over but
    /// waits as long as it is told.
    #[serde(rename = "retry-loop-polite")]
    RetryLoopPolite,
    /// The same loop, ignoring `Retry-After`.
    #[serde(rename = "retry-loop-rude")]
    RetryLoopRude,
    /// Rotates its address inside one IPv6 /64 for every account.
    #[serde(rename = "rotate-ipv6-64")]
    RotateIpv6In64,
    /// Rotates its address across a whole IPv6 /48.
    #[serde(rename = "rotate-ipv6-48")]
    RotateIpv6In48,
    /// Keeps its address but changes User-Agent, headers and their order.
    #[serde(rename = "rotate-fingerprint")]
    RotateFingerprint,
    /// A swarm spread over many IPv4 /24s, one address per account.
    #[serde(rename = "distributed")]
    Distributed,
    /// One account that tries to fill every quota.
    #[serde(rename = "resource-hog")]
    ResourceHog,
}

impl Archetype {
    /// Every archetype, in report order.
    pub const ALL: [Archetype; 8] = [
        Archetype::WellBehaved,
        Archetype::RetryLoopPolite,
        Archetype::RetryLoopRude,
        Archetype::RotateIpv6In64,
        Archetype::RotateIpv6In48,
        Archetype::RotateFingerprint,
        Archetype::Distributed,
        Archetype::ResourceHog,
    ];

    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Archetype::WellBehaved => "well-behaved",
            Archetype::RetryLoopPolite => "retry-loop-polite",
            Archetype::RetryLoopRude => "retry-loop-rude",
            Archetype::RotateIpv6In64 => "rotate-ipv6-64",
            Archetype::RotateIpv6In48 => "rotate-ipv6-48",
            Archetype::RotateFingerprint => "rotate-fingerprint",
            Archetype::Distributed => "distributed",
            Archetype::ResourceHog => "resource-hog",
        }
    }

    /// The archetype's defaults.
    pub fn behaviour(self) -> Behaviour {
        let base = Behaviour {
            deploys: 1,
            max_runs: 6,
            max_requests: 200,
            honour_retry_after: true,
            claim: false,
            fresh_account_per_run: false,
            kv_namespaces: 0,
            d1_databases: 0,
            queues: 0,
            asset_files: 0,
            retry_delay: Duration::from_millis(50),
            addressing: Addressing::FixedV4,
            rotate_fingerprint: false,
        };
        let looping = Behaviour {
            deploys: 20,
            max_runs: 40,
            max_requests: 600,
            fresh_account_per_run: true,
            ..base.clone()
        };
        match self {
            Archetype::WellBehaved => Behaviour { claim: true, kv_namespaces: 1, ..base },
            Archetype::RetryLoopPolite => looping,
            Archetype::RetryLoopRude => Behaviour { honour_retry_after: false, ..looping },
            Archetype::RotateIpv6In64 => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV6In64,
                ..looping
            },
            Archetype::RotateIpv6In48 => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV6In48,
                ..looping
            },
            Archetype::RotateFingerprint => {
                Behaviour { honour_retry_after: false, rotate_fingerprint: true, ..looping }
            }
            Archetype::Distributed => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV4Subnets,
                ..looping
            },
            Archetype::ResourceHog => Behaviour {
                max_requests: 400,
                honour_retry_after: false,
                kv_namespaces: 12,
                d1_databases: 2,
                queues: 12,
                asset_files: 1100,
                ..base
            },
        }
    }
}

/// Where an agent's simulated addresses come from. The IPv4 pools are
/// ranges no real client uses (198.18.0.0/15 is reserved for benchmarks,
/// 100.64.0.0/10 is carrier-grade NAT); IPv6 uses 2001:db8::/32, the
/// documentation prefix. Only the `X-Forwarded-For` header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One IPv4 address per agent, each agent in its own /24.
    FixedV4,
    /// A new IPv4 address in a random /24 of 100.64.0.0/10 per account.
    RotateV4Subnets,
    /// A new interface id inside the agent's own /64 per account.
    RotateV6In64,
    /// A new /64 inside the agent's own /48 per account.
    RotateV6In48,
}

impl Addressing {
    /// The agent's address for its `run`-th account.
    pub fn address(self, agent: u64, rng: &mut StdRng) -> IpAddr {
        match self {
            Addressing::FixedV4 => {
                let subnet = agent % 512;
                let host = 10 + (agent / 512) % 240;
                IpAddr::V4(Ipv4Addr::new(
                    198,
                    18 + (subnet / 256) as u8,
                    (subnet % 256) as u8,
                    host as u8,
                ))
            }
            Addressing::RotateV4Subnets => IpAddr::V4(Ipv4Addr::new(
                100,
                rng.gen_range(64..128),
                rng.gen(),
                rng.gen_range(1..255),
            )),
            Addressing::RotateV6In64 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0x0db8,
                0x0064,
                (agent % 0x1_0000) as u16,
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
            )),
            Addressing::RotateV6In48 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0x0db8,
                0x4800 | (agent % 0x800) as u16,
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
                rng.gen(),
            )),
        }
    }

    /// Whether every account gets a new address.
    pub fn rotates(self) -> bool {
        self != Addressing::FixedV4
    }
}

/// How an agent behaves; archetype defaults with scenario overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Successful deploys wanted.
    pub deploys: u32,
    /// Deploy runs allowed, successful or not.
    pub max_runs: u32,
    /// Requests allowed in total.
    pub max_requests: u32,
    /// Wait as `Retry-After` says.
    pub honour_retry_after: bool,
    /// Claim accounts after deploying.
    pub claim: bool,
    /// New account for each run.
    pub fresh_account_per_run: bool,
    /// KV namespaces per account.
    pub kv_namespaces: u32,
    /// D1 databases per account.
    pub d1_databases: u32,
    /// Queues per account.
    pub queues: u32,
    /// Asset files per account.
    pub asset_files: u32,
    /// Delay between retries when not honouring `Retry-After`.
    pub retry_delay: Duration,
    /// Address plan.
    pub addressing: Addressing,
    /// Change the header fingerprint every run.
    pub rotate_fingerprint: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ipv6_rotation_stays_in_its_prefix() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let IpAddr::V6(a) = Addressing::RotateV6In64.address(7, &mut rng) else {
                panic!("not v6")
            };
            assert_eq!(&a.segments()[..4], &[0x2001, 0xdb8, 0x64, 7]);
            let IpAddr::V6(b) = Addressing::RotateV6In48.address(7, &mut rng) else {
                panic!("not v6")
            };
            assert_eq!(&b.segments()[..3], &[0x2001, 0xdb8, 0x4807]);
        }
    }

    #[test]
    fn distributed_spreads_over_many_24s() {
        let mut rng = StdRng::seed_from_u64(3);
        let nets: std::collections::HashSet<[u8; 3]> = (0..200)
            .map(|_| match Addressing::RotateV4Subnets.address(0, &mut rng) {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    [o[0], o[1], o[2]]
                }
                IpAddr::V6(_) => [0, 0, 0],
            })
            .collect();
        assert!(nets.len() > 150);
    }

    #[test]
    fn fixed_agents_get_distinct_24s() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = Addressing::FixedV4.address(1, &mut rng);
        let b = Addressing::FixedV4.address(2, &mut rng);
        assert_ne!(a, b);
    }
}
