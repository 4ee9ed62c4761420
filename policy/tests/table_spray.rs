//! A key spray against a full table, in-process on a fake clock: 200,000 keys from one
//! IPv4 /24 must not throttle a newcomer from another network; and `match.account`,
//! which gives requests without a known account a budget apart.

mod common;

use common::{engine, ip};
use policy::Request;

/// `rules/default.toml` as shipped: its deploy-read limit and its 100,000-key tables.
fn shipped() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.toml");
    std::fs::read_to_string(path).expect("rules/default.toml")
}

fn read<'a>(peer: &str, account: &'a str) -> Request<'a> {
    Request {
        method: "GET",
        path: "/client/v4/accounts/0123/workers/scripts",
        peer: ip(peer),
        http_version: "HTTP/1.1",
        headers: &[],
        tls_fp: None,
        account: Some(account),
    }
}

fn table_keys(e: &policy::Engine<policy::clock::FakeRelativeClock>, limit: &str) -> (usize, u64) {
    let s = e.stats();
    let t = s.tables.iter().find(|t| t.limit == limit).expect("the limit's table");
    (t.keys, t.overflowed)
}

#[test]
fn a_spray_of_200000_keys_from_one_network_does_not_throttle_a_newcomer() {
    let (e, _clock) = engine(&shipped());
    let limit = "deploy-read-per-account/account";
    let mut admitted = 0u32;
    // 200,000 accounts the attacker made up (or really holds), spread over its /24;
    // the fake clock never moves, so no bucket is fresh again and no sweep frees room.
    for i in 0..200_000u32 {
        let account = format!("acct-{i:06}");
        let peer = format!("198.51.100.{}", i % 256);
        if e.decide(&read(&peer, &account)).is_allowed() {
            admitted += 1;
        }
    }
    let (keys, overflowed) = table_keys(&e, limit);
    // 100,000 own buckets, then the /24's overflow bucket: its burst of 60.
    assert_eq!(admitted, 100_000 + 60, "the spray past the cap shares its network's bucket");
    assert_eq!(keys, 100_001, "the table is bounded: max_keys plus one network bucket");
    assert_eq!(overflowed, 60);
    // A new honest account elsewhere has a fresh network bucket: it is not throttled.
    let honest = read("203.0.113.9", "acct-honest");
    for n in 0..60 {
        assert!(e.decide(&honest).is_allowed(), "honest read {n} refused");
    }
    assert!(!e.decide(&honest).is_allowed(), "and its own burst still holds");
    // The sprayer's next newcomer is still refused.
    assert!(!e.decide(&read("198.51.100.7", "acct-next")).is_allowed());
}

#[test]
fn overflow_buckets_are_bounded_when_the_spray_comes_from_many_networks() {
    let (e, _clock) = engine(
        r#"
version = 1
[tables]
max_keys = 80
[[rule]]
name = "per-account"
action = "limit"
limits = [{ key = "account", rate = "1/hour", burst = 1 }]
"#,
    );
    // One key from each of 1,000 networks: 80 own buckets, then one bucket per network
    // up to an eighth over the cap, then the last shared bucket.
    let mut admitted = 0;
    for i in 0..1000u32 {
        let account = format!("a{i}");
        let peer = format!("10.{}.{}.1", i / 256, i % 256);
        if e.decide(&read(&peer, &account)).is_allowed() {
            admitted += 1;
        }
    }
    let (keys, _) = table_keys(&e, "per-account/account");
    assert_eq!(keys, 80 + 80 / 8 + 1 + 1, "own keys, network buckets, the shared bucket");
    assert_eq!(admitted, 80 + 11 + 1);
}

#[test]
fn a_match_on_account_tells_known_accounts_from_the_rest() {
    let (e, _clock) = engine(
        r#"
version = 1
[[rule]]
name = "no-known-account"
match = { account = "unknown" }
action = "limit"
limits = [{ key = "prefix", rate = "1/hour", burst = 1 }]
[[rule]]
name = "known-accounts"
match = { account = "known" }
action = "limit"
limits = [{ key = "account", rate = "1/hour", burst = 2 }]
"#,
    );
    let anonymous = Request { account: None, ..read("198.51.100.1", "") };
    assert!(e.decide(&anonymous).is_allowed());
    let d = e.decide(&Request { peer: ip("198.51.100.2"), ..anonymous });
    assert_eq!(
        d.rule.as_deref(),
        Some("no-known-account"),
        "one bucket per /24 without an account"
    );
    for _ in 0..2 {
        assert!(
            e.decide(&read("198.51.100.3", "acct-1")).is_allowed(),
            "a known account has its own"
        );
    }
    assert_eq!(e.decide(&read("198.51.100.3", "acct-1")).rule.as_deref(), Some("known-accounts"));
}
