//! Deterministic robustness: truncations and byte flips of every fixture never panic.

use std::path::Path;

/// A tiny xorshift so the mutations are the same on every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn sources() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures/errors", "tests/fixtures/valid", "../rules", "../rules/examples"] {
        let Ok(entries) = std::fs::read_dir(Path::new(dir)) else { continue };
        for e in entries.flatten() {
            if e.path().extension().and_then(|x| x.to_str()) == Some("toml") {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    out.push(s);
                }
            }
        }
    }
    out
}

#[test]
fn mutated_policies_never_panic() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let srcs = sources();
    assert!(srcs.len() > 20);
    let specials =
        [b'"', b'[', b']', b'{', b'}', b'=', b'/', b'+', b'\n', b'#', b'0', b'*', 0xff, 0xc3];
    for src in &srcs {
        let bytes = src.as_bytes();
        for cut in (0..=bytes.len()).step_by(3) {
            let _ = policy::compile_str("t.toml", &String::from_utf8_lossy(&bytes[..cut]));
        }
        for _ in 0..300 {
            let mut b = bytes.to_vec();
            for _ in 0..(1 + next(&mut rng) % 4) {
                if b.is_empty() {
                    break;
                }
                let i = (next(&mut rng) as usize) % b.len();
                b[i] = if next(&mut rng).is_multiple_of(2) {
                    specials[(next(&mut rng) as usize) % specials.len()]
                } else {
                    (next(&mut rng) & 0xff) as u8
                };
            }
            let _ = policy::compile_str("t.toml", &String::from_utf8_lossy(&b));
        }
    }
}

#[test]
fn hostile_requests_never_panic() {
    let policy = policy::compile_str(
        "t.toml",
        r#"
version = 1
[client]
trusted_proxies = ["0.0.0.0/0", "::/0"]
tls_fingerprint_header = "cf-ja4"
[[rule]]
name = "all"
action = "limit"
limits = [{ key = "ip+http_fp+tls_fp+account+route+prefix", rate = "5/second", burst = 5 }]
"#,
    )
    .expect("valid");
    let engine = policy::Engine::new(policy);
    let weird = [
        "",
        ",",
        " , ,",
        "[::1",
        "[::1]:x",
        "1.2.3.4:99999",
        "\u{0}",
        "ä,ö",
        "::ffff:1.2.3.4",
        "999.1.1.1",
    ];
    for w in weird {
        let h = [
            ("x-forwarded-for", w),
            ("user-agent", w),
            ("accept", w),
            ("accept-language", w),
            ("cf-ja4", w),
        ];
        for path in ["", "/", "//", "/client/v4/accounts", "?", "/claim/../x", w] {
            let req = policy::Request {
                method: w,
                path,
                peer: "127.0.0.1".parse().expect("ip"),
                http_version: w,
                headers: &h,
                tls_fp: Some(w),
                account: Some(w),
            };
            let _ = engine.decide(&req);
            let _ = engine.explain(&req).to_string();
        }
    }
}
