//! What a limit counts by: `ip`, `ipv6/64`, `http_fp`, `account`, ... combined with `+`.
//!
//! Cross-family rule (the safe choice): a key written for one address family applied
//! to a client of the other family falls back to that family's `[prefixes]` default
//! (`ipv6/64` on an IPv4 client counts per IPv4 /24 by default). Skipping instead would
//! let every IPv4 client walk past an IPv6-only limit.

use crate::lang::route::RouteClass;
use ipnetwork::{Ipv4Network, Ipv6Network};
use std::fmt::Write as _;
use std::net::IpAddr;

/// One component of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client address.
    Ip,
    /// The client's network at the `[prefixes]` default length for its family.
    Prefix,
    /// IPv4 network of this length (IPv6 clients: the `[prefixes].ipv6` default).
    Ipv4(u8),
    /// IPv6 network of this length (IPv4 clients: the `[prefixes].ipv4` default).
    Ipv6(u8),
    /// Our HTTP fingerprint (see FINGERPRINT.md).
    HttpFp,
    /// TLS (JA4) fingerprint from the gateway or a trusted proxy header; may be absent.
    TlsFp,
    /// Account key from the gateway (bearer token); may be absent.
    Account,
    /// The route class.
    Route,
    /// One key for everybody.
    Global,
}

/// The kind names a policy may write (prefix kinds take `/N`).
pub(crate) const KIND_NAMES: [&str; 9] =
    ["ip", "prefix", "ipv4/N", "ipv6/N", "http_fp", "tls_fp", "account", "route", "global"];

/// What a limit does when part of its key is absent for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    /// Count by the client IP in place of the absent part (default: never exempts anybody).
    Ip,
    /// The limit does not apply to this request.
    Skip,
    /// All requests lacking the part share one bucket (per the rest of the key).
    Shared,
}

impl Missing {
    pub(crate) const NAMES: [&'static str; 3] = ["ip", "skip", "shared"];

    pub(crate) fn parse(s: &str) -> Option<Missing> {
        match s {
            "ip" => Some(Missing::Ip),
            "skip" => Some(Missing::Skip),
            "shared" => Some(Missing::Shared),
            _ => None,
        }
    }

    /// Name as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Ip => "ip",
            Missing::Skip => "skip",
            Missing::Shared => "shared",
        }
    }
}

/// A parsed key such as `ipv6/48+http_fp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// Components in written order.
    pub parts: Vec<KeyPart>,
    /// As written (normalised spacing), used for identity across reloads and in output.
    pub text: String,
}

/// Per-family defaults from `[prefixes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefixes {
    pub v4: u8,
    pub v6: u8,
}

/// Everything a key can be derived from, computed once per request.
pub(crate) struct KeyInputs<'a> {
    pub ip: IpAddr,
    pub route: RouteClass,
    pub http_fp: &'a str,
    pub tls_fp: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl KeySpec {
    /// Parses `a+b+...`; the error text is ready to show.
    pub(crate) fn parse(text: &str) -> Result<KeySpec, String> {
        let mut parts = Vec::new();
        for raw in text.split('+') {
            let p = raw.trim();
            let part = match p {
                "ip" => KeyPart::Ip,
                "prefix" => KeyPart::Prefix,
                "http_fp" => KeyPart::HttpFp,
                "tls_fp" => KeyPart::TlsFp,
                "account" => KeyPart::Account,
                "route" => KeyPart::Route,
                "global" => KeyPart::Global,
                _ => {
                    if let Some((fam, len)) = p.split_once('/') {
                        let max = match fam {
                            "ipv4" => 32,
                            "ipv6" => 128,
                            _ => return Err(unknown_kind(p)),
                        };
                        let n: u8 = len.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(
                            || {
                                format!(
                                    "bad prefix length \"{p}\": {fam} prefixes are 1 to {max} bits"
                                )
                            },
                        )?;
                        if fam == "ipv4" {
                            KeyPart::Ipv4(n)
                        } else {
                            KeyPart::Ipv6(n)
                        }
                    } else {
                        return Err(unknown_kind(p));
                    }
                }
            };
            if parts.contains(&part) {
                return Err(format!("key \"{text}\" names \"{p}\" twice"));
            }
            parts.push(part);
        }
        let text = parts.iter().map(|p| part_name(*p)).collect::<Vec<_>>().join("+");
        Ok(KeySpec { parts, text })
    }

    /// The bucket key for a request, or `None` when the limit does not apply (absent
    /// part with `missing = "skip"`).
    pub(crate) fn derive(
        &self,
        inp: &KeyInputs<'_>,
        pre: Prefixes,
        missing: Missing,
    ) -> Option<String> {
        let mut out = String::with_capacity(48);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            let absent = |out: &mut String, name: &str| -> Option<()> {
                match missing {
                    Missing::Skip => None,
                    Missing::Shared => {
                        let _ = write!(out, "{name}=-");
                        Some(())
                    }
                    Missing::Ip => {
                        let _ = write!(out, "{name}=-ip:{}", inp.ip);
                        Some(())
                    }
                }
            };
            match part {
                KeyPart::Ip => {
                    let _ = write!(out, "ip={}", inp.ip);
                }
                KeyPart::Prefix => net(&mut out, inp.ip, pre.v4, pre.v6),
                KeyPart::Ipv4(n) => net(&mut out, inp.ip, *n, pre.v6),
                KeyPart::Ipv6(n) => net(&mut out, inp.ip, pre.v4, *n),
                KeyPart::HttpFp => {
                    let _ = write!(out, "http_fp={}", inp.http_fp);
                }
                KeyPart::TlsFp => match inp.tls_fp {
                    Some(fp) => {
                        let _ = write!(out, "tls_fp={fp}");
                    }
                    None => absent(&mut out, "tls_fp")?,
                },
                KeyPart::Account => match inp.account {
                    Some(a) => {
                        let _ = write!(out, "account={a}");
                    }
                    None => absent(&mut out, "account")?,
                },
                KeyPart::Route => {
                    let _ = write!(out, "route={}", inp.route);
                }
                KeyPart::Global => out.push_str("global"),
            }
        }
        Some(out)
    }

    /// Words for user-facing messages, e.g. "your network (IPv6 /64)".
    pub(crate) fn describe(&self, ip: IpAddr, pre: Prefixes) -> String {
        let words: Vec<String> = self
            .parts
            .iter()
            .map(|p| match (p, ip) {
                (KeyPart::Ip, _) => "your IP address".to_string(),
                (KeyPart::Prefix | KeyPart::Ipv6(_), IpAddr::V4(_)) => {
                    format!("your network (IPv4 /{})", pre.v4)
                }
                (KeyPart::Prefix | KeyPart::Ipv4(_), IpAddr::V6(_)) => {
                    format!("your network (IPv6 /{})", pre.v6)
                }
                (KeyPart::Ipv4(n), IpAddr::V4(_)) => format!("your network (IPv4 /{n})"),
                (KeyPart::Ipv6(n), IpAddr::V6(_)) => format!("your network (IPv6 /{n})"),
                (KeyPart::HttpFp, _) => "your HTTP client".to_string(),
                (KeyPart::TlsFp, _) => "your TLS client".to_string(),
                (KeyPart::Account, _) => "your account".to_string(),
                (KeyPart::Route, _) => "this kind of request".to_string(),
                (KeyPart::Global, _) => "all users together".to_string(),
            })
            .collect();
        words.join(" and ")
    }
}

fn unknown_kind(p: &str) -> String {
    let mut cands: Vec<&str> = KIND_NAMES.to_vec();
    cands.extend(["ipv4/24", "ipv6/64", "ipv6/48"]);
    format!(
        "unknown key kind \"{p}\", expected one of {}{}",
        crate::lang::error::one_of(KIND_NAMES),
        crate::lang::error::did_you_mean(p, cands)
    )
}

fn part_name(p: KeyPart) -> String {
    match p {
        KeyPart::Ip => "ip".into(),
        KeyPart::Prefix => "prefix".into(),
        KeyPart::Ipv4(n) => format!("ipv4/{n}"),
        KeyPart::Ipv6(n) => format!("ipv6/{n}"),
        KeyPart::HttpFp => "http_fp".into(),
        KeyPart::TlsFp => "tls_fp".into(),
        KeyPart::Account => "account".into(),
        KeyPart::Route => "route".into(),
        KeyPart::Global => "global".into(),
    }
}

/// Writes `ipv4/N=net` or `ipv6/N=net` for the client's own family.
fn net(out: &mut String, ip: IpAddr, v4: u8, v6: u8) {
    match ip {
        IpAddr::V4(a) => match Ipv4Network::new(a, v4) {
            Ok(n) => {
                let _ = write!(out, "ipv4={}/{v4}", n.network());
            }
            Err(_) => {
                let _ = write!(out, "ip={a}");
            }
        },
        IpAddr::V6(a) => match Ipv6Network::new(a, v6) {
            Ok(n) => {
                let _ = write!(out, "ipv6={}/{v6}", n.network());
            }
            Err(_) => {
                let _ = write!(out, "ip={a}");
            }
        },
    }
}
