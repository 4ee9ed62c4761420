//! The wire protocol as wrangler speaks it, one HTTP call at a time.
//!
//! [`Api`] sends one request with the agent's identity (simulated address,
//! header fingerprint), times it, classifies the answer ([`Verdict`]) and
//! records it. It knows nothing about retries or archetypes; those live in
//! `wrangler` and `agent`. Every send first checks the run's deadline and
//! request budget, so no caller can loop past them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::stats::{GroupStats, RunStats, Verdict};

/// User-Agent of the two provisioning calls (Node's fetch).
pub const PROVISIONING_UA: &str = "undici";
/// User-Agent of the deploy calls.
pub const WRANGLER_UA: &str = "wrangler/4.164.0";

/// How an agent looks on the wire.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Address announced in `X-Forwarded-For`, if any.
    pub forwarded_for: Option<IpAddr>,
    /// User-Agent of provisioning calls.
    pub provisioning_ua: String,
    /// User-Agent of deploy calls.
    pub wrangler_ua: String,
    /// Extra headers, in the order they are sent (before User-Agent when
    /// `ua_last` is set, to vary the header order).
    pub extra: Vec<(HeaderName, HeaderValue)>,
    /// Send User-Agent after the extra headers rather than before.
    pub ua_last: bool,
}

impl Identity {
    /// What real wrangler looks like, from `addr`.
    pub fn wrangler(addr: Option<IpAddr>) -> Self {
        Self {
            forwarded_for: addr,
            provisioning_ua: PROVISIONING_UA.into(),
            wrangler_ua: WRANGLER_UA.into(),
            extra: vec![
                (reqwest::header::ACCEPT, HeaderValue::from_static("*/*")),
                (reqwest::header::ACCEPT_LANGUAGE, HeaderValue::from_static("*")),
                (HeaderName::from_static("sec-fetch-mode"), HeaderValue::from_static("cors")),
            ],
            ua_last: false,
        }
    }

    fn headers(&self, provisioning: bool, forwarded_for: bool) -> HeaderMap {
        let ua = if provisioning { &self.provisioning_ua } else { &self.wrangler_ua };
        let ua = HeaderValue::from_str(ua).unwrap_or(HeaderValue::from_static("undici"));
        let mut h = HeaderMap::new();
        if !self.ua_last {
            h.insert(reqwest::header::USER_AGENT, ua.clone());
        }
        for (k, v) in &self.extra {
            h.append(k.clone(), v.clone());
        }
        if self.ua_last {
            h.insert(reqwest::header::USER_AGENT, ua);
        }
        if forwarded_for {
            if let Some(ip) = self.forwarded_for {
                if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                    h.insert(HeaderName::from_static("x-forwarded-for"), v);
                }
            }
        }
        h
    }
}

/// One part of a multipart body; kept as data so a retry can rebuild the
/// form (reqwest forms are single-use).
#[derive(Debug, Clone)]
pub struct Part {
    /// Form field name.
    pub name: String,
    /// File name, if the part is a file.
    pub filename: Option<String>,
    /// Content type.
    pub content_type: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// A JSON body.
    Json(Value),
    /// A multipart/form-data body.
    Multipart(Vec<Part>),
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    /// Body.
    pub body: Body,
    /// Provisioning call (different User-Agent, no token).
    pub provisioning: bool,
    /// Bearer token, if any. Never printed.
    pub bearer: Option<String>,
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Retry-After`, when present and in seconds.
    pub retry_after: Option<Duration>,
    /// JSON body, or `Null` when the body was not JSON.
    pub body: Value,
    /// What the answer meant.
    pub verdict: Verdict,
}

impl Reply {
    /// The `result` of a v4 envelope.
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    /// The first v4 error code, if any.
    pub fn error_code(&self) -> Option<u64> {
        self.body["errors"][0]["code"].as_u64()
    }

    /// The first v4 error message, shortened. Platform messages carry no
    /// secrets, but cap the length so a report stays readable.
    pub fn error_message(&self) -> String {
        let m = self.body["errors"][0]["message"].as_str().unwrap_or("");
        m.chars().take(160).collect()
    }
}

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The run's deadline passed or its request budget is spent.
    Stopped,
    /// Connection or timeout error (message has no URL in it).
    Transport(String),
}

/// Classify an answer. A 404/409/400 from the platform still got through
/// the gateway, so it counts as admitted; the deploy logic decides whether
/// it was what it wanted.
pub fn classify(status: StatusCode, body: &Value, retry_after: Option<Duration>) -> Verdict {
    let code = body["errors"][0]["code"].as_u64();
    match status.as_u16() {
        429 | 451 => Verdict::Refused,
        403 if code != Some(10000) => Verdict::Refused,
        503 if retry_after.is_some() => Verdict::Refused,
        s if s >= 500 => Verdict::Error,
        _ => Verdict::Admitted,
    }
}

/// Parse `Retry-After` given in seconds (the HTTP-date form is not used by
/// APIs like this one; it is ignored).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// An agent's connection to the target.
pub struct Api {
    client: reqwest::Client,
    api_base: Url,
    group: Arc<GroupStats>,
    run: Arc<RunStats>,
    deadline: tokio::time::Instant,
    forwarded_for: bool,
    /// Requests this agent may still send.
    pub budget: u32,
}

impl Api {
    /// An API client sending to `root` (scheme://host:port).
    pub fn new(
        client: reqwest::Client,
        root: &Url,
        group: Arc<GroupStats>,
        run: Arc<RunStats>,
        deadline: tokio::time::Instant,
        forwarded_for: bool,
        budget: u32,
    ) -> Result<Self, String> {
        let api_base = root.join("/client/v4/").map_err(|e| format!("bad target URL: {e}"))?;
        Ok(Self { client, api_base, group, run, deadline, forwarded_for, budget })
    }

    /// A second connection like this one that counts into `group` instead
    /// (and has a budget of its own): lets an attack agent run an honest
    /// probe whose refusals are not mixed with its own.
    pub fn beside(&self, group: Arc<GroupStats>, budget: u32) -> Self {
        Self {
            client: self.client.clone(),
            api_base: self.api_base.clone(),
            group,
            run: self.run.clone(),
            deadline: self.deadline,
            forwarded_for: self.forwarded_for,
            budget,
        }
    }

    /// Group counters this agent reports to.
    pub fn group(&self) -> &Arc<GroupStats> {
        &self.group
    }

    /// The run's deadline.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// True once the agent must stop (deadline, run budget, own budget).
    pub fn stopped(&self) -> bool {
        self.budget == 0 || tokio::time::Instant::now() >= self.deadline || self.run.budget_spent()
    }

    /// Milliseconds since the run started.
    pub fn since_start_ms(&self) -> u64 {
        u64::try_from(self.run.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `X-Forwarded-For` carries the simulated address.
    pub fn forwards_for(&self) -> bool {
        self.forwarded_for
    }

    /// Reserve one request for a call sent outside reqwest (hand-written
    /// HTTP/1.1, for framings reqwest will not produce); false when the
    /// agent or the run must stop.
    pub fn take_raw(&mut self) -> bool {
        if self.stopped() || !self.run.take_request() {
            return false;
        }
        self.budget -= 1;
        true
    }

    /// Record the answer to a call sent with [`Api::take_raw`].
    pub fn record_raw(&self, call_path: &str, status: Option<StatusCode>, latency: Duration) {
        let verdict = match status {
            Some(s) => classify(s, &Value::Null, None),
            None => Verdict::Error,
        };
        self.run.record(&self.group, verdict, latency);
        if let (Verdict::Refused, Some(s), Ok(url)) = (verdict, status, self.url(call_path)) {
            self.group.note_refusal(refusal_reason(&url, s, &Value::Null));
        }
    }

    /// URL of an API path relative to `/client/v4/`.
    pub fn url(&self, path: &str) -> Result<Url, CallError> {
        self.api_base
            .join(path.trim_start_matches('/'))
            .map_err(|e| CallError::Transport(format!("bad path: {e}")))
    }

    /// Send one call and record it.
    pub async fn send(&mut self, ident: &Identity, call: &Call) -> Result<Reply, CallError> {
        if self.stopped() || !self.run.take_request() {
            return Err(CallError::Stopped);
        }
        self.budget -= 1;
        let mut req = self
            .client
            .request(call.method.clone(), call.url.clone())
            .headers(ident.headers(call.provisioning, self.forwarded_for));
        if let Some(token) = &call.bearer {
            req = req.bearer_auth(token);
        }
        req = match &call.body {
            Body::Empty => req,
            Body::Json(v) => req.json(v),
            Body::Multipart(parts) => req.multipart(build_form(parts)),
        };
        let remaining = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let started = Instant::now();
        let sent = tokio::time::timeout(remaining, async {
            let resp = req.send().await?;
            let status = resp.status();
            let retry_after = parse_retry_after(resp.headers());
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, bytes))
        })
        .await;
        let elapsed = started.elapsed();
        match sent {
            Err(_) => {
                // Cut off by the run's deadline: not the target's fault.
                Err(CallError::Stopped)
            }
            Ok(Err(e)) => {
                let msg = describe(&e);
                self.run.record(&self.group, Verdict::Error, elapsed);
                self.group.note_error(msg.clone());
                Err(CallError::Transport(msg))
            }
            Ok(Ok((status, retry_after, bytes))) => {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let verdict = classify(status, &body, retry_after);
                self.run.record(&self.group, verdict, elapsed);
                if verdict == Verdict::Refused {
                    self.group.note_refusal(refusal_reason(&call.url, status, &body));
                }
                Ok(Reply { status, retry_after, body, verdict })
            }
        }
    }
}

/// A short, secret-free name for a refusal: which call, the status, the
/// v4 error code and the message with numbers blanked (so "retry in 12 s"
/// and "retry in 13 s" count together).
pub fn refusal_reason(url: &Url, status: StatusCode, body: &Value) -> String {
    let path = url.path();
    let call = if path.ends_with("/provisioning/previews/challenge") {
        "challenge"
    } else if path.ends_with("/provisioning/previews") {
        "create account"
    } else if path.contains("/claim") {
        // Claim paths hold the claim secret: never echo them.
        "claim"
    } else if path.contains("/workers/assets/") {
        "assets"
    } else if path.contains("/storage/kv/") || path.contains("/d1/") || path.contains("/queues") {
        "resource"
    } else {
        "deploy"
    };
    let code =
        body["errors"][0]["code"].as_u64().map_or_else(|| "-".to_string(), |c| c.to_string());
    // Numbers are blanked, names that hold digits ("d1_databases", "D1")
    // are kept.
    let mut msg = String::new();
    let mut in_number = false;
    let mut prev: char = ' ';
    for ch in body["errors"][0]["message"].as_str().unwrap_or("").chars() {
        let starts_number = ch.is_ascii_digit() && !(prev.is_alphanumeric() || prev == '_');
        let continues_number =
            in_number && (ch.is_ascii_digit() || ch == '.' || ch == ',' || ch == ':');
        if starts_number || continues_number {
            if !in_number {
                msg.push('N');
            }
            in_number = true;
        } else {
            msg.push(ch);
            in_number = false;
        }
        prev = ch;
        if msg.len() >= 90 {
            msg.push_str("...");
            break;
        }
    }
    format!("{call}: {} {code} {msg}", status.as_u16())
}

/// A transport error without its URL (claim URLs are secrets).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

fn build_form(parts: &[Part]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for p in parts {
        let mut part = reqwest::multipart::Part::bytes(p.bytes.clone());
        if let Some(f) = &p.filename {
            part = part.file_name(f.clone());
        }
        part = match part.mime_str(&p.content_type) {
            Ok(part) => part,
            // Content types are chosen by this crate, not read from input.
            Err(_) => reqwest::multipart::Part::bytes(p.bytes.clone()),
        };
        form = form.part(p.name.clone(), part);
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_are_told_from_auth_failures() {
        let auth = json!({"errors": [{"code": 10000, "message": "auth"}]});
        let policy = json!({"errors": [{"code": 9429, "message": "slow down"}]});
        assert_eq!(classify(StatusCode::FORBIDDEN, &auth, None), Verdict::Admitted);
        assert_eq!(classify(StatusCode::FORBIDDEN, &policy, None), Verdict::Refused);
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, &Value::Null, None), Verdict::Refused);
        assert_eq!(classify(StatusCode::NOT_FOUND, &Value::Null, None), Verdict::Admitted);
        assert_eq!(classify(StatusCode::BAD_GATEWAY, &Value::Null, None), Verdict::Error);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &Value::Null, Some(Duration::from_secs(1))),
            Verdict::Refused
        );
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn fingerprint_order_is_kept() {
        let mut id = Identity::wrangler(None);
        id.ua_last = true;
        let h = id.headers(false, true);
        let names: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(names.last().map(String::as_str), Some("user-agent"));
    }
}
