//! The acceptance lines of the attack archetypes: one check per attack
//! class, each a pure function of the run's figures, so it can be tested
//! with synthetic results.

use std::collections::BTreeMap;

use super::group::percent;
use super::{Check, Report, LEDGER_BASIS, WELL_BEHAVED_MIN_PCT};
use crate::archetype::Archetype;
use crate::attack::facts::{Holdings, HonestDuring};
use crate::attack::limits::{GlobalBudget, PolicyLimits, Quotas};
use crate::attack::{evader, replay, spray};

fn status(ok: bool) -> String {
    if ok { "PASS" } else { "FAIL" }.into()
}

fn found(f: &BTreeMap<String, u64>, name: &str) -> u64 {
    f.get(name).copied().unwrap_or(0)
}

/// `rotate-ipv4-16`: the accounts the group got from its one /16 are at
/// most the policy's `[accounts.per_day]` limit for `ipv4/16` (the run is
/// far shorter than the window, so every account counts); without such a
/// limit, the `ipv4/24` one times the /24s the group used.
pub fn rotate16_check(
    label: &str,
    accounts: u64,
    nets_24: u64,
    limits: Option<&PolicyLimits>,
) -> Check {
    let name = format!("{label}: accounts from one IPv4 /16 within the policy's /16 limit");
    let Some(l) = limits else {
        return Check { status: "SKIP".into(), name, detail: "no policy to judge by".into() };
    };
    let (allowed, basis) = match (l.per_day.get("ipv4/16"), l.per_day.get("ipv4/24")) {
        (Some(&n), _) => (n, format!("[accounts.per_day] ipv4/16 = {n}")),
        (None, Some(&n)) => (
            n.saturating_mul(nets_24),
            format!(
                "no ipv4/16 limit in the policy: [accounts.per_day] ipv4/24 = {n} x {nets_24} /24s used"
            ),
        ),
        (None, None) => {
            return Check {
                status: "SKIP".into(),
                name,
                detail: format!("{accounts} accounts; the policy limits neither ipv4/16 nor ipv4/24"),
            }
        }
    };
    Check {
        status: status(accounts <= allowed),
        name,
        detail: format!("{accounts} accounts over {nets_24} /24s vs {allowed} allowed ({basis})"),
    }
}

/// `botnet`, first half: the platform's total unclaimed cleanup (every
/// group, from the ledger) is within the policy's global budget (its
/// smallest `refuse` budget, else its smallest one). `total_units` is
/// `None` without a ledger.
pub fn botnet_cleanup_check(
    label: &str,
    total_units: Option<f64>,
    global: Option<&GlobalBudget>,
) -> Check {
    let name = format!("{label}: total unclaimed cleanup within the global budget");
    match (total_units, global) {
        (Some(t), Some(g)) => Check {
            status: status(t <= g.units as f64),
            name,
            detail: format!(
                "{t:.0} units charged over every group vs global {} budget {} units per {} s",
                g.action, g.units, g.window_secs
            ),
        },
        (None, _) => Check {
            status: "SKIP".into(),
            name,
            detail: "no gateway ledger to total the cleanup from".into(),
        },
        (Some(t), None) => Check {
            status: "SKIP".into(),
            name,
            detail: format!("{t:.0} units charged; the policy has no global budget"),
        },
    }
}

/// `botnet`, second half (collateral damage): the well-behaved agents that
/// ran while the botnet was active, all from networks it does not touch,
/// complete at least 99% of their deploys.
pub fn botnet_collateral_check(label: &str, honest: &HonestDuring) -> Check {
    let pct = percent(honest.completed, honest.wanted);
    Check {
        status: status(honest.wanted > 0 && pct >= WELL_BEHAVED_MIN_PCT),
        name: format!(
            "{label}: collateral damage: honest deploys during the swarm >= {WELL_BEHAVED_MIN_PCT:.0}%"
        ),
        detail: format!(
            "{}/{} = {pct:.1}% by {} well-behaved agents from untouched networks",
            honest.completed, honest.wanted, honest.agents
        ),
    }
}

/// `token-spray`: some of the spray was refused (not all forwarded), and
/// every honest probe from another network deployed without a refusal.
pub fn token_spray_check(label: &str, f: &BTreeMap<String, u64>) -> Check {
    let (sent, fwd, refused) =
        (found(f, spray::SENT), found(f, spray::FORWARDED), found(f, spray::REFUSED));
    let (probes, ok, throttled) =
        (found(f, spray::PROBES), found(f, spray::PROBES_OK), found(f, spray::PROBES_THROTTLED));
    let held =
        sent > 0 && refused > 0 && fwd < sent && probes > 0 && ok == probes && throttled == 0;
    Check {
        status: status(held),
        name: format!("{label}: random tokens refused, honest newcomer not throttled"),
        detail: format!(
            "{sent} spray requests: {refused} refused, {fwd} forwarded ({:.1}%); honest probes: {ok}/{probes} deployed, {throttled} throttled",
            percent(fwd, sent)
        ),
    }
}

/// `pow-replay`: no shortcut yielded an account (accounts obtained for
/// less than the policy's work must be 0). Without an indebted source, or
/// when every shortcut was refused by a rate limit before its work was
/// judged, nothing was tested: `SKIP`.
pub fn pow_replay_check(label: &str, f: &BTreeMap<String, u64>) -> Check {
    let cheats: Vec<u64> = replay::CHEATS.iter().map(|c| found(f, c)).collect();
    let cheated: u64 = cheats.iter().sum();
    let indebted = found(f, replay::INDEBTED);
    let tried = found(f, replay::TRIED);
    let limited = found(f, replay::RATE_LIMITED);
    let detail = format!(
        "{cheated} accounts obtained by cheating (moved challenge {}, resent body {}, reused tail {}) over {tried} shortcuts from {indebted} indebted sources; {} refused, {limited} of them by a rate limit",
        cheats[0],
        cheats[1],
        cheats[2],
        found(f, replay::REFUSED)
    );
    let (status, why) = match (cheated, indebted) {
        (0, 0) => ("SKIP", "no source became indebted in time; "),
        (0, _) if tried <= limited => {
            ("SKIP", "every shortcut was rate-limited before its work was judged; ")
        }
        (0, _) => ("PASS", ""),
        _ => ("FAIL", ""),
    };
    let (status, detail) = (status.to_string(), format!("{why}{detail}"));
    Check { status, name: format!("{label}: no account for less than the policy's work"), detail }
}

/// What one account holds above the quotas, as `what held/max` items.
pub fn over_quota(h: &Holdings, q: &Quotas) -> Vec<String> {
    let mut over = Vec::new();
    for (what, held, max) in [
        ("scripts", h.scripts, q.max_worker_scripts),
        ("kv", h.kv_namespaces, q.max_kv_namespaces),
        ("d1", h.d1_databases, q.max_d1_databases),
        ("queues", h.queues, q.max_queues),
        ("asset files", h.asset_files, q.max_asset_files),
    ] {
        if held > max {
            over.push(format!("{what} {held}/{max}"));
        }
    }
    let bytes_cap = h.asset_files.saturating_mul(q.max_asset_file_bytes);
    if h.asset_bytes > bytes_cap {
        over.push(format!(
            "asset bytes {} > {} files x {} (a file above the per-file limit)",
            h.asset_bytes, h.asset_files, q.max_asset_file_bytes
        ));
    }
    over
}

/// `quota-evader`: by the platform's own count, no account of the group
/// ever held more than the quotas allow, and no body over
/// `max_body_bytes` was accepted. When some evasions got no account (and
/// nothing was over), they were not tried: `SKIP`.
pub fn quota_evader_check(
    label: &str,
    holdings: Option<&[Holdings]>,
    quotas: Option<&Quotas>,
    f: &BTreeMap<String, u64>,
) -> Check {
    let name = format!("{label}: account resources within the quotas (platform's count)");
    let (Some(held), Some(q)) = (holdings, quotas) else {
        return Check {
            status: "SKIP".into(),
            name,
            detail: "needs the tester's own platform and the policy".into(),
        };
    };
    if held.is_empty() {
        return Check { status: "SKIP".into(), name, detail: "the group got no account".into() };
    }
    let mut over: Vec<String> = Vec::new();
    for h in held {
        over.extend(over_quota(h, q));
    }
    let oversized = found(f, evader::OVERSIZED_OK);
    if oversized > 0 {
        over.push(format!("{oversized} bodies over max_body_bytes {} accepted", q.max_body_bytes));
    }
    let most = |sel: fn(&Holdings) -> u64| held.iter().map(sel).max().unwrap_or(0);
    let detail = format!(
        "{} accounts; most held: kv {}/{}, d1 {}/{}, queues {}/{}, scripts {}/{}, asset files {}/{}; attempts accepted: concurrent {}/{}, long titles {}, Content-Length N,N {}, lying manifest {}, oversized bodies {}/{}{}",
        held.len(),
        most(|h| h.kv_namespaces),
        q.max_kv_namespaces,
        most(|h| h.d1_databases),
        q.max_d1_databases,
        most(|h| h.queues),
        q.max_queues,
        most(|h| h.scripts),
        q.max_worker_scripts,
        most(|h| h.asset_files),
        q.max_asset_files,
        found(f, evader::CONCURRENT_OK),
        found(f, evader::CONCURRENT),
        found(f, evader::LONG_TITLES_OK),
        found(f, evader::DOUBLED_OK),
        found(f, evader::LYING_OK),
        oversized,
        found(f, evader::OVERSIZED),
        if over.is_empty() { String::new() } else { format!("; OVER: {}", over.join(", ")) }
    );
    let got = found(f, evader::ACCOUNTS);
    if over.is_empty() && got < evader::ACCOUNTS_NEEDED {
        // Evasions without an account did not run: no verdict on them.
        return Check {
            status: "SKIP".into(),
            name,
            detail: format!(
                "only {got} of the {} accounts the evasions need were created; {detail}",
                evader::ACCOUNTS_NEEDED
            ),
        };
    }
    Check { status: status(over.is_empty()), name, detail }
}

impl Report {
    /// The attack archetypes' acceptance lines, one group at a time.
    pub fn attack_checks(&self) -> Vec<Check> {
        let facts = self.attacks.clone().unwrap_or_default();
        let limits = facts.policy.as_ref();
        let ledger_total =
            (self.cleanup_cost_basis == LEDGER_BASIS).then_some(self.totals.cleanup_units);
        let mut checks = Vec::new();
        for g in &self.groups {
            match self.archetype_of(g) {
                Some(Archetype::RotateIpv4In16) => {
                    checks.push(rotate16_check(&g.label, g.accounts_created, g.networks_24, limits))
                }
                Some(Archetype::Botnet) => {
                    checks.push(botnet_cleanup_check(
                        &g.label,
                        ledger_total,
                        limits.and_then(PolicyLimits::global_budget),
                    ));
                    let honest = facts.honest_during.get(&g.label).copied().unwrap_or_default();
                    checks.push(botnet_collateral_check(&g.label, &honest));
                }
                Some(Archetype::TokenSpray) => {
                    checks.push(token_spray_check(&g.label, &g.findings))
                }
                Some(Archetype::PowReplay) => checks.push(pow_replay_check(&g.label, &g.findings)),
                Some(Archetype::QuotaEvader) => checks.push(quota_evader_check(
                    &g.label,
                    facts.holdings.as_ref().and_then(|h| h.get(&g.label)).map(Vec::as_slice),
                    limits.map(|l| &l.quotas),
                    &g.findings,
                )),
                _ => {}
            }
        }
        checks
    }

    fn archetype_of(&self, g: &super::GroupReport) -> Option<Archetype> {
        Archetype::ALL.into_iter().find(|a| a.name() == g.archetype)
    }
}
