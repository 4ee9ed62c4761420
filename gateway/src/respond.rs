//! Answers the gateway writes itself (refusals, upstream failures).
//!
//! Pingora's `respond_error` turns keep-alive off and closes the socket, so every
//! refused client would pay a new TCP connection and come straight back with it
//! (`scripts/bench.sh` measures both: its `refuse` and `refuse-close` cases). Here
//! every answer is length-delimited and written with
//! `write_response_header` + `write_response_body(end)`, so the connection stays
//! reusable and refusing costs less than forwarding.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::envelope::{self, codes};
use crate::stage::refusal::Refusal;

/// Writes a policy refusal: the v4 envelope, its headers, and its message as the
/// reason phrase.
pub async fn write_refusal(session: &mut Session, refusal: &Refusal) -> Result<()> {
    let body = envelope::error_body(refusal.code(), &refusal.message);
    write_json(session, refusal.status(), Some(&refusal.message), &refusal.headers, body).await
}

/// Writes a refusal found while reading the body, after the upstream request was
/// aborted; the connection is not reused. Returns the status written (0: none).
pub async fn write_body_refusal(session: &mut Session, refusal: &Refusal) -> u16 {
    session.set_keepalive(None);
    // Not drained: the rest of a body refused half-way may never come (a client that
    // holds it back), and the connection closes anyway.
    let body = envelope::error_body(refusal.code(), &refusal.message);
    let written =
        write_answer(session, refusal.status(), Some(&refusal.message), &refusal.headers, body)
            .await;
    match written {
        Ok(()) => refusal.status(),
        Err(_) => 0,
    }
}

/// Writes the 502/504 envelope for a request the gateway could not proxy. Returns the
/// status written (0: the client is gone).
pub async fn write_failure(session: &mut Session, e: &Error) -> u16 {
    let (status, code, message) = classify_failure(e);
    if status == 0 {
        return 0;
    }
    // Pingora does not reuse a downstream connection after an upstream failure
    // (whatever `can_reuse_downstream` says), so say so honestly: a client that saw
    // `Connection: keep-alive` would send its next request into a closed socket.
    // Failures are rare; refusals, the common case, keep the connection.
    session.set_keepalive(None);
    if let Err(write_err) =
        write_json(session, status, None, &[], envelope::error_body(code, message)).await
    {
        tracing::debug!(error = %write_err, "could not write the error answer");
    }
    status
}

/// Maps a proxy failure to (status, envelope code, message). Status 0: the client left.
pub fn classify_failure(e: &Error) -> (u16, u32, &'static str) {
    const UNREACHABLE: &str = "The deploy API is unreachable from the gateway right now; nothing was changed. Retry in a few seconds.";
    const TIMEOUT: &str = "The deploy API did not answer the gateway in time; the request may or may not have been applied. Check before retrying.";
    match e.etype() {
        ErrorType::HTTPStatus(code) => {
            (*code, codes::BAD_REQUEST, "The request could not be handled.")
        }
        ErrorType::ConnectTimedout => (504, codes::UPSTREAM_TIMEOUT, UNREACHABLE),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            (504, codes::UPSTREAM_TIMEOUT, TIMEOUT)
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, codes::UPSTREAM_UNREACHABLE, UNREACHABLE),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, 0, "")
                }
                _ => (400, codes::BAD_REQUEST, "The gateway could not read this request."),
            },
            ErrorSource::Internal | ErrorSource::Unset => {
                (502, codes::UPSTREAM_UNREACHABLE, UNREACHABLE)
            }
        },
    }
}

/// Request bodies up to this size are drained before a refusal so the connection can
/// be reused; a larger body is not worth reading and the connection is closed instead.
pub const MAX_DRAIN_BYTES: u64 = 256 * 1024;

/// Writes a JSON answer with a Content-Length, keeping the connection alive when the
/// request body (if any) could be drained cheaply.
pub async fn write_json(
    session: &mut Session,
    status: u16,
    reason: Option<&str>,
    extra_headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<()> {
    if !drain_small_body(session).await {
        session.set_keepalive(None);
    }
    write_answer(session, status, reason, extra_headers, body).await
}

/// Writes a JSON answer with a Content-Length as it is, without reading the request
/// body first.
async fn write_answer(
    session: &mut Session,
    status: u16,
    reason: Option<&str>,
    extra_headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(4 + extra_headers.len()))?;
    if let Some(reason) = reason {
        header.set_reason_phrase(Some(&reason_phrase(reason)))?;
    }
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    for (name, value) in extra_headers {
        header.insert_header(*name, value.as_str())?;
    }
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Reads and discards a small request body so that answering early does not poison the
/// connection. Returns false when the body is too large or unreadable.
async fn drain_small_body(session: &mut Session) -> bool {
    if session.as_downstream_mut().is_body_done() {
        return true;
    }
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n <= MAX_DRAIN_BYTES => {
            session.as_downstream_mut().drain_request_body().await.is_ok()
        }
        // Chunked bodies of unknown size and large uploads: close rather than read.
        _ => false,
    }
}

/// Longest reason phrase the gateway sends; wrangler prints it whole.
const MAX_REASON: usize = 300;

/// Makes `text` a valid HTTP reason phrase (visible ASCII and spaces only).
///
/// For the two provisioning calls wrangler prints only "(STATUS REASON)" of a
/// refusal, never the envelope, so the reason phrase is the one place where the user
/// can read which limit tripped and when to retry.
pub fn reason_phrase(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { ' ' })
        .take(MAX_REASON)
        .collect();
    if out.trim().is_empty() {
        out = "Refused".to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reason_phrase;

    #[test]
    fn reason_phrase_is_visible_ascii_and_bounded() {
        assert_eq!(reason_phrase("Retry in 5 s\r\nX: y"), "Retry in 5 s  X: y");
        assert_eq!(reason_phrase("caf\u{e9}"), "caf ");
        assert_eq!(reason_phrase(&"a".repeat(1000)).len(), 300);
        assert_eq!(reason_phrase("\n"), "Refused");
    }
}
