//! The loopback guard every outgoing URL passes.
//!
//! Traffic from this tool may only ever reach this machine: a load test
//! aimed at someone else's server is an attack. The scenario's target and
//! admin URLs are checked when the file is read, and each claim URL a
//! platform hands out is checked before it is followed.

use std::net::IpAddr;

use reqwest::Url;

/// Refuse any URL that is not plain HTTP(S) to 127.0.0.0/8, ::1 or
/// `localhost`.
pub fn check_loopback_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("`{url}`: only http and https are supported"));
    }
    let host = parsed.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !ok {
        return Err(format!(
            "refusing target host {:?}: the load tester only sends to loopback (127.0.0.0/8, ::1, localhost)",
            parsed.host_str().unwrap_or("")
        ));
    }
    Ok(parsed)
}
