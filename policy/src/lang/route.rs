//! Route classes: which part of the temporary-deploy API a request is for.
//!
//! Rules talk about classes, not paths, so a policy keeps working when the platform adds
//! an endpoint; the patterns that map paths to classes have built-in defaults taken from
//! the wire protocol and can be overridden per class in `[routes]`.

use crate::lang::canonical;
use std::fmt;

/// What a request is, for the purpose of limiting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    /// `POST .../provisioning/previews/challenge`: asks for proof-of-work.
    ProvisionChallenge,
    /// `POST .../provisioning/previews`: creates a temporary account.
    ProvisionCreate,
    /// Claim flows.
    Claim,
    /// Writes under `/accounts/{id}/` (uploads, settings, deployments).
    DeployWrite,
    /// Reads under `/accounts/{id}/`.
    DeployRead,
    /// Anything else.
    Other,
}

impl RouteClass {
    /// Classes in match precedence order; `Other` is the fallback and takes no patterns.
    pub(crate) const MATCHED: [RouteClass; 5] = [
        RouteClass::ProvisionChallenge,
        RouteClass::ProvisionCreate,
        RouteClass::Claim,
        RouteClass::DeployWrite,
        RouteClass::DeployRead,
    ];

    /// All class names a policy may use in `match.route`.
    pub(crate) const NAMES: [&'static str; 6] = [
        "provision-challenge",
        "provision-create",
        "claim",
        "deploy-write",
        "deploy-read",
        "other",
    ];

    /// The name used in policy files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::ProvisionChallenge => "provision-challenge",
            RouteClass::ProvisionCreate => "provision-create",
            RouteClass::Claim => "claim",
            RouteClass::DeployWrite => "deploy-write",
            RouteClass::DeployRead => "deploy-read",
            RouteClass::Other => "other",
        }
    }

    /// Parses a class name.
    pub fn parse(name: &str) -> Option<RouteClass> {
        RouteClass::MATCHED.into_iter().chain([RouteClass::Other]).find(|c| c.as_str() == name)
    }
}

impl fmt::Display for RouteClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    One,
    Rest,
}

/// `METHOD /path` with `*` = one segment, `**` = the rest (zero or more), method `*` = any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePattern {
    method: Option<String>,
    segs: Vec<Seg>,
}

impl RoutePattern {
    /// Parses a pattern; the error text is ready to show.
    pub(crate) fn parse(text: &str) -> Result<RoutePattern, String> {
        let bad = |why: &str| format!("bad route pattern \"{text}\": {why}");
        let (method, path) = text.trim().split_once(' ').ok_or_else(|| {
            bad("expected \"METHOD /path\", e.g. \"POST /client/v4/provisioning/previews\"")
        })?;
        let path = path.trim();
        if method.is_empty() || !(method == "*" || method.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(bad("the method must be letters (GET, POST, ...) or *"));
        }
        if !path.starts_with('/') {
            return Err(bad("the path must start with /"));
        }
        if path.contains(['?', ' ']) {
            return Err(bad("the path must not contain a query string or spaces"));
        }
        let mut segs = Vec::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (i, p) in parts.iter().enumerate() {
            segs.push(match *p {
                "**" if i + 1 == parts.len() => Seg::Rest,
                "**" => return Err(bad("** may only be the last segment")),
                "*" => Seg::One,
                p if p.contains('*') => return Err(bad("* must be a whole segment")),
                p => Seg::Lit(p.to_string()),
            });
        }
        let method = (method != "*").then(|| method.to_ascii_uppercase());
        Ok(RoutePattern { method, segs })
    }

    /// For a pattern ending in `**`: the number of segments before it, when `segs`
    /// starts with them.
    fn rest_prefix_len(&self, segs: &[&str]) -> Option<usize> {
        let (Seg::Rest, prefix) = self.segs.split_last()? else { return None };
        let matches = prefix.len() <= segs.len()
            && prefix.iter().zip(segs).all(|(p, s)| match p {
                Seg::Lit(l) => l.eq_ignore_ascii_case(s),
                Seg::One => true,
                Seg::Rest => false,
            });
        matches.then_some(prefix.len())
    }

    /// Does `METHOD` with these path segments (query string removed) match? Literal
    /// segments compare without regard to ASCII case, as a case-insensitive upstream
    /// would route them.
    fn matches_segs<'s>(&self, method: &str, mut parts: impl Iterator<Item = &'s str>) -> bool {
        if let Some(m) = &self.method {
            if !m.eq_ignore_ascii_case(method) {
                return false;
            }
        }
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Seg::Lit(l) => {
                    if !parts.next().is_some_and(|p| l.eq_ignore_ascii_case(p)) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// The compiled route table: patterns per class, in precedence order.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub(crate) classes: Vec<(RouteClass, Vec<RoutePattern>)>,
}

impl Routes {
    /// A table of `patterns(class)` for every class; the platform's built-in patterns
    /// are what a policy without `[routes]` gets (see `crate::platform::default_routes`).
    pub(crate) fn from_patterns(patterns: fn(RouteClass) -> &'static [&'static str]) -> Routes {
        let classes = RouteClass::MATCHED
            .iter()
            .map(|c| {
                (*c, patterns(*c).iter().filter_map(|p| RoutePattern::parse(p).ok()).collect())
            })
            .collect();
        Routes { classes }
    }

    /// The length of the longest prefix of `segs` that a pattern of one of `classes`
    /// ending in `**` matches before its `**` (methods ignored): where the rest of a
    /// path under such a pattern starts.
    pub(crate) fn rest_prefix_len(&self, classes: &[RouteClass], segs: &[&str]) -> Option<usize> {
        self.classes
            .iter()
            .filter(|(c, _)| classes.contains(c))
            .flat_map(|(_, pats)| pats.iter())
            .filter_map(|p| p.rest_prefix_len(segs))
            .max()
    }
    /// Classifies a request by its normalised path (see [`canonical`]); the query
    /// string is ignored.
    pub(crate) fn classify(&self, method: &str, path: &str) -> RouteClass {
        self.classify_checked(method, path).0
    }

    /// The class of the normalised path, and why the request is refused when a path
    /// of a protected class (anything but `other`) is spelt in a form servers read
    /// differently: dot segments, `;` parameters, or a route spelt with
    /// percent-escapes so that the raw path would fall in another class.
    pub(crate) fn classify_checked(
        &self,
        method: &str,
        path: &str,
    ) -> (RouteClass, Option<&'static str>) {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let raw = self.class_of(method, path.split('/').filter(|s| !s.is_empty()));
        if !canonical::needs_normalising(path) {
            return (raw, None);
        }
        let segs = canonical::segments(path);
        let class = self.class_of(method, segs.iter().map(String::as_str));
        let problem = if class == RouteClass::Other && raw == RouteClass::Other {
            None
        } else if class != raw {
            canonical::problem(path).or(Some("part of its route is percent-encoded"))
        } else {
            canonical::problem(path)
        };
        (class, problem)
    }

    fn class_of<'s>(
        &self,
        method: &str,
        segs: impl Iterator<Item = &'s str> + Clone,
    ) -> RouteClass {
        self.classes
            .iter()
            .find(|(_, pats)| pats.iter().any(|p| p.matches_segs(method, segs.clone())))
            .map_or(RouteClass::Other, |(c, _)| *c)
    }
}
