//! Which paths are which: the route classes' built-in patterns and the resource
//! classification of account-API calls.

use super::API_BASE;
use crate::economics::quota::{Classified, ResourceKind, ResourceOp};
use crate::lang::route::{RouteClass, Routes};

/// The built-in `METHOD /path` patterns of a route class, which `[routes]` may replace.
pub fn default_route_patterns(class: RouteClass) -> &'static [&'static str] {
    match class {
        RouteClass::ProvisionChallenge => &["POST /client/v4/provisioning/previews/challenge"],
        RouteClass::ProvisionCreate => &["POST /client/v4/provisioning/previews"],
        RouteClass::Claim => &["* /claim/**", "* /client/v4/provisioning/previews/*/claim/**"],
        RouteClass::DeployWrite => &[
            "PUT /client/v4/accounts/**",
            "POST /client/v4/accounts/**",
            "PATCH /client/v4/accounts/**",
            "DELETE /client/v4/accounts/**",
        ],
        RouteClass::DeployRead => &["GET /client/v4/accounts/**", "HEAD /client/v4/accounts/**"],
        RouteClass::Other => &[],
    }
}

/// The route table of a policy without `[routes]`.
pub(crate) fn default_routes() -> Routes {
    Routes::from_patterns(default_route_patterns)
}

/// Classifies a deploy-API call by method and path (query string allowed), with the
/// account-API prefix taken from the `deploy-write` and `deploy-read` patterns of
/// `routes` (a pattern `... /accounts/**` gives the prefix before `**`), so a `[routes]`
/// override moves classification with it. The same path without [`API_BASE`] is
/// accepted too. Segments are percent-decoded so `my%2Dworker` and `my-worker` count as
/// one script.
pub(crate) fn classify_resource(routes: &Routes, method: &str, path: &str) -> Classified {
    let other = Classified { account_id: None, op: ResourceOp::Other };
    let path = path.split(['?', '#']).next().unwrap_or("");
    // The normalised path, as for the route class: a normalising upstream serves
    // `workers%2Fscripts%2Fname` as a script upload, so it is counted as one.
    let segs = crate::lang::canonical::segments(path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let base: Vec<&str> = API_BASE.split('/').filter(|s| !s.is_empty()).collect();
    let classes = [RouteClass::DeployWrite, RouteClass::DeployRead];
    let rest = match routes.rest_prefix_len(&classes, &segs) {
        Some(n) => &segs[n..],
        None => {
            let with_base: Vec<&str> = base.iter().chain(segs.iter()).copied().collect();
            match routes.rest_prefix_len(&classes, &with_base) {
                Some(n) if n >= base.len() => &segs[n - base.len()..],
                _ => return other,
            }
        }
    };
    let Some((account, rest)) = rest.split_first() else { return other };
    let m = method.to_ascii_uppercase();
    use ResourceKind::*;
    let create = |kind| ResourceOp::Create { kind, name: None };
    let delete = |kind, id: &str| ResourceOp::Delete { kind, id: id.to_string() };
    // Literal words compare without regard to case (a case-insensitive upstream);
    // names and ids are taken as written.
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let words: Vec<&str> = lower.iter().map(String::as_str).collect();
    let named = |i: usize| rest.get(i).copied().unwrap_or_default();
    let op = match (m.as_str(), words.as_slice()) {
        ("PUT", ["workers", "scripts", _]) => {
            ResourceOp::Create { kind: WorkerScript, name: Some(named(2).to_string()) }
        }
        ("DELETE", ["workers", "scripts", _]) => delete(WorkerScript, named(2)),
        ("POST", ["workers", "scripts", _, "assets-upload-session"]) => {
            ResourceOp::AssetUpload { script: named(2).to_string(), manifest: None }
        }
        ("POST", ["workers", "assets", "upload"]) => ResourceOp::AssetFiles,
        ("POST", ["storage", "kv", "namespaces"]) => create(KvNamespace),
        ("DELETE", ["storage", "kv", "namespaces", _]) => delete(KvNamespace, named(3)),
        ("POST", ["d1", "database"]) => create(D1Database),
        ("DELETE", ["d1", "database", _]) => delete(D1Database, named(2)),
        ("POST", ["queues"]) => create(Queue),
        ("DELETE", ["queues", _]) => delete(Queue, named(1)),
        ("POST", ["hyperdrive", "configs"]) => create(HyperdriveConfig),
        ("DELETE", ["hyperdrive", "configs", _]) => delete(HyperdriveConfig, named(2)),
        _ => ResourceOp::Other,
    };
    Classified { account_id: Some((*account).to_string()), op }
}

/// [`crate::Policy::classify_resource`] with the built-in route patterns, for callers without a policy.
pub fn classify_default(method: &str, path: &str) -> Classified {
    static DEFAULTS: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
    classify_resource(DEFAULTS.get_or_init(default_routes), method, path)
}
