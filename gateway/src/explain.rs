//! `gateway explain`: a described request run through a policy, step by step.
//!
//! Security teams use it to review a policy before loading it: which route class a
//! request falls in, every key derived from it (client IP after trusted-proxy
//! handling, prefixes, fingerprints, account), each rule that matches with the state
//! of its limits, and the decision with the exact message a client would read.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use pingora::http::RequestHeader;
use policy::Engine;

use crate::stage::identify::RequestParts;
use crate::tracker::Tracker;

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
    /// The running gateway's `[admin] accounts_file`: tokens are then hashed with its
    /// key and mapped to the accounts it made, so the keys printed are the ones the
    /// gateway counts by. Without it a token is hashed with a one-off key.
    #[arg(long)]
    pub accounts_file: Option<PathBuf>,
    /// A JA4 TLS fingerprint, as if the gateway had terminated TLS.
    #[arg(long)]
    pub tls_fp: Option<String>,
    /// Send this many identical requests first, to see the state after a burst.
    #[arg(long, default_value_t = 0)]
    pub after: u32,
}

/// Runs the explanation and returns its text.
pub fn run(args: &ExplainArgs) -> Result<String, String> {
    let compiled =
        policy::compile_file(&args.policy).map_err(|e| format!("invalid policy:\n{e}"))?;
    let header = request_header(args)?;
    let tracker = match &args.accounts_file {
        Some(file) => {
            let key = crate::journal::key_path(file);
            if !key.exists() {
                return Err(format!("{}: no token key beside the accounts file (is it the gateway's accounts_file?)", key.display()));
            }
            Tracker::new(&compiled, None, Some(file.clone()))
                .map_err(|e| format!("{}: {e}", file.display()))?
        }
        None => Tracker::new(&compiled, None, None).map_err(|e| e.to_string())?,
    };
    let own_tls_fp: Option<Arc<str>> = args.tls_fp.as_deref().map(Arc::from);
    let engine = Engine::new(compiled);
    let policy = engine.current_policy();
    // The same two calls as the gateway's identify stage: the same keys.
    let parts = RequestParts::read(&header, args.ip, own_tls_fp, Some(&tracker));
    let id = parts.identity(&policy);
    for _ in 0..args.after {
        engine.decide_identified(&id);
    }
    let mut out = engine.explain_identified(&id).to_string();
    if let (None, Some(key)) = (&parts.account, &parts.account_key) {
        // What the access log names the caller by; no limit counts by it.
        out.push_str(&format!("\ntoken: {key}\n(a token of no account the gateway knows: limits on `account` count this request by their `missing` setting, by default the client address)"));
    }
    if args.token.is_some() && args.accounts_file.is_none() {
        out.push_str("\n(the token was hashed with a one-off key: pass --accounts-file to see the running gateway's key)");
    }
    Ok(out)
}

/// The described request as the gateway would read it.
fn request_header(args: &ExplainArgs) -> Result<RequestHeader, String> {
    let mut header = RequestHeader::build(args.method.as_str(), args.path.as_bytes(), None)
        .map_err(|e| format!("the method or path cannot be sent: {e}"))?;
    header.set_version(match args.http_version.trim().to_ascii_uppercase().as_str() {
        "HTTP/1.0" | "1.0" => http::Version::HTTP_10,
        "HTTP/2" | "HTTP/2.0" | "2" => http::Version::HTTP_2,
        "HTTP/3" | "3" => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    });
    for h in &args.headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| format!("header \"{h}\" is not `Name: value`"))?;
        header
            .append_header(name.trim().to_string(), value.trim())
            .map_err(|e| format!("header \"{}\": {e}", name.trim()))?;
    }
    if let Some(token) = &args.token {
        header
            .append_header("authorization", format!("Bearer {token}"))
            .map_err(|e| format!("token: {e}"))?;
    }
    Ok(header)
}
