//! The path as a normalising server routes it, so a request is classed by what the
//! upstream will serve, not by how its path is spelt.
//!
//! Servers differ: some percent-decode before routing (`%70` is `p`, `%2F` is `/`),
//! drop `;params`, merge `//`, resolve `.` and `..`, or ignore case. A gateway that
//! classed the raw path would let `/client/v4/%70rovisioning/previews` pass as
//! `other` while such an upstream creates an account. [`segments`] gives the path as
//! the most normalising upstream sees it; route classes and resource operations are
//! taken from it (literal segments compare without regard to case), and
//! [`problem`] names the spellings that are refused outright on protected routes.

use crate::wire::percent_decode;

/// The segments of `path` (query string already removed) after percent-decoding each
/// raw segment (a decoded `/` splits it), dropping `;params`, empty and `.` segments,
/// and resolving `..`.
pub(crate) fn segments(path: &str) -> Vec<String> {
    if !needs_normalising(path) {
        return path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let raw = raw.split(';').next().unwrap_or("");
        let decoded = percent_decode(raw);
        for seg in decoded.split('/') {
            let seg = seg.split(';').next().unwrap_or("");
            match seg {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s.to_string()),
            }
        }
    }
    out
}

/// The path as a normalising server routes it (see [`segments`]), query string
/// dropped: what the access log records, so a replay classes it as the gateway did.
pub fn normalised_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len());
    for seg in segments(path) {
        out.push('/');
        out.push_str(&seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether [`segments`] can differ from the raw non-empty segments: only with an
/// escape, a parameter or a dot segment (the hot path of plain paths skips decoding).
pub(crate) fn needs_normalising(path: &str) -> bool {
    path.contains(['%', ';']) || path.split('/').any(|s| s == "." || s == "..")
}

/// Why the spelling of `path` is refused on a protected route, if it is: dot segments
/// (written or percent-encoded) and `;` parameters are resolved by some servers and
/// not by others, so the gateway cannot know which resource such a path names.
pub(crate) fn problem(path: &str) -> Option<&'static str> {
    if path.contains(';') {
        return Some("it has `;` parameters");
    }
    let dotted =
        path.split('/').any(|raw| percent_decode(raw).split('/').any(|s| s == "." || s == ".."));
    dotted.then_some("it has `.` or `..` segments")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_what_a_normalising_server_routes() {
        let want = ["client", "v4", "provisioning", "previews"];
        for p in [
            "/client/v4/provisioning/previews",
            "//client/v4//provisioning/previews/",
            "/client/v4/./provisioning/previews",
            "/client/v4/x/../provisioning/previews",
            "/client/v4/provisioning%2Fpreviews",
            "/client/v4/%70rovisioning/previews",
            "/client/v4/provisioning;a=b/previews;c",
            "/client/v4/x/%2e%2e/provisioning/previews",
        ] {
            assert_eq!(segments(p), want, "{p}");
        }
        assert_eq!(segments("/a/%zz/%E2%82%AC"), ["a", "%zz", "€"]);
    }

    #[test]
    fn dot_segments_and_params_are_problems() {
        assert!(problem("/client/v4/provisioning/previews").is_none());
        assert!(problem("/client/v4/accounts/a/storage/kv/namespaces/n/values/a%2Fb").is_none());
        assert!(problem("/a/./b").is_some());
        assert!(problem("/a/%2E%2E/b").is_some());
        assert!(problem("/a/x%2F..%2Fb").is_some());
        assert!(problem("/a;x/b").is_some());
    }
}
