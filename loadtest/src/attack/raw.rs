//! Hand-written HTTP/1.1 requests, for framings reqwest will not send: a
//! repeated `Content-Length: N, N`, or a chunked body of a chosen size.
//! Loopback only: the URL comes from the agent's [`Api`], whose root was
//! checked at the start of the run.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::Api;

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: N, N` (the same length twice, one header).
    DoubledLength,
    /// `Transfer-Encoding: chunked`, in chunks of up to 1 MiB.
    Chunked,
}

/// One hand-written request.
pub struct RawRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// Path relative to `/client/v4/`, with its query.
    pub path: &'a str,
    /// Bearer token (a secret: it only goes on the wire).
    pub bearer: &'a str,
    /// Content type of the body.
    pub content_type: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// Its framing.
    pub framing: Framing,
    /// Simulated client address for `X-Forwarded-For`.
    pub forwarded_for: Option<std::net::IpAddr>,
}

/// Largest answer read back.
const MAX_ANSWER: usize = 1 << 20;
/// Longest the whole exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The status line of an answer, if it has one.
pub fn parse_status(answer: &[u8]) -> Option<StatusCode> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    StatusCode::from_u16(parts.next()?.parse().ok()?).ok()
}

/// The request head for `req` sent to `host`.
pub fn head(req: &RawRequest<'_>, host: &str, path: &str) -> String {
    let mut h = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: */*\r\nAuthorization: Bearer {}\r\nContent-Type: {}\r\nConnection: close\r\n",
        req.method,
        crate::protocol::WRANGLER_UA,
        req.bearer,
        req.content_type
    );
    if let Some(ip) = req.forwarded_for {
        h.push_str(&format!("X-Forwarded-For: {ip}\r\n"));
    }
    match req.framing {
        Framing::DoubledLength => {
            let n = req.body.len();
            h.push_str(&format!("Content-Length: {n}, {n}\r\n"));
        }
        Framing::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    h
}

/// Send `req` through `api` (counted against its budget and recorded like
/// any other call). `None`: no answer (stopped, or the connection failed
/// before a status line came back).
pub async fn send(api: &mut Api, req: &RawRequest<'_>) -> Option<StatusCode> {
    if !api.take_raw() {
        return None;
    }
    let url = api.url(req.path).ok()?;
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let req =
        RawRequest { forwarded_for: req.forwarded_for.filter(|_| api.forwards_for()), ..*req };
    let started = Instant::now();
    let status = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(&host, port, &path, &req))
        .await
        .ok()
        .flatten();
    api.record_raw(req.path, status, started.elapsed());
    status
}

async fn exchange(host: &str, port: u16, path: &str, req: &RawRequest<'_>) -> Option<StatusCode> {
    let mut stream = TcpStream::connect((host, port)).await.ok()?;
    let head = head(req, host, path);
    // A write may fail when the gateway answers early and closes (a
    // refusal of an oversized body): the answer is still read.
    let mut wrote = stream.write_all(head.as_bytes()).await.is_ok();
    match req.framing {
        Framing::DoubledLength => {
            if wrote {
                let _ = stream.write_all(req.body).await;
            }
        }
        Framing::Chunked => {
            for chunk in req.body.chunks(1 << 20) {
                if !wrote {
                    break;
                }
                let size = format!("{:x}\r\n", chunk.len());
                wrote = stream.write_all(size.as_bytes()).await.is_ok()
                    && stream.write_all(chunk).await.is_ok()
                    && stream.write_all(b"\r\n").await.is_ok();
            }
            if wrote {
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        }
    }
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while answer.len() < MAX_ANSWER {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    parse_status(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_junk_does_not() {
        assert_eq!(
            parse_status(b"HTTP/1.1 413 Payload Too Large\r\n\r\n"),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(parse_status(b"garbage"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn heads_carry_the_framing() {
        let req = RawRequest {
            method: "POST",
            path: "x",
            bearer: "t",
            content_type: "application/json",
            body: b"{}",
            framing: Framing::DoubledLength,
            forwarded_for: None,
        };
        assert!(head(&req, "127.0.0.1", "/x").contains("Content-Length: 2, 2\r\n"));
        let req = RawRequest { framing: Framing::Chunked, ..req };
        let h = head(&req, "127.0.0.1", "/x");
        assert!(h.contains("Transfer-Encoding: chunked\r\n") && !h.contains("Content-Length"));
        assert!(h.ends_with("\r\n\r\n"));
    }
}
