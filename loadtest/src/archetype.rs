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
    /// Rotates through the /24s (and addresses) of one IPv4 /16, a new
    /// address for every account.
    #[serde(rename = "rotate-ipv4-16")]
    RotateIpv4In16,
    /// Many agents spread over about 100 IPv4 /16s, each creating accounts
    /// at a modest rate: together they saturate account creation.
    #[serde(rename = "botnet")]
    Botnet,
    /// Reads and writes with random bearer tokens from one /24, hoping to
    /// get past per-account limits or crowd out honest newcomers.
    #[serde(rename = "token-spray")]
    TokenSpray,
    /// Tries to get an account for less than the policy's proof-of-work:
    /// challenges moved between addresses, refused bodies resent, reused
    /// checkpoint tails.
    #[serde(rename = "pow-replay")]
    PowReplay,
    /// Tries to end up above the quotas: concurrent creates, oversized
    /// answers, lying asset manifests, oversized chunked bodies, repeated
    /// `Content-Length`.
    #[serde(rename = "quota-evader")]
    QuotaEvader,
}

impl Archetype {
    /// Every archetype, in report order.
    pub const ALL: [Archetype; 13] = [
        Archetype::WellBehaved,
        Archetype::RetryLoopPolite,
        Archetype::RetryLoopRude,
        Archetype::RotateIpv6In64,
        Archetype::RotateIpv6In48,
        Archetype::RotateFingerprint,
        Archetype::Distributed,
        Archetype::ResourceHog,
        Archetype::RotateIpv4In16,
        Archetype::Botnet,
        Archetype::TokenSpray,
        Archetype::PowReplay,
        Archetype::QuotaEvader,
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
            Archetype::RotateIpv4In16 => "rotate-ipv4-16",
            Archetype::Botnet => "botnet",
            Archetype::TokenSpray => "token-spray",
            Archetype::PowReplay => "pow-replay",
            Archetype::QuotaEvader => "quota-evader",
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
            special: Special::None,
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
            Archetype::RotateIpv4In16 => Behaviour {
                honour_retry_after: false,
                addressing: Addressing::RotateV4In16,
                ..looping
            },
            // Modest per agent (one try every two seconds at most), so no
            // single address or network stands out; the swarm is the load.
            Archetype::Botnet => Behaviour {
                deploys: 6,
                honour_retry_after: false,
                retry_delay: Duration::from_millis(2000),
                addressing: Addressing::Botnet16,
                ..looping
            },
            Archetype::TokenSpray => Behaviour {
                max_requests: 500,
                honour_retry_after: false,
                retry_delay: Duration::from_millis(5),
                addressing: Addressing::Spray24,
                special: Special::TokenSpray,
                ..base
            },
            Archetype::PowReplay => Behaviour {
                max_requests: 300,
                honour_retry_after: false,
                special: Special::PowReplay,
                ..base
            },
            Archetype::QuotaEvader => Behaviour {
                max_requests: 400,
                honour_retry_after: false,
                special: Special::QuotaEvader,
                ..base
            },
        }
    }
}

/// Attacks whose agents do not run the deploy loop but a loop of their
/// own (in `attack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// The ordinary deploy loop.
    None,
    /// Requests with random bearer tokens, and an honest probe.
    TokenSpray,
    /// Proof-of-work shortcuts.
    PowReplay,
    /// Quota evasion on one account.
    QuotaEvader,
}

/// Where an agent's simulated addresses come from. The IPv4 pools are
/// ranges no real client uses (240.0.0.0/4 is reserved, 100.64.0.0/10 is
/// carrier-grade NAT, 10.0.0.0/8 and 172.16.0.0/12 are private); IPv6 uses
/// 2001:db8::/32, the documentation prefix. Only the `X-Forwarded-For`
/// header carries them. The pools do not overlap, so an attack confined to
/// its networks never shares a /16 with the agents of another group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One IPv4 address per agent, each agent in a /16 of its own (up to
    /// 3,840 agents; then /24s of their own), as people deploying from
    /// unrelated home and office networks are.
    FixedV4,
    /// A new IPv4 address in a random /24 of 100.64.0.0/10 per account.
    RotateV4Subnets,
    /// A new interface id inside the agent's own /64 per account.
    RotateV6In64,
    /// A new /64 inside the agent's own /48 per account.
    RotateV6In48,
    /// A new /24 and address inside 172.20.0.0/16 per account (every agent
    /// of the group shares the /16).
    RotateV4In16,
    /// The agent's own /16 among 10.0.0.0/16 .. 10.99.0.0/16, a new /24
    /// and address in it per account.
    Botnet16,
    /// One address per agent inside 172.31.7.0/24.
    Spray24,
}

/// The /16 every `rotate-ipv4-16` agent rotates in.
pub const ROTATE16_NET: [u8; 2] = [172, 20];
/// The /16s a botnet spreads over (10.0/16 .. 10.99/16).
pub const BOTNET_NETS: u64 = 100;
/// The /24 token sprayers send from.
pub const SPRAY_NET: [u8; 3] = [172, 31, 7];

/// The /24 of an IPv4 address as `a.b.c.0/24`; IPv6 addresses have none.
pub fn ipv4_24(addr: IpAddr) -> Option<String> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        IpAddr::V6(_) => None,
    }
}

impl Addressing {
    /// The agent's address for its `run`-th account.
    pub fn address(self, agent: u64, rng: &mut StdRng) -> IpAddr {
        match self {
            Addressing::FixedV4 => {
                let net16 = agent % 3840;
                let third = (agent / 3840) % 256;
                IpAddr::V4(Ipv4Addr::new(
                    240 + (net16 / 256) as u8,
                    (net16 % 256) as u8,
                    third as u8,
                    10,
                ))
            }
            Addressing::RotateV4In16 => IpAddr::V4(Ipv4Addr::new(
                ROTATE16_NET[0],
                ROTATE16_NET[1],
                rng.gen(),
                rng.gen_range(1..255),
            )),
            Addressing::Botnet16 => IpAddr::V4(Ipv4Addr::new(
                10,
                (agent % BOTNET_NETS) as u8,
                rng.gen(),
                rng.gen_range(1..255),
            )),
            Addressing::Spray24 => IpAddr::V4(Ipv4Addr::new(
                SPRAY_NET[0],
                SPRAY_NET[1],
                SPRAY_NET[2],
                10 + (agent % 200) as u8,
            )),
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
        !matches!(self, Addressing::FixedV4 | Addressing::Spray24)
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
    /// An attack with a loop of its own instead of the deploy loop.
    pub special: Special,
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
        let o = |a: IpAddr| match a {
            IpAddr::V4(v) => [v.octets()[0], v.octets()[1]],
            IpAddr::V6(_) => [0, 0],
        };
        assert_ne!(o(a), o(b), "fixed agents each get a /16");
    }

    #[test]
    fn attack_pools_stay_in_their_networks() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut nets24 = std::collections::HashSet::new();
        let mut nets16 = std::collections::HashSet::new();
        for i in 0..400 {
            let IpAddr::V4(a) = Addressing::RotateV4In16.address(i, &mut rng) else {
                panic!("not v4")
            };
            assert_eq!(&a.octets()[..2], &ROTATE16_NET);
            nets24.insert(ipv4_24(IpAddr::V4(a)));
            let IpAddr::V4(b) = Addressing::Botnet16.address(i, &mut rng) else { panic!("not v4") };
            assert_eq!(b.octets()[0], 10);
            nets16.insert(b.octets()[1]);
            let IpAddr::V4(c) = Addressing::Spray24.address(i, &mut rng) else { panic!("not v4") };
            assert_eq!(&c.octets()[..3], &SPRAY_NET);
            let IpAddr::V4(f) = Addressing::FixedV4.address(i, &mut rng) else { panic!("not v4") };
            assert!(f.octets()[0] >= 240, "honest pool is 240.0.0.0/4: {f}");
        }
        assert!(nets24.len() > 150, "rotates over many /24s");
        assert_eq!(nets16.len() as u64, BOTNET_NETS);
        assert!(!Addressing::Spray24.rotates());
    }
}
