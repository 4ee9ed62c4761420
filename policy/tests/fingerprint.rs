//! Golden values for `hf1`: changing any of these is a format change (bump to `hf2`).

use policy::http_fingerprint;

#[test]
fn golden_fingerprints() {
    let wrangler = [
        ("Host", "api.example"),
        ("Authorization", "Bearer secret"),
        ("User-Agent", "wrangler/4.164.0"),
        ("Accept", "*/*"),
        ("Accept-Encoding", "br, gzip, deflate"),
        ("Content-Type", "application/json"),
        ("Content-Length", "12"),
    ];
    let undici = [
        ("host", "api.example"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("accept", "*/*"),
        ("accept-language", "*"),
        ("sec-fetch-mode", "cors"),
        ("user-agent", "undici"),
        ("accept-encoding", "gzip, deflate"),
    ];
    let curl = [("Host", "x"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")];
    let browser = [
        ("Host", "x"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("Accept", "text/html,application/xhtml+xml"),
        ("Accept-Language", "en-US,en;q=0.9,de;q=0.8"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Cookie", "a=b"),
    ];
    let got = [
        http_fingerprint("HTTP/1.1", &wrangler, &[]),
        http_fingerprint("HTTP/1.1", &undici, &[]),
        http_fingerprint("HTTP/2", &curl, &[]),
        http_fingerprint("HTTP/1.1", &browser, &[]),
        http_fingerprint("HTTP/1.1", &[], &[]),
    ];
    let want = [
        "hf1_11_w7n_wrangler_88d30a62b7ad",
        "hf1_11_w3w_undici_4ae0f4a72b53",
        "hf1_20_wnn_curl_042112399351",
        "hf1_11_hf3_mozilla_813e32c09d15",
        "hf1_11_nnn_none_e3b0c44298fc",
    ];
    assert_eq!(got, want);
}

#[test]
fn volatile_headers_and_values_do_not_change_it() {
    let a = [
        ("host", "a"),
        ("user-agent", "curl/8.5.0"),
        ("cookie", "x=1"),
        ("x-forwarded-for", "1.2.3.4"),
    ];
    let b = [("host", "b"), ("user-agent", "curl/7.0"), ("authorization", "Bearer y")];
    assert_eq!(http_fingerprint("HTTP/1.1", &a, &[]), http_fingerprint("HTTP/1.1", &b, &[]));
    let c = [("user-agent", "curl/8.5.0"), ("host", "a")];
    assert_ne!(
        http_fingerprint("HTTP/1.1", &a, &[]),
        http_fingerprint("HTTP/1.1", &c, &[]),
        "order matters"
    );
    let d = [
        ("host", "a"),
        ("cf-connecting-ip", "1.1.1.1"),
        ("true-client-ip", "2.2.2.2"),
        ("user-agent", "curl"),
    ];
    assert_eq!(
        http_fingerprint("HTTP/1.1", &a, &[]),
        http_fingerprint("HTTP/1.1", &d, &["true-client-ip"])
    );
}
