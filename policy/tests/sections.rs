//! `[accounts]`, `[quotas]`, `[costs]`, `[budgets]` and `[pow]` as part of a policy file:
//! compiled values, defaults when absent, and errors placed in the whole file.

use policy::accounts::{AccountLimits, SourceKind};
use policy::ledger::{BudgetAction, BudgetRule, Budgets, Costs};
use policy::pow::PowPolicy;
use policy::quota::QuotaSpec;
use policy::{compile_file, compile_str};
use std::path::Path;

#[test]
fn full_policy_exposes_every_section() {
    let p = compile_file(Path::new("tests/fixtures/valid/all_sections.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = p.account_limits();
    assert_eq!(a.window_secs, 86_400, "window left at its default");
    assert_eq!(a.live.get(&SourceKind::Ip), Some(&2));
    assert_eq!(a.live.get(&SourceKind::Ipv6_48), Some(&10));
    assert_eq!(a.live.get(&SourceKind::Ipv4_24), None, "a written table replaces the defaults");
    assert_eq!(a.per_day.get(&SourceKind::Ipv4_24), Some(&40));

    let q = p.quotas();
    assert_eq!((q.max_worker_scripts, q.max_queues, q.max_asset_files), (3, 5, 500));
    assert_eq!((q.max_asset_file_bytes, q.max_body_bytes), (1_048_576, 32 * 1024 * 1024));

    assert_eq!(p.costs().claim_credit, 30);
    assert_eq!(p.costs().per_mb_stored, 2);

    let b = p.budgets();
    assert_eq!(b.window_secs, 43_200);
    assert_eq!(
        b.rules,
        vec![
            BudgetRule {
                kind: SourceKind::Ip,
                units: 40,
                window_secs: 43_200,
                action: BudgetAction::HarderPow
            },
            BudgetRule {
                kind: SourceKind::Ip,
                units: 100,
                window_secs: 43_200,
                action: BudgetAction::Refuse
            },
            BudgetRule {
                kind: SourceKind::Ipv6_48,
                units: 500,
                window_secs: 86_400,
                action: BudgetAction::Refuse
            },
        ]
    );

    let w = p.pow();
    assert_eq!(w.extra_checkpoints_per_unit, 0.25);
    assert_eq!((w.max_factor, w.max_work, w.spot_checks), (4, 32_000_000, 6));
    assert_eq!((w.challenge_ttl_secs, w.max_challenges), (300, 50_000));
    // The rest of the policy is untouched by the new sections.
    assert_eq!(p.rule_names(), vec!["create-per-ip"]);
}

#[test]
fn absent_or_empty_sections_take_the_module_defaults() {
    for src in ["version = 1\n", "version = 1\n[accounts]\n[quotas]\n[costs]\n[budgets]\n[pow]\n"] {
        let p = compile_str("p.toml", src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.account_limits(), &AccountLimits::default());
        assert_eq!(p.quotas(), &QuotaSpec::default());
        assert_eq!(p.costs(), &Costs::default());
        assert_eq!(p.budgets(), &Budgets::default());
        assert_eq!(p.pow(), &PowPolicy::default());
    }
}

#[test]
fn the_defaults_stay_within_published_limits() {
    let q = QuotaSpec::default();
    assert!(q.max_d1_databases <= 1 && q.max_queues <= 10 && q.max_hyperdrive_configs <= 2);
    assert!(q.max_asset_files <= 1000 && q.max_asset_file_bytes <= 5 * 1024 * 1024);
    assert!(PowPolicy::default().max_work <= 64_000_000);
    // Every default harder_pow budget is below the refuse budget of its key, or it
    // could never apply (refusal wins).
    let b = Budgets::default();
    for soft in b.rules.iter().filter(|r| r.action == BudgetAction::HarderPow) {
        let hard = b
            .rules
            .iter()
            .find(|r| r.action == BudgetAction::Refuse && r.kind == soft.kind)
            .expect("paired");
        assert!(soft.units < hard.units, "{soft:?} vs {hard:?}");
    }
}

#[test]
fn inline_tables_and_an_empty_budget_list_read_too() {
    let p = compile_str(
        "p.toml",
        "version = 1\nquotas = { max_queues = 3 }\nbudgets = { limit = [] }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.quotas().max_queues, 3);
    assert!(p.budgets().rules.is_empty(), "limit = [] means no budgets");
}

#[test]
fn errors_of_several_sections_are_all_reported_in_file_order() {
    let src = "version = 1\n\n[pow]\nmax_work = 0\n\n[quotas]\nmax_queues = 11\n\n[[rule]]\nname = \"x\"\naction = \"nope\"\n";
    let e = compile_str("p.toml", src).expect_err("three errors").to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(lines[0].starts_with("p.toml:4:12: max_work must be greater than 0"), "{e}");
    assert!(lines[1].starts_with("p.toml:7:14: max_queues = 11 is above"), "{e}");
    assert!(lines[2].starts_with("p.toml:11:10: unknown action \"nope\""), "{e}");
}

#[test]
fn spans_are_offsets_into_the_whole_file_even_after_multibyte_text() {
    // A comment with multi-byte characters before the section: a span relative to the
    // section (or counted in chars) would land on the wrong line or column.
    let src = "version = 1\n# Prüfung – ünïcödé\n[budgets]\n[[budgets.limit]]\nkey = \"ip\"\nunits = -3\n";
    let e = compile_str("p.toml", src).expect_err("negative").to_string();
    assert_eq!(e, "p.toml:6:9: units must be 0 or more, got -3");
}
