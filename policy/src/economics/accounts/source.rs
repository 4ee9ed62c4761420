//! Source keys: what an account is attributed to (address, networks, fingerprints).

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The kinds of source key an account is attributed to.
///
/// Prefix lengths are fixed (IPv4 /24, /16; IPv6 /64, /56, /48, /32) because those are
/// the allocation sizes that matter: one IPv4 customer rarely holds more than a /24, an
/// IPv6 end site gets a /64 to /48, and counting at every size an attacker can cheaply
/// rotate within closes the "new address per account" hole. The IPv4 /16 and IPv6 /32
/// are one level up: an ISP region, a cloud provider's block or an RIR allocation to
/// one ISP, where a client rotating through /24s (or /48s) still stays inside one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// The exact client address.
    Ip,
    /// The client's IPv4 /24.
    Ipv4_24,
    /// The client's IPv4 /16.
    Ipv4_16,
    /// The client's IPv6 /64.
    Ipv6_64,
    /// The client's IPv6 /56.
    Ipv6_56,
    /// The client's IPv6 /48.
    Ipv6_48,
    /// The client's IPv6 /32.
    Ipv6_32,
    /// The gateway's HTTP fingerprint of the client.
    HttpFp,
    /// The TLS (JA4) fingerprint of the client.
    TlsFp,
}

impl SourceKind {
    /// Every kind, in the order they are written in docs.
    pub const ALL: [SourceKind; 9] = [
        SourceKind::Ip,
        SourceKind::Ipv4_24,
        SourceKind::Ipv4_16,
        SourceKind::Ipv6_64,
        SourceKind::Ipv6_56,
        SourceKind::Ipv6_48,
        SourceKind::Ipv6_32,
        SourceKind::HttpFp,
        SourceKind::TlsFp,
    ];

    /// Name as written in a policy: `ip`, `ipv4/24`, `ipv4/16`, `ipv6/64`, `ipv6/56`,
    /// `ipv6/48`, `ipv6/32`, `http_fp`, `tls_fp`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Ip => "ip",
            SourceKind::Ipv4_24 => "ipv4/24",
            SourceKind::Ipv4_16 => "ipv4/16",
            SourceKind::Ipv6_64 => "ipv6/64",
            SourceKind::Ipv6_56 => "ipv6/56",
            SourceKind::Ipv6_48 => "ipv6/48",
            SourceKind::Ipv6_32 => "ipv6/32",
            SourceKind::HttpFp => "http_fp",
            SourceKind::TlsFp => "tls_fp",
        }
    }

    /// Parses a name written in a policy.
    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source key: an address, a network, or a fingerprint.
///
/// Written (and serialized) as `kind:value`, e.g. `ip:192.0.2.7`,
/// `ipv6/48:2001:db8::/48`, `http_fp:hf1_11_...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    /// An exact address.
    Ip(IpAddr),
    /// A network (always stored with host bits cleared).
    Prefix(IpNetwork),
    /// An HTTP fingerprint.
    HttpFp(String),
    /// A TLS fingerprint.
    TlsFp(String),
    /// Every source together: the platform-wide total, for budgets that hold a swarm
    /// spread too thin for any one key to show (`[[budgets.global]]`). Never one of a
    /// source's own [`SourceKeys::keys`].
    Global,
}

impl SourceKey {
    /// The kind of this key; `None` for a prefix length the gateway does not track.
    pub fn kind(&self) -> Option<SourceKind> {
        Some(match self {
            SourceKey::Ip(_) => SourceKind::Ip,
            SourceKey::Prefix(IpNetwork::V4(n)) => match n.prefix() {
                24 => SourceKind::Ipv4_24,
                16 => SourceKind::Ipv4_16,
                _ => return None,
            },
            SourceKey::Prefix(IpNetwork::V6(n)) => match n.prefix() {
                64 => SourceKind::Ipv6_64,
                56 => SourceKind::Ipv6_56,
                48 => SourceKind::Ipv6_48,
                32 => SourceKind::Ipv6_32,
                _ => return None,
            },
            SourceKey::HttpFp(_) => SourceKind::HttpFp,
            SourceKey::TlsFp(_) => SourceKind::TlsFp,
            SourceKey::Global => return None,
        })
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::Ip(ip) => write!(f, "ip:{ip}"),
            SourceKey::Prefix(n) => {
                let family = if n.is_ipv4() { "ipv4" } else { "ipv6" };
                write!(f, "{family}/{}:{n}", n.prefix())
            }
            SourceKey::HttpFp(s) => write!(f, "http_fp:{s}"),
            SourceKey::TlsFp(s) => write!(f, "tls_fp:{s}"),
            SourceKey::Global => f.write_str("global"),
        }
    }
}

impl FromStr for SourceKey {
    type Err = String;

    /// Parses `kind:value` as written by `Display` (so the CLI can take keys back).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "global" {
            return Ok(SourceKey::Global);
        }
        let (kind, value) =
            s.split_once(':').ok_or_else(|| format!("source key \"{s}\" is not kind:value"))?;
        match kind {
            "ip" => value
                .parse::<IpAddr>()
                .map(SourceKey::Ip)
                .map_err(|e| format!("source key \"{s}\": {e}")),
            "http_fp" => Ok(SourceKey::HttpFp(value.to_string())),
            "tls_fp" => Ok(SourceKey::TlsFp(value.to_string())),
            _ if kind.starts_with("ipv4/") || kind.starts_with("ipv6/") => {
                let net: IpNetwork =
                    value.parse().map_err(|e| format!("source key \"{s}\": {e}"))?;
                let declared = &kind[5..];
                if declared != net.prefix().to_string()
                    || (kind.starts_with("ipv4") != net.is_ipv4())
                {
                    return Err(format!(
                        "source key \"{s}\": kind {kind} does not match network {net}"
                    ));
                }
                Ok(SourceKey::Prefix(normalise(net)))
            }
            _ => Err(format!("source key \"{s}\": unknown kind \"{kind}\"")),
        }
    }
}

impl Serialize for SourceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Clears host bits so `2001:db8::1/48` and `2001:db8::/48` are the same key.
fn normalise(net: IpNetwork) -> IpNetwork {
    match net {
        IpNetwork::V4(n) => Ipv4Network::new(n.network(), n.prefix()).map_or(net, IpNetwork::V4),
        IpNetwork::V6(n) => Ipv6Network::new(n.network(), n.prefix()).map_or(net, IpNetwork::V6),
    }
}

/// Serializes networks as their `a.b.c.d/n` strings.
mod net_strings {
    use ipnetwork::IpNetwork;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(nets: &[IpNetwork], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(|n| n.to_string()))
    }
}

/// Everything an account is attributed to: the creating address, its networks, and the
/// client's fingerprints when known.
///
/// Read back (from the accounts journal), the networks are derived from the address
/// again, so a record written before a network size was tracked counts under it too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "StoredSourceKeys")]
pub struct SourceKeys {
    /// The creating client's address.
    pub ip: IpAddr,
    /// Its networks: the IPv4 /24 and /16, or the IPv6 /64, /56, /48 and /32 (host bits
    /// cleared).
    #[serde(serialize_with = "net_strings::serialize")]
    pub prefixes: Vec<IpNetwork>,
    /// HTTP fingerprint, when computed.
    pub http_fp: Option<String>,
    /// TLS fingerprint, when the gateway or a trusted proxy supplied one.
    pub tls_fp: Option<String>,
}

/// [`SourceKeys`] as stored; the networks written are ignored in favour of the ones
/// derived from the address now.
#[derive(Deserialize)]
struct StoredSourceKeys {
    ip: IpAddr,
    http_fp: Option<String>,
    tls_fp: Option<String>,
}

impl From<StoredSourceKeys> for SourceKeys {
    fn from(s: StoredSourceKeys) -> Self {
        SourceKeys::new(s.ip, s.http_fp, s.tls_fp)
    }
}

impl SourceKeys {
    /// Derives the prefixes from `ip` (IPv4 /24, /16; IPv6 /64, /56, /48, /32).
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports
    /// for IPv4 clients) is treated as IPv4, otherwise every IPv4 client of such a
    /// listener would share one IPv6 /48.
    pub fn new(ip: IpAddr, http_fp: Option<String>, tls_fp: Option<String>) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        let prefixes = match ip {
            IpAddr::V4(v4) => [24u8, 16]
                .into_iter()
                .filter_map(|len| Ipv4Network::new(v4, len).ok())
                .map(|n| normalise(IpNetwork::V4(n)))
                .collect(),
            IpAddr::V6(v6) => [64u8, 56, 48, 32]
                .into_iter()
                .filter_map(|len| Ipv6Network::new(v6, len).ok())
                .map(|n| normalise(IpNetwork::V6(n)))
                .collect(),
        };
        SourceKeys {
            ip,
            prefixes,
            http_fp: http_fp.filter(|s| !s.is_empty()),
            tls_fp: tls_fp.filter(|s| !s.is_empty()),
        }
    }

    /// Every key of this source: the address, each prefix, each fingerprint present.
    pub fn keys(&self) -> Vec<SourceKey> {
        let mut out = Vec::with_capacity(2 + self.prefixes.len() + 2);
        out.push(SourceKey::Ip(self.ip));
        out.extend(self.prefixes.iter().map(|n| SourceKey::Prefix(normalise(*n))));
        if let Some(fp) = &self.http_fp {
            out.push(SourceKey::HttpFp(fp.clone()));
        }
        if let Some(fp) = &self.tls_fp {
            out.push(SourceKey::TlsFp(fp.clone()));
        }
        out
    }

    /// The key of one kind, if this source has it (an IPv4 source has no IPv6 /48).
    pub fn key_of(&self, kind: SourceKind) -> Option<SourceKey> {
        self.keys().into_iter().find(|k| k.kind() == Some(kind))
    }
}

// ---------------------------------------------------------------------------------------
