//! Cleanup-cost ledger: charges, credits, budgets, queries, persistence.

mod common;

use common::{errors_of, policy_with};
use policy::accounts::{AccountBook, SourceKey, SourceKeys, SourceKind, TokenHasher};
use policy::ledger::{BudgetAction, BudgetRule, Budgets, Costs, Ledger, Reason};
use policy::platform::classify_default as classify;
use policy::quota::{AccountUsage, ResourceCounts};

const TOKEN: &str = "tmp-token-SECRET-77";

fn src(ip: &str) -> SourceKeys {
    SourceKeys::new(ip.parse().expect("ip"), Some("hf1_fp".into()), Some("t13d_fp".into()))
}

fn one_script() -> ResourceCounts {
    ResourceCounts { worker_scripts: 1, ..ResourceCounts::default() }
}

#[test]
fn unclaimed_account_is_charged_to_every_source_key() {
    let costs = Costs::default();
    let hasher = TokenHasher::random();
    let book = AccountBook::new();
    let creator = src("2001:db8:5:6::9");
    book.record_created("acc", hasher.hash(TOKEN), 0, 3600, creator.clone());
    let mut usage = AccountUsage::new();
    for p in ["workers/scripts/w", "queues"] {
        let op = classify(
            if p == "queues" { "POST" } else { "PUT" },
            &format!("/client/v4/accounts/acc/{p}"),
        )
        .op;
        usage.commit(&op, Some("q1"));
    }
    let ledger = Ledger::new();
    for acc in book.take_expired_unclaimed(3600) {
        ledger
            .charge_expired_unclaimed(&acc.account_id, &acc.source, usage.counts(), 3600, &costs)
            .expect("charged");
    }
    // account 10 + script 5 + queue 2
    for key in creator.keys() {
        assert_eq!(ledger.debt(&key, 3600, 86_400), 17, "{key}");
        assert_eq!(ledger.by_source(&key).len(), 1);
    }
    assert_eq!(creator.keys().len(), 7, "ip, four prefixes, two fingerprints");
    // Charging twice does nothing.
    assert!(ledger
        .charge_expired_unclaimed("acc", &creator, usage.counts(), 3700, &costs)
        .is_none());
    assert_eq!(ledger.total(0), (17, 1));
    // Another source is untouched.
    assert_eq!(ledger.debt(&SourceKey::Ip("192.0.2.1".parse().expect("ip")), 3600, 86_400), 0);
}

#[test]
fn claim_earns_credit_and_reverses_an_earlier_charge() {
    let costs = Costs::default();
    let ledger = Ledger::new();
    let s = src("192.0.2.10");
    let e = ledger.credit_claimed("a", &s, one_script(), 100, &costs).expect("credit");
    assert_eq!((e.reason, e.units), (Reason::Claimed, -20));
    assert!(ledger.credit_claimed("a", &s, one_script(), 101, &costs).is_none(), "once");
    assert!(
        ledger.charge_expired_unclaimed("a", &s, one_script(), 3600, &costs).is_none(),
        "claimed: no charge"
    );
    // A claim reported after the sweeper charged: the charge is reversed plus credit.
    ledger.charge_expired_unclaimed("b", &s, one_script(), 3600, &costs).expect("charge 15");
    let e = ledger.credit_claimed("b", &s, one_script(), 3650, &costs).expect("late claim");
    assert_eq!(e.units, -35);
    // Debt never goes below zero.
    assert_eq!(ledger.debt(&SourceKey::Ip(s.ip), 4000, 86_400), 0);
    assert_eq!(ledger.total(0), (-40, 2));
}

#[test]
fn source_over_budget_gets_a_breach_with_retry_after() {
    let costs = Costs::default(); // 10 per account, 5 per script: 15 per account here
    let budgets = Budgets {
        window_secs: 86_400,
        rules: vec![
            BudgetRule {
                kind: SourceKind::Ipv6_48,
                units: 30,
                window_secs: 86_400,
                action: BudgetAction::HarderPow,
            },
            BudgetRule {
                kind: SourceKind::Ipv6_48,
                units: 45,
                window_secs: 86_400,
                action: BudgetAction::Refuse,
            },
        ],
        global: Vec::new(),
    };
    let ledger = Ledger::new();
    // Three /64s in one /48 (address rotation does not help).
    let s = |n: u32| src(&format!("2001:db8:7:{n:x}::1"));
    ledger.charge_expired_unclaimed("a", &s(1), one_script(), 1_000, &costs);
    assert!(ledger.over_budget(&s(9), 1_000, &budgets).is_none(), "15 < 30");
    ledger.charge_expired_unclaimed("b", &s(2), one_script(), 2_000, &costs);
    let b = ledger.over_budget(&s(9), 2_000, &budgets).expect("30 >= 30");
    assert_eq!((b.action, b.debt, b.budget), (BudgetAction::HarderPow, 30, 30));
    // Falls below 30 when the first charge (t=1000) leaves the window.
    assert_eq!(b.retry_after_secs, 1_000 + 86_400 - 2_000);
    ledger.charge_expired_unclaimed("c", &s(3), one_script(), 3_000, &costs);
    let b = ledger.over_budget(&s(9), 3_000, &budgets).expect("45 >= 45");
    assert_eq!(b.action, BudgetAction::Refuse, "refuse wins over harder_pow");
    assert_eq!(b.key.to_string(), "ipv6/48:2001:db8:7::/48");
    assert_eq!(b.retry_after_secs, 1_000 + 86_400 - 3_000);
    assert!(
        b.message.contains("2001:db8:7::/48") && b.message.contains("84400 seconds"),
        "{}",
        b.message
    );
    // A different /48 is not affected; and after the window everything clears.
    assert!(ledger.over_budget(&src("2001:db8:8::1"), 3_000, &budgets).is_none());
    assert!(ledger.over_budget(&s(9), 3_000 + 86_400, &budgets).is_none());
    // A claim in the window earns 20 units of credit: 45 - 20 = 25, below both budgets.
    ledger.credit_claimed("d", &s(4), one_script(), 3_100, &costs);
    assert_eq!(ledger.debt(&b.key, 3_100, 86_400), 25);
    assert!(ledger.over_budget(&s(9), 3_100, &budgets).is_none());
}

#[test]
fn queries_top_sources_and_hourly_totals() {
    let costs = Costs::default();
    let ledger = Ledger::new();
    ledger.charge_expired_unclaimed(
        "a",
        &src("192.0.2.1"),
        ResourceCounts::default(),
        3_600,
        &costs,
    );
    ledger.charge_expired_unclaimed(
        "b",
        &src("192.0.2.1"),
        ResourceCounts::default(),
        3_700,
        &costs,
    );
    ledger.charge_expired_unclaimed("c", &src("198.51.100.1"), one_script(), 7_300, &costs);
    let top = ledger.top_sources(3, 0);
    assert_eq!(top[0], (SourceKey::HttpFp("hf1_fp".into()), 35, 3));
    let ip1 = SourceKey::Ip("192.0.2.1".parse().expect("ip"));
    let top10 = ledger.top_sources(10, 0);
    assert!(top10.contains(&(ip1.clone(), 20, 2)));
    assert_eq!(ledger.top_sources(10, 7_000).iter().find(|t| t.0 == ip1), None);
    assert_eq!(ledger.totals_per_hour(0, 10_000), vec![(3_600, 20, 2), (7_200, 15, 1)]);
    assert_eq!(ledger.totals_per_hour(3_650, 7_300), vec![(3_600, 10, 1)]);
    assert_eq!(ledger.total(3_700), (25, 2));
}

#[test]
fn persists_as_json_lines_without_tokens() {
    let costs = Costs::default();
    let hasher = TokenHasher::random();
    let book = AccountBook::new();
    book.record_created("a", hasher.hash(TOKEN), 0, 3600, src("2001:db8::1"));
    let ledger = Ledger::new();
    let acc = book.by_token(&hasher.hash(TOKEN)).expect("acc");
    let e =
        ledger.charge_expired_unclaimed("a", &acc.source, one_script(), 3_600, &costs).expect("e");
    ledger.credit_claimed("z", &src("192.0.2.3"), ResourceCounts::default(), 4_000, &costs);
    let mut buf = Vec::new();
    ledger.write_json_lines(&mut buf).expect("write");
    let text = String::from_utf8(buf.clone()).expect("utf8");
    assert!(!text.contains(TOKEN) && !text.contains("SECRET"));
    assert_eq!(text.lines().count(), 2);
    assert_eq!(text.lines().next(), Some(e.to_json_line().as_str()));
    assert!(text.contains("\"reason\":\"expired_unclaimed\""), "{text}");
    assert!(text.contains("\"ipv6/48:2001:db8::/48\""), "{text}");
    let loaded = Ledger::read_json_lines(&buf[..]).expect("load");
    assert_eq!(loaded.entries(), ledger.entries());
    assert_eq!(loaded.debt(&"ipv6/64:2001:db8::/64".parse().expect("key"), 3_600, 86_400), 15);
    // Loaded state keeps idempotency.
    assert!(loaded
        .charge_expired_unclaimed("a", &acc.source, one_script(), 3_700, &costs)
        .is_none());
    let bad = format!("{}\n\n{{\"at\": 1}}\n", e.to_json_line());
    let err = Ledger::read_json_lines(bad.as_bytes()).expect_err("bad line");
    assert_eq!(err.line, 3);
}

#[test]
fn costs_and_budgets_sections_compile_with_defaults_and_located_errors() {
    let p = policy_with("");
    assert_eq!(p.costs(), &Costs::default());
    assert_eq!(p.budgets(), &Budgets::default());
    let src = r#"
[costs]
account = 4
per_mb_stored = 2
[budgets]
window_secs = 3600
[[budgets.limit]]
key = "ipv6/48"
units = 100
action = "harder_pow"
[[budgets.limit]]
key = "ip"
units = 50
window_secs = 600
"#;
    let p = policy_with(src);
    let c = p.costs();
    assert_eq!((c.account, c.per_mb_stored, c.worker_script), (4, 2, 5));
    assert_eq!(
        c.cleanup_cost(&ResourceCounts { stored_bytes: 1_000_001, ..Default::default() }),
        4 + 2 * 2
    );
    assert_eq!(
        p.budgets().rules,
        vec![
            BudgetRule {
                kind: SourceKind::Ipv6_48,
                units: 100,
                window_secs: 3600,
                action: BudgetAction::HarderPow
            },
            BudgetRule {
                kind: SourceKind::Ip,
                units: 50,
                window_secs: 600,
                action: BudgetAction::Refuse
            },
        ]
    );
    assert!(policy_with("[budgets]\nlimit = []\n").budgets().rules.is_empty());
    assert_eq!(
        errors_of("[costs]\naccounts = 1\n"),
        "p.toml:3:1: unknown field \"accounts\", expected one of \"account\", \"worker_script\", \"kv_namespace\", \"d1_database\", \"queue\", \"hyperdrive_config\", \"asset_file\", \"per_mb_stored\", \"claim_credit\"; did you mean \"account\"?"
    );
    assert_eq!(
        errors_of("[[budgets.limit]]\nkey = \"ip\"\nunits = 1\nwindow = 3\n"),
        "p.toml:5:1: unknown field \"window\", expected one of \"key\", \"units\", \"window_secs\", \"action\"; did you mean \"window_secs\"?"
    );
    assert_eq!(
        errors_of("[[budgets.limit]]\nkey = \"ip\"\nunits = 1\naction = \"block\"\n"),
        "p.toml:5:10: unknown budget action \"block\", expected one of \"refuse\", \"harder_pow\""
    );
}

/// A swarm that takes a fresh /24 and fingerprint for every account trips no per-key
/// budget, but the platform-wide budget sees the total: harder proof-of-work for every
/// source, then refusal, each with a retry time.
#[test]
fn a_swarm_spread_thin_trips_the_global_budget() {
    use policy::ledger::GlobalBudget;
    let costs = Costs::default(); // 15 units per unclaimed one-script account
    let budgets = Budgets {
        window_secs: 3_600,
        rules: Budgets::default().rules,
        global: vec![
            GlobalBudget { units: 60, window_secs: 3_600, action: BudgetAction::HarderPow },
            GlobalBudget { units: 120, window_secs: 3_600, action: BudgetAction::Refuse },
        ],
    };
    let ledger = Ledger::new();
    let spread = |n: u32| src(&format!("198.51.{n}.7"));
    for n in 0..4 {
        ledger.charge_expired_unclaimed(
            &format!("acct-{n}"),
            &spread(n),
            one_script(),
            1_000 + u64::from(n),
            &costs,
        );
    }
    // 60 units in all, 15 on any one key: only the global budget applies.
    let newcomer = spread(200);
    let breach = ledger.over_budget(&newcomer, 1_010, &budgets).expect("global harder_pow");
    assert_eq!(breach.key, SourceKey::Global);
    assert_eq!((breach.debt, breach.budget, breach.action), (60, 60, BudgetAction::HarderPow));
    for n in 4..8 {
        ledger.charge_expired_unclaimed(
            &format!("acct-{n}"),
            &spread(n),
            one_script(),
            1_000 + u64::from(n),
            &costs,
        );
    }
    let breach = ledger.over_budget(&newcomer, 1_010, &budgets).expect("global refuse");
    assert_eq!((breach.debt, breach.action), (120, BudgetAction::Refuse));
    assert!(breach.message.contains("all sources together"), "{}", breach.message);
    // Enough debt leaves the window when the first entry (at 1000) is an hour old.
    assert_eq!(breach.retry_after_secs, 1_000 + 3_600 - 1_010);
    assert!(
        ledger.over_budget(&newcomer, 1_000 + 3_600 + 8, &budgets).is_none(),
        "the window moved on"
    );
    assert_eq!("global".parse::<SourceKey>(), Ok(SourceKey::Global));
    assert_eq!(ledger.by_source(&SourceKey::Global).len(), 8);
}

/// A long-running gateway forgets entries older than its longest budget window; what
/// is left still answers debt and source queries correctly.
#[test]
fn old_entries_are_forgotten_and_queries_still_work() {
    let costs = Costs::default();
    let ledger = Ledger::new();
    let s = src("198.51.100.77");
    ledger.charge_expired_unclaimed("old", &s, one_script(), 1_000, &costs);
    ledger.charge_expired_unclaimed("new", &s, one_script(), 100_000, &costs);
    assert_eq!(ledger.forget_before(50_000), 1);
    assert_eq!(ledger.forget_before(50_000), 0, "nothing left to forget");
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger.by_source(&SourceKey::Ip(s.ip)).len(), 1);
    assert_eq!(ledger.debt(&SourceKey::Ip(s.ip), 100_000, 86_400), 15);
    // The remaining account is still charged only once.
    assert!(ledger.charge_expired_unclaimed("new", &s, one_script(), 100_001, &costs).is_none());
}

#[test]
fn an_entry_from_another_gateway_is_taken_once_per_account_and_kind() {
    let costs = Costs::default();
    let here = Ledger::new();
    let there = Ledger::new();
    let creator = src("198.51.100.3");
    let charge = there
        .charge_expired_unclaimed("acc", &creator, one_script(), 100, &costs)
        .expect("charged there");
    assert!(here.append_once(charge.clone()), "a charge recorded elsewhere is taken");
    assert!(!here.append_once(charge.clone()), "and only once");
    // Both gateways saw the expiry: the local charge is refused after the fleet's.
    assert!(here.charge_expired_unclaimed("acc", &creator, one_script(), 100, &costs).is_none());
    let credit = there.credit_claimed("acc", &creator, one_script(), 200, &costs).expect("credit");
    assert!(here.append_once(credit.clone()), "a credit after a charge is another kind");
    assert!(!here.append_once(credit));
    assert_eq!(here.len(), 2);
    let key = SourceKey::Ip("198.51.100.3".parse().expect("ip"));
    assert_eq!(here.net_units(&key, 200, 3600), there.net_units(&key, 200, 3600));
}
