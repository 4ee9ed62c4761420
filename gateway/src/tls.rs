//! TLS termination at the gateway, with a JA4 fingerprint per connection.
//!
//! Pingora does not hand the ClientHello to the proxy phases, and rustls's view of it
//! lacks what JA4 needs. Pingora 0.9's pre-TLS hook ([`PreTlsProcess`]) does see the
//! raw socket just before the handshake on TLS listeners, so [`Ja4Hook`] reads the
//! ClientHello there ([`hello`]), computes JA4 with [`policy::ja4`] (FoxIO's BSD-3 JA4
//! method), puts the bytes back with `L4Stream::rewind` for rustls, and files the
//! fingerprint under the connection's socket digest ([`registry`]), where
//! [`tls_fingerprint`] finds it for every request on that connection.
//!
//! Same approach as pingap 0.16 (reimplemented, not copied).

pub mod hello;
pub mod registry;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::GetSocketDigest;
use pingora::proxy::Session;

use crate::config::TlsListener;
use hello::{read_client_hello, Limits, Outcome};
use registry::Fingerprints;

/// Fingerprints of open connections; global because the request phase only has the
/// session, and the hook is built before the proxy service exists.
static FINGERPRINTS: LazyLock<Fingerprints> = LazyLock::new(Fingerprints::default);

/// The JA4 of the TLS connection this request arrived on; `None` on plain-HTTP
/// listeners or when the ClientHello could not be fingerprinted. Cheap: plain
/// connections return before any lookup; TLS ones take one sharded-map read.
pub fn tls_fingerprint(session: &Session) -> Option<Arc<str>> {
    let digest = session.digest()?;
    digest.ssl_digest.as_ref()?;
    FINGERPRINTS.get(digest.socket_digest.as_ref()?)
}

/// The pre-TLS hook that fingerprints each ClientHello.
#[derive(Debug, Default)]
pub struct Ja4Hook {
    limits: Limits,
}

#[async_trait]
impl PreTlsProcess for Ja4Hook {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let (bytes, outcome) = read_client_hello(stream, self.limits).await;
        // Everything read goes back, in one piece: rewound chunks replay last-in first-out.
        stream.rewind(&bytes);
        match outcome {
            Outcome::Fingerprint(ja4) => {
                if let Some(digest) = stream.get_socket_digest() {
                    tracing::debug!(ja4 = %ja4, "TLS client fingerprint");
                    FINGERPRINTS.insert(&digest, ja4.into());
                }
                Ok(())
            }
            // Not ours to judge: rustls refuses what is not TLS, and a valid hello we
            // cannot fingerprint simply has no `tls_fp` (the policy's `missing` applies).
            Outcome::Unfingerprinted(reason) => {
                tracing::debug!(%reason, "no TLS fingerprint for this connection");
                Ok(())
            }
            Outcome::TimedOut => pingora::Error::e_explain(
                pingora::ErrorType::ReadTimedout,
                "no complete TLS ClientHello before the deadline",
            ),
            Outcome::Closed => pingora::Error::e_explain(
                pingora::ErrorType::ConnectionClosed,
                "client closed before its TLS ClientHello was complete",
            ),
        }
    }
}

/// The hook to install on a service's listeners.
pub fn hook() -> Arc<dyn PreTlsProcess> {
    Arc::new(Ja4Hook::default())
}

/// Pingora's TLS settings for one `[[server.tls]]` listener (Mozilla intermediate
/// profile: TLS 1.2 and 1.3).
pub fn settings(listener: &TlsListener) -> Result<TlsSettings, String> {
    crate::certs::check_cert_and_key(&listener.cert, &listener.key)?;
    let (Some(cert), Some(key)) = (listener.cert.to_str(), listener.key.to_str()) else {
        return Err("TLS file paths must be UTF-8".into());
    };
    let mut settings = TlsSettings::intermediate(cert, key).map_err(|e| e.to_string())?;
    if listener.h2 {
        settings.enable_h2();
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use crate::config::GatewayConfig;

    const BASE: &str = "[server]\nlisten = [\"127.0.0.1:8787\"]\n\n[[server.tls]]\nlisten = \"127.0.0.1:8443\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n[upstream]\nurl = \"http://127.0.0.1:9\"\n";

    #[test]
    fn tls_listener_config_compiles_with_defaults() {
        let c = GatewayConfig::parse("g.toml", BASE).expect("valid");
        assert_eq!(c.tls.len(), 1);
        assert_eq!(c.tls[0].listen, "127.0.0.1:8443".parse().expect("addr"));
        assert_eq!(c.tls[0].cert.to_str(), Some("cert.pem"));
        assert!(!c.tls[0].h2);
        assert_eq!(c.tls[0].cert_at, (6, 8));
        let h2 = GatewayConfig::parse(
            "g.toml",
            &BASE.replace("key = \"key.pem\"\n", "key = \"key.pem\"\nh2 = true\n"),
        )
        .expect("valid");
        assert!(h2.tls[0].h2);
        // TLS only: the plain listener list may be empty.
        let only = GatewayConfig::parse("g.toml", &BASE.replace("[\"127.0.0.1:8787\"]", "[]"))
            .expect("valid");
        assert!(only.listen.is_empty() && only.tls.len() == 1);
    }

    #[test]
    fn tls_listener_errors_are_located() {
        let e = GatewayConfig::parse(
            "g.toml",
            &BASE.replace("\"127.0.0.1:8443\"", "\"localhost:8443\""),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "g.toml:5:10: server.tls listen address \"localhost:8443\" is not IP:PORT"
            ),
            "{e}"
        );
        let e = GatewayConfig::parse("g.toml", &BASE.replace("127.0.0.1:8443", "127.0.0.1:8787"))
            .unwrap_err();
        assert_eq!(e.to_string(), "g.toml:5:10: 127.0.0.1:8787 is already a listen address");
        let e = GatewayConfig::parse("g.toml", &BASE.replace("key = \"key.pem\"", "key = \" \""))
            .unwrap_err();
        assert_eq!(e.to_string(), "g.toml:7:7: server.tls key must name a PEM file");
        let e = GatewayConfig::parse(
            "g.toml",
            &BASE.replace("key = \"key.pem\"", "key = \"k\"\ncrt = \"x\""),
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (8, 1), "{e}");
        let e =
            GatewayConfig::parse("g.toml", &BASE.replace("cert = \"cert.pem\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("missing field \"cert\""), "{e}");
    }

    #[test]
    fn unreadable_or_bad_cert_files_are_located_at_cert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.toml");
        std::fs::write(&path, BASE).expect("write");
        let e = GatewayConfig::load(&path).unwrap_err();
        assert_eq!((e.line, e.column), (6, 8), "{e}");
        assert!(e.message.contains("cannot read the TLS certificate"), "{e}");
        std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
        std::fs::write(dir.path().join("key.pem"), "not a key").expect("write");
        let e = GatewayConfig::load(&path).unwrap_err();
        assert_eq!((e.line, e.column), (6, 8), "{e}");
    }
}
