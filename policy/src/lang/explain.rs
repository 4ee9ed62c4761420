//! `explain`: why a request gets the decision it gets, for operators and tests.

use crate::lang::decision::{Decision, Outcome};
use crate::lang::model::{Action, Limit};
use crate::lang::route::RouteClass;
use std::fmt;
use std::net::IpAddr;

/// One limit as evaluated for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitTrace {
    /// Key spec as written, e.g. `ipv6/64+http_fp`.
    pub key_spec: String,
    /// The derived bucket key, or `None` when skipped.
    pub key: Option<String>,
    /// Rate, burst and cost, e.g. `10/hour burst 3 cost 1`.
    pub limit: String,
    /// What the probe said.
    pub outcome: String,
}

impl LimitTrace {
    pub(crate) fn new(l: &Limit, key: Option<String>, outcome: String) -> Self {
        LimitTrace {
            key_spec: l.key.text.clone(),
            key,
            limit: format!("{} burst {} cost {}", l.rate, l.burst, l.cost),
            outcome,
        }
    }
}

/// One matching rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Rule name.
    pub name: String,
    /// Its action.
    pub action: Action,
    /// Its limits, in order.
    pub limits: Vec<LimitTrace>,
}

/// Everything `explain` found; `Display` renders it for humans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// Route class.
    pub route: Option<RouteClass>,
    /// Client address after proxy handling.
    pub client_ip: Option<IpAddr>,
    /// Our HTTP fingerprint.
    pub http_fp: String,
    /// TLS fingerprint used, if any.
    pub tls_fp: Option<String>,
    /// Account key, if any.
    pub account: Option<String>,
    /// Matching rules in evaluation order (stops at the deciding rule).
    pub rules: Vec<RuleTrace>,
    /// What `decide` would answer now.
    pub decision: Option<Decision>,
    /// Where the request stands under the `[fair_share]` ceiling, when it covers the
    /// route (read without counting; as an unclaimed source, since the claim record is
    /// the gateway's).
    pub fair_share: Option<String>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let route = self.route.map_or("?", |r| r.as_str());
        writeln!(f, "route: {route}")?;
        match self.client_ip {
            Some(ip) => writeln!(f, "client ip: {ip}")?,
            None => writeln!(f, "client ip: ?")?,
        }
        writeln!(f, "http_fp: {}", self.http_fp)?;
        writeln!(f, "tls_fp: {}", self.tls_fp.as_deref().unwrap_or("(absent)"))?;
        writeln!(f, "account: {}", self.account.as_deref().unwrap_or("(absent)"))?;
        if self.rules.is_empty() {
            writeln!(f, "rules: none matched")?;
        }
        for r in &self.rules {
            writeln!(f, "rule \"{}\" ({}) matched", r.name, r.action.as_str())?;
            for l in &r.limits {
                writeln!(
                    f,
                    "  limit {} [{}] key {}: {}",
                    l.key_spec,
                    l.limit,
                    l.key.as_deref().unwrap_or("(none)"),
                    l.outcome
                )?;
            }
        }
        if let Some(fs) = &self.fair_share {
            writeln!(f, "fair share: {fs}")?;
        }
        match &self.decision {
            None => write!(f, "decision: ?"),
            Some(d) => {
                match d.outcome {
                    Outcome::Allow => write!(f, "decision: allow")?,
                    Outcome::Refuse { status } => write!(f, "decision: refuse {status}")?,
                }
                if let Some(r) = &d.rule {
                    write!(f, " by rule \"{r}\"")?;
                }
                if !d.shadow.is_empty() {
                    write!(f, " (shadow would refuse: {})", d.shadow.join(", "))?;
                }
                if !d.message.is_empty() {
                    write!(f, "\nmessage: {}", d.message)?;
                }
                Ok(())
            }
        }
    }
}
