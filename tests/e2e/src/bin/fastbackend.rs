//! `fastbackend`: a tiny, fast HTTP/1.1 upstream for `scripts/bench.sh`.
//!
//! Not a test and not a real server: it answers every request with the same small
//! `200 OK` (length-delimited, keep-alive), so that a benchmark measures the gateway in
//! front of it rather than the upstream. One thread (a current-thread tokio runtime),
//! so `taskset -c N fastbackend` really gives it one core.
//!
//! Usage: `fastbackend [ADDR]` (default `127.0.0.1:18081`). Handles pipelined requests
//! and `Content-Length` request bodies; chunked request bodies get a `501` and a close
//! (the benchmark never sends them). `Connection: close` from the client is honoured.
//! Stops on SIGTERM/SIGINT (the default signal action).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!";
const OK_CLOSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\nconnection: close\r\n\r\nHello, world!";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Largest request header accepted.
const MAX_HEADER: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_string());
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("fastbackend listening on {addr}");
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(stream).await;
            });
        }
    })
}

/// What one complete request header says about the connection.
struct Head {
    /// Bytes of the header block, including the blank line.
    len: usize,
    /// Declared `Content-Length` (0 when absent).
    body: usize,
    /// `Transfer-Encoding` present (unsupported).
    chunked: bool,
    /// `Connection: close` present.
    close: bool,
}

/// Parses the header block at the start of `buf`, if it is complete.
fn parse_head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut head = Head { len: end, body: 0, chunked: false, close: false };
    for line in buf[..end].split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            head.body = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") && value.eq_ignore_ascii_case("close") {
            head.close = true;
        }
    }
    Some(head)
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    // Body bytes of the current request still to be skipped.
    let mut skip = 0usize;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let mut close = false;
        loop {
            if skip > 0 {
                let take = skip.min(buf.len() - pos);
                pos += take;
                skip -= take;
                if skip > 0 {
                    break;
                }
            }
            let Some(head) = parse_head(&buf[pos..]) else { break };
            pos += head.len;
            skip = head.body;
            if head.chunked {
                out.extend_from_slice(NOT_IMPLEMENTED);
                close = true;
                break;
            }
            if head.close {
                out.extend_from_slice(OK_CLOSE);
                close = true;
                break;
            }
            out.extend_from_slice(OK);
        }
        buf.drain(..pos);
        if buf.len() > MAX_HEADER {
            return Ok(());
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}
