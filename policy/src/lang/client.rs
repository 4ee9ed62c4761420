//! Who the client is: address behind trusted proxies, and headers to believe.
//!
//! Forwarding headers are only believed from configured proxies; from anybody else they
//! are attacker-controlled, so they are ignored rather than trusted or rejected.

use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Where the client address comes from when the peer is a trusted proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpHeader {
    /// `X-Forwarded-For` style: comma-separated, may repeat; each proxy appends.
    List(String),
    /// A single-value header such as `cf-connecting-ip`.
    Single(String),
}

/// Compiled `[client]`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) trusted: Vec<IpNetwork>,
    pub(crate) ip_header: IpHeader,
    pub(crate) tls_fp_header: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            trusted: Vec::new(),
            ip_header: IpHeader::List("x-forwarded-for".into()),
            tls_fp_header: None,
        }
    }
}

impl ClientConfig {
    /// Adds 127.0.0.0/8 and ::1 to the trusted proxies (see `Policy::trust_loopback`).
    pub(crate) fn trust_loopback(&mut self) {
        for net in ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse::<IpNetwork>().ok()) {
            if !self.trusted.contains(&net) {
                self.trusted.push(net);
            }
        }
    }

    /// Is this address one of our proxies?
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// Name of the header carrying the client address (lowercase).
    pub(crate) fn ip_header_name(&self) -> &str {
        match &self.ip_header {
            IpHeader::List(h) | IpHeader::Single(h) => h,
        }
    }

    /// The client address: the peer, unless the peer is a trusted proxy; then the
    /// right-most forwarded address that is not itself a trusted proxy. Unparsable
    /// header content falls back to the peer (never to a guessed address).
    pub fn client_ip(&self, peer: IpAddr, headers: &[(&str, &str)]) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        match &self.ip_header {
            IpHeader::Single(name) => headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| parse_addr(v))
                .unwrap_or(peer),
            IpHeader::List(name) => {
                let mut last_trusted = peer;
                for (n, v) in headers.iter().rev() {
                    if !n.eq_ignore_ascii_case(name) {
                        continue;
                    }
                    for item in v.rsplit(',') {
                        match parse_addr(item) {
                            None => return peer,
                            Some(ip) if self.is_trusted(ip) => last_trusted = ip,
                            Some(ip) => return ip,
                        }
                    }
                }
                last_trusted
            }
        }
    }

    /// The TLS fingerprint: from the configured header when the peer is trusted,
    /// else what the gateway computed itself.
    pub(crate) fn tls_fp<'a>(
        &self,
        peer: IpAddr,
        headers: &[(&'a str, &'a str)],
        own: Option<&'a str>,
    ) -> Option<&'a str> {
        match &self.tls_fp_header {
            Some(h) if self.is_trusted(peer) => headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
                .or(own),
            _ => own,
        }
    }
}

/// Parses one forwarded address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<IpAddr>().ok().map(|i| i.to_canonical());
    }
    let (ip, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}
