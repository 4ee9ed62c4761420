use super::*;

fn subject(ip: &str) -> Subject<'static> {
    Subject { ip: ip.parse().expect("ip"), http_fp: None, tls_fp: None }
}

fn target(s: &str) -> BlockTarget {
    s.parse().expect("target")
}

#[test]
fn targets_parse_in_every_spelling_and_clear_host_bits() {
    assert_eq!(target("198.51.100.7"), target("ip:198.51.100.7"));
    assert_eq!(target("198.51.100.9/24").to_string(), "net:198.51.100.0/24");
    assert_eq!(target("::ffff:198.51.100.7"), target("198.51.100.7"));
    assert_eq!(target("http_fp:hf1_x").to_string(), "http_fp:hf1_x");
    assert!("nonsense".parse::<BlockTarget>().is_err());
    assert!("http_fp:".parse::<BlockTarget>().is_err());
    assert!("198.51.100.0/33".parse::<BlockTarget>().is_err());
}

#[test]
fn a_block_refuses_until_its_ttl_and_unblock_lifts_it_at_once() {
    let list = BlockList::default();
    assert!(list.check(&subject("198.51.100.7"), 1_000).is_none());
    list.block(target("198.51.100.7"), "scraping claim URLs", 60, 1_000).expect("block");
    let hit = list.check(&subject("198.51.100.7"), 1_000).expect("blocked");
    assert_eq!(hit.reason, "scraping claim URLs");
    assert!(list.check(&subject("198.51.100.8"), 1_000).is_none(), "only that address");
    assert!(list.check(&subject("198.51.100.7"), 1_059).is_some(), "still in force");
    assert!(list.check(&subject("198.51.100.7"), 1_060).is_none(), "lifted at its TTL");
    assert!(list.list(1_060).is_empty());

    list.block(target("198.51.100.7"), "again", 60, 2_000).expect("block");
    assert!(list.unblock(&target("198.51.100.7"), 2_001));
    assert!(list.check(&subject("198.51.100.7"), 2_001).is_none());
    assert!(!list.unblock(&target("198.51.100.7"), 2_001), "nothing left to lift");
    assert_eq!(list.refused_total(), 2);
}

#[test]
fn the_most_specific_block_gives_the_reason() {
    let list = BlockList::default();
    list.block(target("198.51.0.0/16"), "network", 600, 0).expect("block");
    list.block(target("198.51.100.0/24"), "subnet", 600, 0).expect("block");
    list.block(target("198.51.100.7"), "address", 600, 0).expect("block");
    assert_eq!(list.check(&subject("198.51.100.7"), 1).map(|b| b.reason), Some("address".into()));
    assert_eq!(list.check(&subject("198.51.100.8"), 1).map(|b| b.reason), Some("subnet".into()));
    assert_eq!(list.check(&subject("198.51.7.8"), 1).map(|b| b.reason), Some("network".into()));
    assert!(list.check(&subject("2001:db8::1"), 1).is_none());
}

#[test]
fn fingerprint_blocks_ask_for_the_fingerprint() {
    let list = BlockList::default();
    list.block(target("10.0.0.0/8"), "lab", 60, 0).expect("block");
    assert!(!list.wants_fingerprint());
    list.block(target("http_fp:hf1_bad"), "bot", 60, 0).expect("block");
    assert!(list.wants_fingerprint());
    let s =
        Subject { ip: "192.0.2.1".parse().expect("ip"), http_fp: Some("hf1_bad"), tls_fp: None };
    assert_eq!(list.check(&s, 1).map(|b| b.reason), Some("bot".into()));
    assert!(list.unblock(&target("http_fp:hf1_bad"), 1));
    assert!(!list.wants_fingerprint());
}

#[test]
fn bad_ttls_and_reasons_are_refused() {
    let list = BlockList::default();
    assert_eq!(list.block(target("192.0.2.1"), "x", 0, 0), Err(BlockError::Ttl));
    assert_eq!(list.block(target("192.0.2.1"), "x", MAX_TTL_SECS + 1, 0), Err(BlockError::Ttl));
    assert_eq!(list.block(target("192.0.2.1"), " ", 60, 0), Err(BlockError::Reason));
    assert_eq!(list.block(target("192.0.2.1"), "a\r\nb", 60, 0), Err(BlockError::Reason));
    assert!(list.list(0).is_empty());
}

#[test]
fn a_snapshot_restores_what_is_still_in_force() {
    let list = BlockList::default();
    list.block(target("192.0.2.1"), "short", 10, 0).expect("block");
    list.block(target("192.0.2.0/24"), "long", 100, 0).expect("block");
    let snapshot = list.snapshot();
    let json = serde_json::to_string(&snapshot).expect("json");
    let back: Vec<Block> = serde_json::from_str(&json).expect("parse");
    let other = BlockList::default();
    other.restore(back, 50);
    let listed: Vec<String> = other.list(50).iter().map(|b| b.target.to_string()).collect();
    assert_eq!(listed, ["net:192.0.2.0/24"]);
    assert_eq!(other.check(&subject("192.0.2.1"), 50).map(|b| b.reason), Some("long".into()));
}
