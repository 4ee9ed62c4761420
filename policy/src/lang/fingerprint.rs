//! Our own HTTP client fingerprint, `hf1_...` (algorithm in FINGERPRINT.md).
//!
//! Not JA4H (FoxIO-licensed): nothing here follows its format or algorithm. The goal is a
//! stable, cheap label that stays the same while one tool rotates addresses, so limits
//! can count by "this kind of client" as well as by network.

use sha2::{Digest, Sha256};

/// Headers left out of the name list: they vary per request or are added by proxies,
/// so including them would split one client into many fingerprints.
const VOLATILE: [&str; 16] = [
    "cookie",
    "authorization",
    "content-length",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "via",
    "cf-connecting-ip",
    "cf-ray",
    "cf-ja4",
    "cf-ipcountry",
    "cdn-loop",
    "true-client-ip",
];

/// Computes `hf1_<ver>_<shape>_<product>_<names>` for a request. `extra_volatile` is the
/// policy's own client-ip and TLS-fingerprint headers, also left out.
pub fn http_fingerprint(
    http_version: &str,
    headers: &[(&str, &str)],
    extra_volatile: &[&str],
) -> String {
    let ver = match http_version.trim().to_ascii_uppercase().as_str() {
        "HTTP/1.0" | "1.0" => "10",
        "HTTP/1.1" | "1.1" => "11",
        "HTTP/2" | "HTTP/2.0" | "2" | "2.0" => "20",
        "HTTP/3" | "HTTP/3.0" | "3" | "3.0" => "30",
        _ => "xx",
    };
    let get =
        |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    let shape = [
        accept_shape(get("accept")),
        encoding_shape(get("accept-encoding")),
        language_shape(get("accept-language")),
    ];
    let product = product_token(get("user-agent"));
    let mut h = Sha256::new();
    let mut first = true;
    for (name, _) in headers {
        let lower = name.to_ascii_lowercase();
        if VOLATILE.contains(&lower.as_str())
            || extra_volatile.iter().any(|v| v.eq_ignore_ascii_case(&lower))
        {
            continue;
        }
        if !first {
            h.update(b",");
        }
        first = false;
        h.update(lower.as_bytes());
    }
    let digest = h.finalize();
    let names = hex::encode(&digest[..6]);
    format!("hf1_{ver}_{}{}{}_{product}_{names}", shape[0], shape[1], shape[2])
}

/// `n` none, `w` only `*/*`, `j` JSON first, `h` HTML first, `o` anything else.
fn accept_shape(v: Option<&str>) -> char {
    let Some(v) = v else { return 'n' };
    let first = v.split(',').next().unwrap_or("").split(';').next().unwrap_or("").trim();
    match first {
        "*/*" => 'w',
        f if f.contains("json") => 'j',
        "text/html" => 'h',
        _ => 'o',
    }
}

/// `n` none, else one hex digit: gzip=1, deflate=2, br=4, zstd=8 (others ignored).
fn encoding_shape(v: Option<&str>) -> char {
    let Some(v) = v else { return 'n' };
    let mut bits = 0u32;
    for item in v.split(',') {
        match item.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "gzip" => bits |= 1,
            "deflate" => bits |= 2,
            "br" => bits |= 4,
            "zstd" => bits |= 8,
            _ => {}
        }
    }
    char::from_digit(bits, 16).unwrap_or('0')
}

/// `n` none, `w` only `*`, else the number of languages listed, 1 to 9.
fn language_shape(v: Option<&str>) -> char {
    let Some(v) = v else { return 'n' };
    if v.trim() == "*" {
        return 'w';
    }
    let n = v.split(',').filter(|s| !s.trim().is_empty()).count().min(9) as u32;
    char::from_digit(n, 10).unwrap_or('0')
}

/// The User-Agent's first product name, lowercased, `[a-z0-9-]`, at most 16 chars;
/// `none` without a User-Agent, `other` if nothing usable is left.
fn product_token(v: Option<&str>) -> String {
    let Some(v) = v else { return "none".into() };
    let token: String = v
        .trim()
        .split(['/', ' ', '(', ';'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(16)
        .collect();
    if token.is_empty() {
        "other".into()
    } else {
        token
    }
}
