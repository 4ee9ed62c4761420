//! The identity value: trusted proxies, untrusted peers, IPv4-mapped peers, token keys.

use super::*;
use policy::accounts::SourceKeys;

const BEHIND_PROXY: &str = r#"
version = 1
[client]
trusted_proxies = ["127.0.0.1/32"]
ip_header = "cf-connecting-ip"
tls_fingerprint_header = "cf-ja4"
"#;

fn policy(text: &str) -> Policy {
    policy::compile_str("p.toml", text).expect("policy")
}

fn header(pairs: &[(&str, &str)]) -> RequestHeader {
    let mut req =
        RequestHeader::build("POST", b"/client/v4/provisioning/previews", None).expect("request");
    for (n, v) in pairs {
        req.append_header(n.to_string(), *v).expect("header");
    }
    req
}

const CF_HEADERS: &[(&str, &str)] = &[
    ("user-agent", "wrangler/4"),
    ("accept", "*/*"),
    ("cf-connecting-ip", "203.0.113.7"),
    ("cf-ja4", "t13d1516h2_8daaf6152771_02713d6af862"),
];

#[test]
fn a_trusted_proxy_speaks_for_the_client_address_and_tls_fingerprint() {
    let p = policy(BEHIND_PROXY);
    let req = header(CF_HEADERS);
    let parts =
        RequestParts::read(&req, "127.0.0.1".parse().unwrap(), Some("own-ja4".into()), None);
    let id = parts.identity(&p);
    assert!(id.via_trusted_proxy);
    assert_eq!(id.client_ip, "203.0.113.7".parse::<IpAddr>().unwrap());
    assert_eq!(
        id.tls_fp,
        Some("t13d1516h2_8daaf6152771_02713d6af862"),
        "the proxy's JA4, not the hop's own"
    );
    assert_eq!(id.route, policy::RouteClass::ProvisionCreate);
    // The headers the proxy adds do not change the HTTP fingerprint: the same client
    // sending directly has the same one.
    let direct = header(&CF_HEADERS[..2]);
    let direct_parts = RequestParts::read(&direct, "203.0.113.7".parse().unwrap(), None, None);
    assert_eq!(id.http_fp(), direct_parts.identity(&p).http_fp());
    assert!(id.http_fp().starts_with("hf1_"));
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
    let p = policy(BEHIND_PROXY);
    let req = header(CF_HEADERS);
    let parts =
        RequestParts::read(&req, "198.51.100.9".parse().unwrap(), Some("own-ja4".into()), None);
    let id = parts.identity(&p);
    assert!(!id.via_trusted_proxy);
    assert_eq!(id.client_ip, "198.51.100.9".parse::<IpAddr>().unwrap());
    assert_eq!(id.tls_fp, Some("own-ja4"), "a forged cf-ja4 is ignored");
}

#[test]
fn an_ipv4_mapped_peer_is_its_ipv4_address() {
    let p = policy(BEHIND_PROXY);
    let req = header(CF_HEADERS);
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let parts = RequestParts::read(&req, mapped, None, None);
    let id = parts.identity(&p);
    assert_eq!(id.peer, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(id.via_trusted_proxy, "the mapped loopback is the trusted proxy");
    assert_eq!(id.client_ip, "203.0.113.7".parse::<IpAddr>().unwrap());
    let plain = RequestParts::read(&req, "::ffff:198.51.100.1".parse().unwrap(), None, None);
    assert_eq!(plain.identity(&p).client_ip, "198.51.100.1".parse::<IpAddr>().unwrap());
}

#[test]
fn a_token_is_keyed_by_its_account_when_known_and_by_a_keyed_hash_otherwise() {
    let p = policy("version = 1\n");
    let tracker = Tracker::new(&p, None, None).expect("tracker");
    let answer = serde_json::json!({"success": true, "result": {"account": {
        "id": "acct-1", "apiToken": "known-token", "expiresAt": "1970-01-01T01:00:00Z"}}});
    let creator = SourceKeys::new("198.51.100.1".parse().unwrap(), None, None);
    tracker.record_created(answer.to_string().as_bytes(), creator, 0);

    let known = header(&[("authorization", "Bearer known-token")]);
    let parts = RequestParts::read(&known, "198.51.100.1".parse().unwrap(), None, Some(&tracker));
    assert_eq!(parts.account_key.as_deref(), Some("acct-1"));
    assert_eq!(parts.account.as_ref().map(|a| a.account_id.as_str()), Some("acct-1"));

    let unknown = header(&[("authorization", "bearer random-token")]);
    let parts = RequestParts::read(&unknown, "198.51.100.1".parse().unwrap(), None, Some(&tracker));
    let key = parts.account_key.clone().expect("a key");
    assert!(parts.account.is_none());
    assert_eq!(key.len(), 4 + 32, "tok_ and 16 bytes of hex: {key}");
    assert!(key.starts_with("tok_") && !key.contains("random-token"));
    let again = RequestParts::read(&unknown, "192.0.2.1".parse().unwrap(), None, Some(&tracker));
    assert_eq!(again.account_key, Some(key), "the same token is the same key");
    assert_eq!(parts.identity(&p).account(), None, "an unknown token is no account to the policy");

    let none = header(&[("authorization", "Basic abc")]);
    assert_eq!(
        RequestParts::read(&none, "192.0.2.1".parse().unwrap(), None, Some(&tracker)).account_key,
        None
    );
}

#[test]
fn bearer_tokens_are_read_case_insensitively_and_garbage_is_ignored() {
    let token = |v: Option<&str>| {
        let req = match v {
            Some(v) => header(&[("authorization", v)]),
            None => header(&[]),
        };
        bearer_token(&req).map(str::to_string)
    };
    assert_eq!(token(Some("Bearer abc")).as_deref(), Some("abc"));
    assert_eq!(token(Some("bearer  abc ")).as_deref(), Some("abc"));
    assert_eq!(token(Some("Basic abc")), None);
    assert_eq!(token(Some("Bearer ")), None);
    assert_eq!(token(Some("Bearer")), None);
    assert_eq!(token(None), None);
}

#[test]
fn versions_map_without_allocating() {
    assert_eq!(version_str(http::Version::HTTP_11), "HTTP/1.1");
    assert_eq!(version_str(http::Version::HTTP_2), "HTTP/2");
}
