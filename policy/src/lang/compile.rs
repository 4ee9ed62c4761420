//! From policy text to a [`Policy`] that cannot be invalid, with positioned errors.
//!
//! Syntax and shape errors come from serde/toml with their span; every semantic check
//! below uses the `Spanned` raw value so its error points at the offending text. The
//! compiler collects all semantic errors instead of stopping at the first.

use crate::lang::client::{ClientConfig, IpHeader};
use crate::lang::error::{did_you_mean, one_of, rewrite_serde_message, PolicyError, PolicyErrors};
use crate::lang::key::{KeySpec, Missing, Prefixes};
use crate::lang::model::{Action, CidrList, Limit, Matcher, Policy, Rule, Tables};
use crate::lang::rate::Rate;
use crate::lang::raw::{OneOrMany, RawLimit, RawMatch, RawPolicy, RawRule, SStr};
use crate::lang::route::{RouteClass, RoutePattern, Routes};
use crate::lang::section::SectionError;
use ipnetwork::IpNetwork;
use serde_spanned::Spanned;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default cap on tracked keys per limit table (about 100 bytes each: ~10 MB per table).
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default interval between sweeps of fresh-equivalent keys.
pub const DEFAULT_SWEEP_SECS: u64 = 60;

/// Compiles policy text. `file_name` is only used in error messages; list files
/// (`file = ...`) need [`compile_file`] because there is no directory to resolve them in.
pub fn compile_str(file_name: &str, source: &str) -> Result<Policy, PolicyErrors> {
    compile(file_name, source, None)
}

/// Compiles a policy file; list files are read relative to its directory.
pub fn compile_file(path: &Path) -> Result<Policy, PolicyErrors> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: name.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read policy file: {e}"),
        }])
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut policy = compile(&name, &source, Some(&dir))?;
    policy.source_files.insert(0, path.to_path_buf());
    Ok(policy)
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    dir: Option<&'a Path>,
    errs: Vec<PolicyError>,
    files: Vec<PathBuf>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let e = PolicyError::at(self.file, self.src, span.start, msg);
        self.errs.push(e);
    }
}

fn compile(file: &str, src: &str, dir: Option<&Path>) -> Result<Policy, PolicyErrors> {
    let raw: RawPolicy = toml::from_str(src).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let msg = rewrite_serde_message(e.message()).replace('\n', "; ");
        PolicyErrors(vec![PolicyError::at(file, src, at, msg)])
    })?;
    let mut cx = Ctx { file, src, dir, errs: Vec::new(), files: Vec::new() };
    let policy = build(&mut cx, raw);
    if cx.errs.is_empty() {
        Ok(policy)
    } else {
        cx.errs.sort_by_key(|e| (e.file != cx.file, e.file.clone(), e.line, e.col));
        Err(PolicyErrors(cx.errs))
    }
}

fn build(cx: &mut Ctx<'_>, raw: RawPolicy) -> Policy {
    if *raw.version.get_ref() != 1 {
        cx.err(raw.version.span(), format!("unsupported policy version {}; this build understands version = 1", raw.version.get_ref()));
    }
    let accounts = build_section(cx, "accounts", raw.accounts, crate::economics::accounts::compile_accounts);
    let quotas = build_section(cx, "quotas", raw.quotas, crate::economics::quota::compile_quotas);
    let costs = build_section(cx, "costs", raw.costs, crate::economics::ledger::compile_costs);
    let budgets = build_section(cx, "budgets", raw.budgets, crate::economics::ledger::compile_budgets);
    let pow = build_section(cx, "pow", raw.pow, crate::economics::pow::compile_pow);
    let client = build_client(cx, raw.client);
    let prefixes = build_prefixes(cx, raw.prefixes);
    let tables = build_tables(cx, raw.tables);
    let routes = build_routes(cx, raw.routes);
    let lists = build_lists(cx, raw.lists);
    let mut rules = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in raw.rule {
        let span = r.span();
        let r = r.into_inner();
        let name = r.name.get_ref().clone();
        if let Some(line) = seen.get(&name) {
            cx.err(r.name.span(), format!("duplicate rule name \"{name}\" (first defined on line {line})"));
        } else {
            seen.insert(name.clone(), crate::lang::error::line_col(cx.src, r.name.span().start).0);
        }
        if let Some(rule) = build_rule(cx, r, span, &lists) {
            rules.push(rule);
        }
    }
    Policy {
        client,
        prefixes,
        tables,
        routes,
        lists,
        rules,
        source_files: std::mem::take(&mut cx.files),
        accounts,
        quotas,
        costs,
        budgets,
        pow,
    }
}

/// Compiles one of `[accounts]`, `[quotas]`, `[costs]`, `[budgets]`, `[pow]` with its
/// module's compiler; an absent section compiles its empty form, so the defaults live
/// in one place (the module). The raw section was deserialized as part of the whole
/// file, so each error's span is already an offset into `cx.src`; an error without one
/// is placed at the section's header.
fn build_section<R: Default, T: Default>(
    cx: &mut Ctx<'_>,
    name: &str,
    raw: Option<R>,
    compile: fn(&R) -> Result<T, Vec<SectionError>>,
) -> T {
    match compile(&raw.unwrap_or_default()) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                let at = e.span.map_or_else(|| section_offset(cx.src, name), |s| s.start);
                cx.errs.push(PolicyError::at(cx.file, cx.src, at, e.message));
            }
            T::default()
        }
    }
}

/// Byte offset of the first line that opens `[name]` (or `[name.x]`, `[[name.x]]`, or
/// `name = ...` / `name.x = ...`), else 0. Only used to place errors that have no span
/// of their own: toml cannot span an implicit table, so the header is found textually.
fn section_offset(src: &str, name: &str) -> usize {
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let header = trimmed.trim_start_matches('[').trim_start();
        let rest = if trimmed.starts_with('[') { header.strip_prefix(name) } else { trimmed.strip_prefix(name) };
        let follows = rest.map(str::trim_start).and_then(|r| r.chars().next());
        let opens = if trimmed.starts_with('[') {
            matches!(follows, Some(']' | '.'))
        } else {
            matches!(follows, Some('=' | '.'))
        };
        if opens {
            return offset + indent;
        }
        offset += line.len();
    }
    0
}

fn build_client(cx: &mut Ctx<'_>, raw: Option<crate::lang::raw::RawClient>) -> ClientConfig {
    let mut c = ClientConfig::default();
    let Some(raw) = raw else { return c };
    for s in raw.trusted_proxies.unwrap_or_default() {
        if let Some(n) = parse_cidr(cx, &s) {
            c.trusted.push(n);
        }
    }
    if let Some(h) = raw.ip_header {
        if let Some(name) = header_name(cx, &h) {
            c.ip_header = if name == "x-forwarded-for" { IpHeader::List(name) } else { IpHeader::Single(name) };
        }
    }
    if let Some(h) = raw.tls_fingerprint_header {
        c.tls_fp_header = header_name(cx, &h);
    }
    c
}

fn header_name(cx: &mut Ctx<'_>, h: &SStr) -> Option<String> {
    let v = h.get_ref();
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
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

fn int_in(cx: &mut Ctx<'_>, v: &Spanned<i64>, lo: i64, hi: i64, what: &str) -> Option<i64> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Some(n)
    } else {
        cx.err(v.span(), format!("{what} must be from {lo} to {hi}, got {n}"));
        None
    }
}

fn build_prefixes(cx: &mut Ctx<'_>, raw: Option<crate::lang::raw::RawPrefixes>) -> Prefixes {
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

fn build_tables(cx: &mut Ctx<'_>, raw: Option<crate::lang::raw::RawTables>) -> Tables {
    let mut t = Tables { max_keys: DEFAULT_MAX_KEYS, sweep: Duration::from_secs(DEFAULT_SWEEP_SECS) };
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

fn build_routes(cx: &mut Ctx<'_>, raw: Option<std::collections::BTreeMap<SStr, Spanned<Vec<SStr>>>>) -> Routes {
    let mut classes: Vec<(RouteClass, Vec<RoutePattern>)> = RouteClass::MATCHED
        .iter()
        .map(|c| (*c, c.default_patterns().iter().filter_map(|p| RoutePattern::parse(p).ok()).collect()))
        .collect();
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

fn unknown_route(name: &str) -> String {
    format!(
        "unknown route class \"{name}\", expected one of {}{}",
        one_of(RouteClass::NAMES),
        did_you_mean(name, RouteClass::NAMES)
    )
}

fn build_lists(cx: &mut Ctx<'_>, raw: Option<std::collections::BTreeMap<SStr, Spanned<crate::lang::raw::RawList>>>) -> Vec<CidrList> {
    let mut out = Vec::new();
    for (name, list) in raw.unwrap_or_default() {
        let span = list.span();
        let list = list.into_inner();
        let mut nets = Vec::new();
        if list.cidrs.is_none() && list.file.is_none() {
            cx.err(span, format!("list \"{}\" needs cidrs = [...] or file = \"...\"", name.get_ref()));
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

fn build_rule(cx: &mut Ctx<'_>, r: RawRule, span: Range<usize>, lists: &[CidrList]) -> Option<Rule> {
    let name = r.name.get_ref().clone();
    if name.trim().is_empty() {
        cx.err(r.name.span(), "rule name must not be empty");
    }
    let action = match r.action.get_ref().as_str() {
        "allow" => Some(Action::Allow),
        "deny" => Some(Action::Deny),
        "limit" => Some(Action::Limit),
        "shadow" => Some(Action::Shadow),
        other => {
            cx.err(
                r.action.span(),
                format!("unknown action \"{other}\", expected one of {}{}", one_of(Action::NAMES), did_you_mean(other, Action::NAMES)),
            );
            None
        }
    };
    let matcher = r.matcher.map(|m| build_match(cx, m, lists)).unwrap_or_default();
    let mut limits = Vec::new();
    let limits_span = r.limits.as_ref().map(|l| l.span());
    let raw_limits = r.limits.map(Spanned::into_inner).unwrap_or_default();
    let written = raw_limits.len();
    for l in raw_limits {
        if let Some(l) = build_limit(cx, l.into_inner()) {
            limits.push(l);
        }
    }
    match (action, limits_span) {
        (Some(Action::Limit), None) => cx.err(span.clone(), format!("rule \"{name}\" has action = \"limit\" but no limits = [...]")),
        (Some(Action::Limit), Some(s)) if written == 0 => {
            cx.err(s, format!("rule \"{name}\" has action = \"limit\" but limits is empty"))
        }
        (Some(a @ (Action::Allow | Action::Deny)), Some(s)) => {
            cx.err(s, format!("rule \"{name}\": limits only apply to action = \"limit\" or \"shadow\", not \"{}\"", a.as_str()))
        }
        _ => {}
    }
    Some(Rule {
        name,
        matcher,
        action: action?,
        limits,
        message: r.message.map(Spanned::into_inner),
        advice: r.advice.map(Spanned::into_inner),
    })
}

fn build_match(cx: &mut Ctx<'_>, m: RawMatch, lists: &[CidrList]) -> Matcher {
    let mut out = Matcher::default();
    let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    for (field, target) in [(m.list, &mut out.lists), (m.not_list, &mut out.not_lists)] {
        for (name, span) in items(field) {
            match lists.iter().position(|l| l.name == name) {
                Some(i) => target.push(i),
                None if names.is_empty() => cx.err(span, format!("unknown list \"{name}\": no [lists.*] are defined")),
                None => cx.err(
                    span,
                    format!("unknown list \"{name}\", defined lists are {}{}", one_of(names.iter().copied()), did_you_mean(&name, names.iter().copied())),
                ),
            }
        }
    }
    for (name, span) in items(m.route) {
        match RouteClass::parse(&name) {
            Some(c) => out.routes.push(c),
            None => cx.err(span, unknown_route(&name)),
        }
    }
    for (method, span) in items(m.method) {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            cx.err(span, format!("bad method \"{method}\": use letters such as GET or POST"));
        } else {
            out.methods.push(method.to_ascii_uppercase());
        }
    }
    for (field, target) in [(m.header, &mut out.headers), (m.no_header, &mut out.no_headers)] {
        for (h, _) in items(field) {
            target.push(h.to_ascii_lowercase());
        }
    }
    out
}

fn items(field: Option<Spanned<OneOrMany>>) -> Vec<(String, Range<usize>)> {
    match field {
        None => Vec::new(),
        Some(s) => {
            let span = s.span();
            s.into_inner().0.into_iter().map(|v| (v, span.clone())).collect()
        }
    }
}

fn build_limit(cx: &mut Ctx<'_>, l: RawLimit) -> Option<Limit> {
    let key = KeySpec::parse(l.key.get_ref()).map_err(|m| cx.err(l.key.span(), m)).ok();
    let rate = Rate::parse(l.rate.get_ref()).map_err(|m| cx.err(l.rate.span(), m)).ok();
    let burst = match &l.burst {
        None => rate.map(|r| r.count),
        Some(b) if *b.get_ref() == 0 => {
            cx.err(b.span(), "burst must be at least 1 (a zero burst admits nothing; use action = \"deny\")");
            None
        }
        Some(b) => int_in(cx, b, 1, u32::MAX as i64, "burst").and_then(|n| NonZeroU32::new(n as u32)),
    };
    let cost = match &l.cost {
        None => NonZeroU32::new(1),
        Some(c) => int_in(cx, c, 1, u32::MAX as i64, "cost").and_then(|n| NonZeroU32::new(n as u32)),
    };
    if let (Some(b), Some(c), Some(cs)) = (burst, cost, &l.cost) {
        if c > b {
            cx.err(cs.span(), format!("cost {c} is larger than burst {b}: this limit could never admit such a request"));
        }
    }
    let missing = match &l.missing {
        None => Some(Missing::Ip),
        Some(m) => Missing::parse(m.get_ref()).or_else(|| {
            cx.err(
                m.span(),
                format!("unknown missing-key handling \"{}\", expected one of {}{}", m.get_ref(), one_of(Missing::NAMES), did_you_mean(m.get_ref(), Missing::NAMES)),
            );
            None
        }),
    };
    let (key, rate, burst, cost, missing) = (key?, rate?, burst?, cost?, missing?);
    let Some(quota) = rate.quota(burst) else {
        cx.err(l.rate.span(), format!("bad rate \"{}\": too fast to measure", l.rate.get_ref()));
        return None;
    };
    if cost > burst {
        return None;
    }
    Some(Limit { key, rate, burst, cost, missing, quota })
}

#[cfg(test)]
mod tests {
    use super::section_offset;

    #[test]
    fn section_headers_are_found_in_every_form() {
        let src = "version = 1\n[rule_x]\n  [[budgets.limit]]\nkey = 1\n";
        assert_eq!(&src[section_offset(src, "budgets")..][..10], "[[budgets.");
        let src = "version = 1\npow = { max_factor = 2 }\n";
        assert_eq!(&src[section_offset(src, "pow")..][..5], "pow =");
        let src = "version = 1\npowder = 1\n[costs]\n";
        assert_eq!(section_offset(src, "pow"), 0, "a longer name is not the section");
        assert_eq!(&src[section_offset(src, "costs")..], "[costs]\n");
    }
}
