//! `gateway/openapi.yaml` describes exactly the routes the admin router serves: every
//! served route (method and path) is in the file and every operation of the file is
//! served, and the file's `security` says what the router enforces (the bearer token,
//! or nothing for the platform's signed events and the dashboard's static files).

use std::collections::BTreeSet;

use gateway::admin::served_routes;
use gateway::operator::routes::Access;

/// (METHOD, path, needs the token) of every operation in the file.
fn documented() -> BTreeSet<(String, String, bool)> {
    let text = std::fs::read_to_string("openapi.yaml").expect("gateway/openapi.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true), "OpenAPI 3");
    let default_secured = doc["security"].as_sequence().is_some_and(|s| !s.is_empty());
    let paths = doc["paths"].as_mapping().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path").to_string();
        for (method, op) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method").to_ascii_uppercase();
            let secured = match op["security"].as_sequence() {
                Some(s) => !s.is_empty(),
                None => default_secured,
            };
            assert!(op["responses"].as_mapping().is_some(), "{method} {path} has no responses");
            if secured {
                assert!(
                    op["responses"]["401"].is_mapping(),
                    "{method} {path} needs the token but documents no 401"
                );
            }
            out.insert((method, path.clone(), secured));
        }
    }
    out
}

#[test]
fn the_openapi_file_and_the_router_list_the_same_routes() {
    let served: BTreeSet<(String, String, bool)> = served_routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.access == Access::Token))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in openapi.yaml (or with other security): {undocumented:?}\n\
         in openapi.yaml but not served (or with other security): {unserved:?}"
    );
    assert!(served.len() >= 20, "{} routes", served.len());
}
