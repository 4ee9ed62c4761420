//! `gateway explain`: a described request run through a policy, step by step.
//!
//! Security teams use it to review a policy before loading it: which route class a
//! request falls in, every key derived from it (client IP after trusted-proxy
//! handling, prefixes, fingerprints, account), each rule that matches with the state
//! of its limits, and the decision with the exact message a client would read.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use policy::{Engine, Request};


/// Arguments of `gateway explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// Request path.
    #[arg(long, default_value = "/client/v4/provisioning/previews")]
    pub path: String,
    /// The TCP peer address (a trusted proxy, or the client itself).
    #[arg(long = "ip", alias = "peer")]
    pub ip: IpAddr,
    /// A request header, `Name: value`; repeat in wire order.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// HTTP version.
    #[arg(long, default_value = "HTTP/1.1")]
    pub http_version: String,
    /// A bearer token: explained by its keyed hash, never printed.
    #[arg(long)]
    pub token: Option<String>,
    /// A JA4 TLS fingerprint, as if the gateway had terminated TLS.
    #[arg(long)]
    pub tls_fp: Option<String>,
    /// Send this many identical requests first, to see the state after a burst.
    #[arg(long, default_value_t = 0)]
    pub after: u32,
}

/// Runs the explanation and returns its text.
pub fn run(args: &ExplainArgs) -> Result<String, String> {
    let compiled = policy::compile_file(&args.policy).map_err(|e| format!("invalid policy:\n{e}"))?;
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header \"{h}\" is not `Name: value`"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header_refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // Explained by a hash: the token itself is never printed.
    let account = args.token.as_deref().map(|t| format!("tok_{}", &policy::accounts::TokenHasher::random().hash(t).to_string()));
    let request = Request {
        method: &args.method,
        path: &args.path,
        peer: args.ip,
        http_version: &args.http_version,
        headers: &header_refs,
        tls_fp: args.tls_fp.as_deref(),
        account: account.as_deref(),
    };
    let engine = Engine::new(compiled);
    for _ in 0..args.after {
        engine.decide(&request);
    }
    Ok(engine.explain(&request).to_string())
}
