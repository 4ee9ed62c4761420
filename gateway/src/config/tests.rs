//! Unit tests of the configuration loader (the fixtures in `tests/fixtures/config/`
//! pin every error message).

use super::*;

const GOOD: &str =
    "[server]\nlisten = [\"127.0.0.1:8787\"]\n[upstream]\nurl = \"http://127.0.0.1:9\"\n";

#[test]
fn good_config_compiles_with_defaults() {
    let c = GatewayConfig::parse("g.toml", GOOD).expect("valid");
    assert_eq!(c.listen, vec!["127.0.0.1:8787".parse().unwrap()]);
    assert_eq!(c.upstream.addr, "127.0.0.1:9".parse().unwrap());
    assert!(!c.upstream.tls);
    assert_eq!(c.upstream.host_header, "127.0.0.1:9");
    assert_eq!(c.grace_period, DEFAULT_GRACE);
}

#[test]
fn unknown_key_is_located() {
    let src = GOOD.replace("[upstream]\n", "[upstream]\nconect_timeout_ms = 5\n");
    let e = GatewayConfig::parse("g.toml", &src).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.to_string().starts_with("g.toml:4:1: unknown field \"conect_timeout_ms\""), "{e}");
}

#[test]
fn bad_listen_and_scheme_are_located() {
    let e =
        GatewayConfig::parse("g.toml", &GOOD.replace("127.0.0.1:8787", "localhost")).unwrap_err();
    assert_eq!((e.line, e.column), (2, 11), "{e}");
    let e =
        GatewayConfig::parse("g.toml", &GOOD.replace("http://127.0.0.1:9", "ftp://x")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "g.toml:4:7: upstream.url \"ftp://x\" must start with http:// or https://"
    );
}

#[test]
fn columns_count_characters_and_offsets_inside_one_are_clamped() {
    let src = "a = \"bücher\"\nb = 1";
    assert_eq!(line_col(src, src.find('r').unwrap_or_default()), (1, 11));
    let inside_u = src.find('ü').unwrap_or_default() + 1;
    assert_eq!(line_col(src, inside_u), (1, 7));
    assert_eq!(line_col(src, src.len() + 10), (2, 6));
}

#[test]
fn https_defaults_to_443_and_sni_host() {
    let src = GOOD.replace("http://127.0.0.1:9", "https://127.0.0.1");
    let c = GatewayConfig::parse("g.toml", &src).expect("valid");
    assert!(c.upstream.tls);
    assert_eq!(c.upstream.addr.port(), 443);
    assert_eq!(c.upstream.sni, "127.0.0.1");
}
