//! Reads a client's first bytes until its ClientHello is complete, within limits.
//!
//! Runs in Pingora's accept task before the TLS handshake, so every connection passes
//! through it: it must give up on slow or hostile clients (deadline), never buffer
//! without bound (size cap), and hand back every byte it read so the TLS stack can
//! replay them (`L4Stream::rewind`).

use std::time::Duration;

use policy::ja4::{hello_progress, HelloProgress, Ja4Error, MAX_HELLO_LEN};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// Time a client gets to send its whole ClientHello. Real clients send it in their
/// first packet; ten seconds covers lossy mobile links and stops slowloris clients
/// from holding accept tasks (Pingora's own handshake timeout is 60 s).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes read before giving up: the largest accepted ClientHello plus the record
/// headers of a hello split into small records.
pub const MAX_READ: usize = MAX_HELLO_LEN * 2;

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline for the whole ClientHello.
    pub timeout: Duration,
    /// Byte cap.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: HELLO_TIMEOUT, max_bytes: MAX_READ }
    }
}

/// How reading the ClientHello ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The ClientHello is complete; this is its JA4.
    Fingerprint(String),
    /// The bytes are not a ClientHello we fingerprint (plain HTTP on the TLS port,
    /// SSLv2, malformed, over the cap); the TLS stack decides what to do with them.
    Unfingerprinted(Ja4Error),
    /// The client did not finish its ClientHello in time.
    TimedOut,
    /// The client closed, or the socket failed, before the ClientHello was complete.
    Closed,
}

/// Reads from `io` until a ClientHello is complete, the bytes cannot be one, the byte
/// cap is reached, the deadline passes or the peer closes. Returns everything read.
pub async fn read_client_hello<S: AsyncRead + Unpin>(
    io: &mut S,
    limits: Limits,
) -> (Vec<u8>, Outcome) {
    let deadline = Instant::now() + limits.timeout;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let room = limits.max_bytes.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return (buf, Outcome::Unfingerprinted(Ja4Error::TooLarge));
        }
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk[..room])).await {
            Err(_) => return (buf, Outcome::TimedOut),
            Ok(Err(_)) | Ok(Ok(0)) => return (buf, Outcome::Closed),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match hello_progress(&buf) {
            HelloProgress::NeedMore => continue,
            HelloProgress::Complete(len) => {
                let outcome = match policy::ja4::ja4(&buf[..len]) {
                    Ok(fp) => Outcome::Fingerprint(fp),
                    Err(e) => Outcome::Unfingerprinted(e),
                };
                return (buf, outcome);
            }
            HelloProgress::Invalid(e) => return (buf, Outcome::Unfingerprinted(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;

    fn quick() -> Limits {
        Limits { timeout: Duration::from_millis(300), max_bytes: MAX_READ }
    }

    // Paused time: tokio moves the clock forward whenever every task is idle, so the
    // deadline is reached at once and exactly, without waiting on the wall clock.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_is_given_up_on_at_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        // The start of a ClientHello, then silence (connection kept open).
        client.write_all(&[0x16, 3, 1, 0x02, 0x00, 0x01, 0x00, 0x01]).await.expect("write");
        let started = Instant::now();
        let (bytes, outcome) = read_client_hello(&mut server, quick()).await;
        assert_eq!(outcome, Outcome::TimedOut);
        assert_eq!(bytes.len(), 8, "everything read is handed back");
        assert_eq!(started.elapsed(), quick().timeout, "given up exactly at the deadline");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_trickling_bytes_still_hits_the_overall_deadline() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&[0x16, 3, 1, 0x02, 0x00]).await;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if client.write_all(&[1]).await.is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let (_, outcome) = read_client_hello(&mut server, quick()).await;
        assert_eq!(outcome, Outcome::TimedOut);
        // One byte every 20 ms never completes the hello: the overall deadline (not a
        // per-read one) ends it, although the client never went quiet.
        assert_eq!(started.elapsed(), quick().timeout);
        drop(server);
        let _ = writer.await;
    }

    #[tokio::test]
    async fn garbage_is_rejected_at_once_and_handed_back() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
        let (bytes, outcome) = read_client_hello(&mut server, quick()).await;
        assert_eq!(outcome, Outcome::Unfingerprinted(Ja4Error::NotTls));
        assert!(bytes.starts_with(b"GET "));
    }

    #[tokio::test]
    async fn endless_records_stop_at_the_byte_cap() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            // A ClientHello declaring 16 KiB, sent as 1-byte records: 6 bytes per byte.
            let _ = client.write_all(&[0x16, 3, 1, 0, 4, 1, 0x00, 0x40, 0x00]).await;
            for _ in 0..20_000 {
                if client.write_all(&[0x16, 3, 1, 0, 1, 0xaa]).await.is_err() {
                    break;
                }
            }
        });
        let limits = Limits { timeout: Duration::from_secs(5), max_bytes: 4096 };
        let (bytes, outcome) = read_client_hello(&mut server, limits).await;
        assert_eq!(outcome, Outcome::Unfingerprinted(Ja4Error::TooLarge));
        assert_eq!(bytes.len(), 4096);
        drop(server);
        let _ = writer.await;
    }

    #[tokio::test]
    async fn a_client_closing_mid_hello_is_closed() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[0x16, 3, 1, 0x02]).await.expect("write");
        drop(client);
        let (bytes, outcome) = read_client_hello(&mut server, quick()).await;
        assert_eq!((bytes.len(), outcome), (4, Outcome::Closed));
    }

    /// A real rustls client's hello is fingerprinted and handed back byte for byte.
    #[tokio::test]
    async fn a_real_client_hello_is_fingerprinted() {
        pingora::tls::install_default_crypto_provider();
        let mut config = pingora::tls::ClientConfig::builder()
            .with_root_certificates(pingora::tls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = pingora::tls::TlsConnector::from(Arc::new(config));
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let name = pingora::tls::ServerName::try_from("gateway.test").expect("name");
        // The handshake cannot finish (nobody answers); only its first flight matters.
        let handshake = tokio::spawn(async move { connector.connect(name, client).await.is_ok() });
        let (bytes, outcome) = read_client_hello(&mut server, quick()).await;
        let Outcome::Fingerprint(fp) = outcome else { panic!("{outcome:?}") };
        // rustls offers TLS 1.3 and 1.2, sends SNI, and asked for http/1.1.
        assert!(fp.starts_with("t13d") && &fp[8..10] == "h1", "{fp}");
        assert_eq!(
            policy::ja4::hello_progress(&bytes),
            policy::ja4::HelloProgress::Complete(bytes.len())
        );
        drop(server);
        assert!(!handshake.await.expect("join"));
    }
}
