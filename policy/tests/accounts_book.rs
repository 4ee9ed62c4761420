//! Account book: token attribution, lifecycle events, per-source account limits.

mod common;

use common::{errors_of, policy_with};
use policy::accounts::{
    AccountBook, AccountLimitKind, AccountLimits, AccountState, Event, SourceKey, SourceKeys,
    SourceKind, TokenHasher,
};

const TOKEN: &str = "tmp-token-SECRET-5f3a9c";

fn v6(addr: &str) -> SourceKeys {
    SourceKeys::new(addr.parse().expect("addr"), Some("hf1_11_abc".into()), None)
}

#[test]
fn token_from_another_ip_is_attributed_to_its_creator() {
    let hasher = TokenHasher::random();
    let book = AccountBook::new();
    let creator = v6("2001:db8:1:2::7");
    assert!(book.record_created("acc1", hasher.hash(TOKEN), 1000, 4600, creator.clone()));
    // Later call, another address, same bearer token.
    let h = hasher.hash_authorization(&format!("Bearer {TOKEN}")).expect("bearer");
    let info = book.by_token(&h).expect("known token");
    assert_eq!(info.account_id, "acc1");
    assert_eq!(info.source, creator);
    assert!(book.by_token(&hasher.hash("other")).is_none());
    // A second hasher (another process, random key) does not recognise it.
    assert!(book.by_token(&TokenHasher::random().hash(TOKEN)).is_none());
    // Replayed creation cannot rewrite the creator.
    assert!(!book.record_created("acc1", hasher.hash(TOKEN), 1000, 4600, v6("2001:db8:ffff::1")));
    assert_eq!(book.get("acc1").map(|a| a.source), Some(creator));
}

#[test]
fn configured_keys_agree_and_short_keys_are_refused() {
    let a = TokenHasher::with_key(b"0123456789abcdef-shared").expect("key");
    let b = TokenHasher::with_key(b"0123456789abcdef-shared").expect("key");
    assert_eq!(a.hash(TOKEN), b.hash(TOKEN));
    assert!(TokenHasher::with_key(b"short").is_err());
    assert!(a.hash_authorization("Basic abc").is_none());
    assert!(a.hash_authorization("Bearer ").is_none());
}

#[test]
fn debug_output_never_contains_the_token() {
    let hasher = TokenHasher::with_key(b"0123456789abcdef-shared").expect("key");
    let h = hasher.hash(TOKEN);
    let book = AccountBook::new();
    book.record_created("acc1", h, 0, 3600, v6("2001:db8::1"));
    let info = book.by_token(&h).expect("info");
    for text in [
        format!("{hasher:?}"),
        format!("{h:?}"),
        format!("{h}"),
        format!("{book:?}"),
        format!("{info:?}"),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
    // The hash's Debug shows only a short prefix.
    assert!(format!("{h:?}").len() < 30);
}

#[test]
fn source_keys_cover_ip_prefixes_and_fingerprints() {
    let s = SourceKeys::new(
        "2001:db8:1:2:3:4:5:6".parse().expect("ip"),
        Some("hf".into()),
        Some("t13d".into()),
    );
    let keys: Vec<String> = s.keys().iter().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        [
            "ip:2001:db8:1:2:3:4:5:6",
            "ipv6/64:2001:db8:1:2::/64",
            "ipv6/56:2001:db8:1::/56",
            "ipv6/48:2001:db8:1::/48",
            "ipv6/32:2001:db8::/32",
            "http_fp:hf",
            "tls_fp:t13d"
        ]
    );
    for k in s.keys() {
        assert_eq!(k.to_string().parse::<SourceKey>().expect("round trip"), k);
    }
    let v4 = SourceKeys::new("192.0.2.77".parse().expect("ip"), None, None);
    assert_eq!(
        v4.key_of(SourceKind::Ipv4_24).map(|k| k.to_string()).as_deref(),
        Some("ipv4/24:192.0.2.0/24")
    );
    assert_eq!(
        v4.key_of(SourceKind::Ipv4_16).map(|k| k.to_string()).as_deref(),
        Some("ipv4/16:192.0.0.0/16")
    );
    assert!(v4.key_of(SourceKind::Ipv6_48).is_none());
    // IPv4-mapped addresses from a dual-stack socket count as IPv4.
    let mapped = SourceKeys::new("::ffff:192.0.2.77".parse().expect("ip"), None, None);
    assert_eq!(mapped, v4);
    assert!("ipv6/48:2001:db8::/64".parse::<SourceKey>().is_err());
    // A record written before the /16 was tracked reads back with it.
    let old = r#"{"ip":"192.0.2.77","prefixes":["192.0.2.0/24"],"http_fp":null,"tls_fp":null}"#;
    let read: SourceKeys = serde_json::from_str(old).expect("old record");
    assert_eq!(read, v4);
    let again: SourceKeys =
        serde_json::from_str(&serde_json::to_string(&v4).expect("json")).expect("round trip");
    assert_eq!(again, v4);
}

#[test]
fn lifecycle_is_idempotent_and_expiry_needs_no_event() {
    let h = TokenHasher::random();
    let book = AccountBook::new();
    book.record_created("a", h.hash("ta"), 0, 3600, v6("2001:db8::1"));
    book.record_created("b", h.hash("tb"), 0, 3600, v6("2001:db8::1"));
    book.record_created("c", h.hash("tc"), 100, 3700, v6("2001:db8::1"));
    assert!(book.mark("a", Event::Claimed, 1200));
    assert!(!book.mark("a", Event::Claimed, 1300));
    assert!(!book.mark("a", Event::Expired, 3600));
    assert!(!book.mark("nope", Event::Deleted, 1));
    assert!(book.expired_unclaimed(3599).is_empty());
    // Past expiresAt with no claim counts as expired unclaimed, with no event at all.
    let ids: Vec<String> = book.expired_unclaimed(3600).into_iter().map(|a| a.account_id).collect();
    assert_eq!(ids, ["b"]);
    let taken: Vec<String> =
        book.take_expired_unclaimed(3700).into_iter().map(|a| a.account_id).collect();
    assert_eq!(taken, ["b", "c"]);
    assert!(book.take_expired_unclaimed(9999).is_empty(), "each account is taken once");
    assert!(book.mark("b", Event::Deleted, 3800));
    assert!(!book.mark("b", Event::Deleted, 3900));
    assert_eq!(book.get("b").map(|a| a.state), Some(AccountState::Deleted));
    assert_eq!(book.expired_unclaimed(9999).len(), 2);
    assert_eq!(
        book.prune(3650),
        2,
        "b (expired 3600) and a (claimed 1200) are forgotten, c (3700) stays"
    );
    assert!(book.by_token(&h.hash("tb")).is_none());
    assert!(book.get("c").is_some());
}

#[test]
fn live_and_per_day_counts_per_source_key() {
    let h = TokenHasher::random();
    let book = AccountBook::new();
    // Two addresses in one /48 but different /64s.
    book.record_created("a", h.hash("a"), 0, 3600, v6("2001:db8:0:1::1"));
    book.record_created("b", h.hash("b"), 600, 4200, v6("2001:db8:0:2::1"));
    let p48: SourceKey = "ipv6/48:2001:db8::/48".parse().expect("key");
    let p64: SourceKey = "ipv6/64:2001:db8:0:1::/64".parse().expect("key");
    let fp = SourceKey::HttpFp("hf1_11_abc".into());
    assert_eq!(book.live_count_for(&p48, 700), 2);
    assert_eq!(book.live_count_for(&p64, 700), 1);
    assert_eq!(book.live_count_for(&fp, 700), 2);
    assert_eq!(book.live_count_for(&p48, 3600), 1, "a expired at 3600");
    book.mark("b", Event::Claimed, 1000);
    assert_eq!(book.live_count_for(&p48, 1000), 1, "claimed accounts are not temporary any more");
    assert_eq!(book.created_since(&p48, 0), 2);
    assert_eq!(book.created_since(&p48, 601), 0);
}

#[test]
fn account_limits_refuse_with_retry_after() {
    let limits = AccountLimits {
        window_secs: 86_400,
        live: [(SourceKind::Ipv6_64, 2)].into(),
        per_day: [(SourceKind::Ipv6_48, 3)].into(),
    };
    let h = TokenHasher::random();
    let book = AccountBook::new();
    let src = v6("2001:db8:0:1::1");
    assert!(limits.check(&book, &src, 0).is_ok());
    book.record_created("a", h.hash("a"), 0, 3600, src.clone());
    book.record_created("b", h.hash("b"), 100, 3700, src.clone());
    let r = limits.check(&book, &src, 200).expect_err("2 live in the /64");
    assert_eq!(r.limit_kind, AccountLimitKind::Live);
    assert_eq!((r.limit, r.current, r.retry_after_secs), (2, 2, 3400));
    assert!(r.message.contains("2001:db8:0:1::/64"), "{}", r.message);
    assert!(r.message.contains("3400 seconds"), "{}", r.message);
    // Another /64 in the same /48 is fine until the per-day /48 limit.
    let other = v6("2001:db8:0:2::1");
    assert!(limits.check(&book, &other, 200).is_ok());
    book.record_created("c", h.hash("c"), 300, 3900, other.clone());
    let r = limits.check(&book, &other, 400).expect_err("3 created today in the /48");
    assert_eq!(r.limit_kind, AccountLimitKind::PerWindow);
    assert_eq!((r.limit, r.current), (3, 3));
    assert_eq!(r.retry_after_secs, 86_400 - 400, "the first creation (t=0) must leave the window");
    assert!(limits.check(&book, &other, 86_400).is_ok());
}

#[test]
fn accounts_section_compiles_with_defaults_and_located_errors() {
    assert_eq!(policy_with("").account_limits(), &AccountLimits::default());
    let p =
        policy_with("[accounts]\nwindow_secs = 3600\n[accounts.live]\nip = 1\n\"ipv6/48\" = 5\n");
    let l = p.account_limits();
    assert_eq!(l.window_secs, 3600);
    assert_eq!(l.live.len(), 2);
    assert_eq!(l.per_day, AccountLimits::default().per_day);
    assert_eq!(
        errors_of("[accounts]\nwindow = 3\n"),
        "p.toml:3:1: unknown field \"window\", expected one of \"window_secs\", \"live\", \"per_day\"; did you mean \"window_secs\"?"
    );
    assert_eq!(
        errors_of("[accounts.live]\n\"ipv6/47\" = 5\n"),
        "p.toml:3:1: unknown source key kind \"ipv6/47\", expected one of \"ip\", \"ipv4/24\", \"ipv4/16\", \"ipv6/64\", \"ipv6/56\", \"ipv6/48\", \"ipv6/32\", \"http_fp\", \"tls_fp\"; did you mean \"ipv6/48\"?"
    );
    assert_eq!(
        errors_of("[accounts.per_day]\nip = -1\n"),
        "p.toml:3:6: per_day.\"ip\" must be 0 or more, got -1"
    );
}

#[test]
fn accounts_are_counted_by_state() {
    let hasher = TokenHasher::random();
    let book = AccountBook::new();
    for (id, expires) in
        [("live", 5000), ("claimed", 5000), ("told-expired", 5000), ("past", 2000), ("gone", 5000)]
    {
        assert!(book.record_created(id, hasher.hash(id), 1000, expires, v6("2001:db8::1")));
    }
    assert!(book.mark("claimed", Event::Claimed, 1500));
    assert!(book.mark("told-expired", Event::Expired, 1500));
    assert!(book.mark("gone", Event::Deleted, 1500));
    // At 3000 "past" is past its expiry with no event: expired, not live.
    assert_eq!(book.count_by_state(3000), [1, 1, 2, 1]);
    assert_eq!(book.count_by_state(1500), [2, 1, 1, 1]);
}
