//! Shared helpers: build engines on a fake clock and requests from a few fields.
#![allow(dead_code)]

use policy::clock::FakeRelativeClock;
use policy::{compile_str, Engine, Request};
use std::net::IpAddr;
use std::time::Duration;

pub const CHALLENGE: &str = "/client/v4/provisioning/previews/challenge";
pub const CREATE: &str = "/client/v4/provisioning/previews";

pub fn engine(src: &str) -> (Engine<FakeRelativeClock>, FakeRelativeClock) {
    let policy = compile_str("test.toml", src).unwrap_or_else(|e| panic!("{e}"));
    let clock = FakeRelativeClock::default();
    (Engine::with_clock(policy, clock.clone()), clock)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn req<'a>(
    method: &'a str,
    path: &'a str,
    peer: IpAddr,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request { method, path, peer, http_version: "HTTP/1.1", headers, tls_fp: None, account: None }
}

pub fn advance(clock: &FakeRelativeClock, secs: u64) {
    clock.advance(Duration::from_secs(secs));
}

/// Compiles `version = 1` followed by `sections`, panicking with the errors if any.
pub fn policy_with(sections: &str) -> policy::Policy {
    compile_str("p.toml", &format!("version = 1\n{sections}")).unwrap_or_else(|e| panic!("{e}"))
}

/// The located errors of `version = 1` followed by `sections`, one per line.
pub fn errors_of(sections: &str) -> String {
    match compile_str("p.toml", &format!("version = 1\n{sections}")) {
        Ok(_) => "<compiled without error>".to_string(),
        Err(e) => e.to_string(),
    }
}
