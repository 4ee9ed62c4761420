//! Checks of a TLS listener's certificate and key files.
//!
//! Used by the configuration loader, which reports a located error, and by the TLS
//! listener setup; it depends on neither, so both can use it.

use std::path::Path;

/// Checks that `cert` holds a PEM certificate chain and `key` a private key rustls
/// accepts for it. Pingora's `TlsSettings::build` panics on bad files inside its
/// listener setup, so the gateway checks first and reports a located error instead.
pub fn check_cert_and_key(cert: &Path, key: &Path) -> Result<(), String> {
    let (Some(cert_s), Some(key_s)) = (cert.to_str(), key.to_str()) else {
        return Err("TLS file paths must be UTF-8".into());
    };
    for (what, path) in [("certificate", cert), ("private key", key)] {
        if let Err(e) = std::fs::metadata(path) {
            return Err(format!("cannot read the TLS {what} {}: {e}", path.display()));
        }
    }
    let (certs, key_der) = match pingora::tls::load_certs_and_key_files(cert_s, key_s) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            // One of the two holds no PEM item of its kind; name the one that does not.
            let no_cert =
                pingora::tls::load_pem_file_ca(&cert_s.to_string()).map_or(true, |c| c.is_empty());
            return Err(if no_cert {
                format!("{} holds no PEM certificate", cert.display())
            } else {
                format!("{} holds no PEM private key (PKCS#1, PKCS#8 or SEC1)", key.display())
            });
        }
        Err(e) => return Err(format!("cannot load {} / {}: {e}", cert.display(), key.display())),
    };
    pingora::tls::install_default_crypto_provider();
    pingora::tls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} and {} do not make a usable TLS identity: {e}",
                cert.display(),
                key.display()
            )
        })
}
