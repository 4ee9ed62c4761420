//! `[client]`, `[prefixes]`, `[tables]`, `[routes]` and `[lists]`: the settings the
//! rules refer to.

use super::{Ctx, DEFAULT_MAX_KEYS, DEFAULT_SWEEP_SECS};
use crate::lang::client::{ClientConfig, IpHeader};
use crate::lang::error::{did_you_mean, one_of, PolicyError};
use crate::lang::key::Prefixes;
use crate::lang::model::{CidrList, Tables};
use crate::lang::raw::SStr;
use crate::lang::route::{RouteClass, RoutePattern, Routes};
use ipnetwork::IpNetwork;
use serde_spanned::Spanned;
use std::time::Duration;

pub(super) fn build_client(
    cx: &mut Ctx<'_>,
    raw: Option<crate::lang::raw::RawClient>,
) -> ClientConfig {
    let mut c = ClientConfig::default();
    let Some(raw) = raw else { return c };
    for s in raw.trusted_proxies.unwrap_or_default() {
        if let Some(n) = parse_cidr(cx, &s) {
            c.trusted.push(n);
        }
    }
    if let Some(h) = raw.ip_header {
        if let Some(name) = header_name(cx, &h) {
            c.ip_header = if name == "x-forwarded-for" {
                IpHeader::List(name)
            } else {
                IpHeader::Single(name)
            };
        }
    }
    if let Some(h) = raw.tls_fingerprint_header {
        c.tls_fp_header = header_name(cx, &h);
    }
    c
}

fn header_name(cx: &mut Ctx<'_>, h: &SStr) -> Option<String> {
    let v = h.get_ref();
    let ok =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Some(v.to_ascii_lowercase())
    } else {
        cx.err(h.span(), format!("bad header name \"{v}\": use letters, digits, - and _"));
        None
    }
}

fn parse_cidr(cx: &mut Ctx<'_>, s: &SStr) -> Option<IpNetwork> {
    match cidr(s.get_ref()) {
        Ok(n) => Some(n),
        Err(m) => {
            cx.err(s.span(), m);
            None
        }
    }
}

/// Parses `addr` or `addr/len`, folding IPv4-mapped IPv6 like the client address is folded.
pub(crate) fn cidr(s: &str) -> Result<IpNetwork, String> {
    let s = s.trim();
    s.parse::<IpNetwork>().map_err(|_| {
        format!("bad CIDR \"{s}\": expected an address or network such as \"192.0.2.0/24\" or \"2001:db8::/32\"")
    })
}

pub(super) fn int_in(
    cx: &mut Ctx<'_>,
    v: &Spanned<i64>,
    lo: i64,
    hi: i64,
    what: &str,
) -> Option<i64> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        cx.err(v.span(), format!("{what} must be from {lo} to {hi}, got {n}"));
        None
    }
}

pub(super) fn build_prefixes(
    cx: &mut Ctx<'_>,
    raw: Option<crate::lang::raw::RawPrefixes>,
) -> Prefixes {
    let mut p = Prefixes { v4: 24, v6: 64 };
    let Some(raw) = raw else { return p };
    if let Some(v) = raw.ipv4 {
        if let Some(n) = int_in(cx, &v, 1, 32, "bad prefix length: ipv4") {
            p.v4 = n as u8;
        }
    }
    if let Some(v) = raw.ipv6 {
        if let Some(n) = int_in(cx, &v, 1, 128, "bad prefix length: ipv6") {
            p.v6 = n as u8;
        }
    }
    p
}

pub(super) fn build_tables(cx: &mut Ctx<'_>, raw: Option<crate::lang::raw::RawTables>) -> Tables {
    let mut t =
        Tables { max_keys: DEFAULT_MAX_KEYS, sweep: Duration::from_secs(DEFAULT_SWEEP_SECS) };
    let Some(raw) = raw else { return t };
    if let Some(v) = raw.max_keys {
        if let Some(n) = int_in(cx, &v, 1, 100_000_000, "max_keys") {
            t.max_keys = n as usize;
        }
    }
    if let Some(v) = raw.sweep_secs {
        if let Some(n) = int_in(cx, &v, 1, 86_400, "sweep_secs") {
            t.sweep = Duration::from_secs(n as u64);
        }
    }
    t
}

pub(super) fn build_routes(
    cx: &mut Ctx<'_>,
    raw: Option<std::collections::BTreeMap<SStr, Spanned<Vec<SStr>>>>,
) -> Routes {
    let mut classes = crate::platform::default_routes().classes;
    for (name, pats) in raw.unwrap_or_default() {
        let class = match RouteClass::parse(name.get_ref()) {
            Some(RouteClass::Other) => {
                cx.err(name.span(), "route class \"other\" is what matches when nothing else does; it takes no patterns");
                continue;
            }
            Some(c) => c,
            None => {
                cx.err(name.span(), unknown_route(name.get_ref()));
                continue;
            }
        };
        let mut compiled = Vec::new();
        for p in pats.get_ref() {
            match RoutePattern::parse(p.get_ref()) {
                Ok(p) => compiled.push(p),
                Err(m) => cx.err(p.span(), m),
            }
        }
        if let Some(slot) = classes.iter_mut().find(|(c, _)| *c == class) {
            slot.1 = compiled;
        }
    }
    Routes { classes }
}

pub(super) fn unknown_route(name: &str) -> String {
    format!(
        "unknown route class \"{name}\", expected one of {}{}",
        one_of(RouteClass::NAMES),
        did_you_mean(name, RouteClass::NAMES)
    )
}

pub(super) fn build_lists(
    cx: &mut Ctx<'_>,
    raw: Option<std::collections::BTreeMap<SStr, Spanned<crate::lang::raw::RawList>>>,
) -> Vec<CidrList> {
    let mut out = Vec::new();
    for (name, list) in raw.unwrap_or_default() {
        let span = list.span();
        let list = list.into_inner();
        let mut nets = Vec::new();
        if list.cidrs.is_none() && list.file.is_none() {
            cx.err(
                span,
                format!("list \"{}\" needs cidrs = [...] or file = \"...\"", name.get_ref()),
            );
        }
        for s in list.cidrs.unwrap_or_default() {
            if let Some(n) = parse_cidr(cx, &s) {
                nets.push(n);
            }
        }
        if let Some(f) = list.file {
            read_list_file(cx, &f, &mut nets);
        }
        out.push(CidrList { name: name.into_inner(), nets });
    }
    out
}

/// Reads one CIDR per line (`#` comments, blank lines ignored); errors name the list
/// file, line and column.
fn read_list_file(cx: &mut Ctx<'_>, f: &SStr, nets: &mut Vec<IpNetwork>) {
    let Some(dir) = cx.dir else {
        cx.err(f.span(), format!("list file \"{}\" cannot be resolved: compile the policy from a file (compile_file) so it has a directory", f.get_ref()));
        return;
    };
    let path = dir.join(f.get_ref());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.err(f.span(), format!("cannot read list file \"{}\": {e}", path.display()));
            return;
        }
    };
    let shown = path.display().to_string();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        let token = content.trim();
        if token.is_empty() {
            continue;
        }
        match cidr(token) {
            Ok(n) => nets.push(n),
            Err(m) => {
                let col = content[..content.len() - content.trim_start().len()].chars().count() + 1;
                cx.errs.push(PolicyError { file: shown.clone(), line: i + 1, col, message: m });
            }
        }
    }
    cx.files.push(path);
}
