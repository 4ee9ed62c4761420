//! JA4 TLS client fingerprints, computed from the raw ClientHello bytes.
//!
//! JA4 is FoxIO's TLS client fingerprint (<https://github.com/FoxIO-LLC/ja4>,
//! `technical_details/JA4.md`). The JA4 TLS method is BSD-3-Clause licensed; this is an
//! independent implementation of that published method. The other JA4+ methods (JA4H,
//! JA4X, JA4S, ...) are under the FoxIO licence and deliberately not implemented here.
//!
//! Why parse bytes ourselves: rustls's ClientHello view lacks the extension list and
//! supported_versions, and OpenSSL's callback hides extensions it does not know, so both
//! would compute a different JA4 than the rest of the world for the same client.
//!
//! Pure logic, no I/O: the gateway reads bytes from the socket, asks [`hello_progress`]
//! whether the ClientHello is complete, then calls [`ja4`]. Every length is checked
//! against the input, so any byte string (truncated, hostile, random) yields an error,
//! never a panic.

use sha2::{Digest, Sha256};

/// Largest ClientHello handshake message accepted (bytes, without record headers).
/// Browsers send about 0.5-2 KiB (post-quantum key shares included); 16 KiB is one
/// full TLS record and leaves room for big session tickets and ECH.
pub const MAX_HELLO_LEN: usize = 16 * 1024;

/// Largest TLS record payload allowed by RFC 8446 (2^14), plus the 256 bytes of
/// expansion the RFC tolerates for legacy peers.
const MAX_RECORD_LEN: usize = (1 << 14) + 256;

const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;

const EXT_SNI: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;
const EXT_SIG_ALGS: u16 = 0x000d;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// Why no JA4 could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ja4Error {
    /// The bytes are not TLS handshake records starting with a ClientHello.
    #[error("not a TLS ClientHello")]
    NotTls,
    /// The input ends before the ClientHello does.
    #[error("truncated ClientHello")]
    Truncated,
    /// The ClientHello declares more than the size cap.
    #[error("ClientHello larger than the {MAX_HELLO_LEN}-byte cap")]
    TooLarge,
    /// A length field inside the ClientHello does not fit its container.
    #[error("malformed ClientHello")]
    Malformed,
}

/// What a reader has so far, from [`hello_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloProgress {
    /// Keep reading: the ClientHello is not complete yet.
    NeedMore,
    /// The first `n` bytes hold complete records carrying the whole ClientHello.
    Complete(usize),
    /// Give up: this will never become a ClientHello we fingerprint.
    Invalid(Ja4Error),
}

/// Tells a socket reader whether `buf` (everything read so far) already holds the whole
/// ClientHello, so it neither stops early nor waits for bytes that never come (the client
/// waits for our answer once its hello is sent).
pub fn hello_progress(buf: &[u8]) -> HelloProgress {
    match reassemble(buf) {
        Ok((_, used)) => HelloProgress::Complete(used),
        Err(Ja4Error::Truncated) => HelloProgress::NeedMore,
        Err(e) => HelloProgress::Invalid(e),
    }
}

/// Collects the ClientHello handshake message (header included) from the handshake
/// records at the start of `buf`; returns it with the number of record bytes used.
fn reassemble(buf: &[u8]) -> Result<(Vec<u8>, usize), Ja4Error> {
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = buf.get(at..at + RECORD_HEADER) else {
            // Say "not TLS" as early as the first byte allows, so a plain-HTTP client
            // on the TLS port is not kept waiting.
            if at == 0 && buf.first().is_some_and(|&b| b != CONTENT_HANDSHAKE) {
                return Err(Ja4Error::NotTls);
            }
            return Err(Ja4Error::Truncated);
        };
        // Record version major is 3 for every SSL3/TLS version (0x0300-0x0304).
        if header[0] != CONTENT_HANDSHAKE || header[1] != 3 {
            return Err(Ja4Error::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD_LEN {
            return Err(Ja4Error::Malformed);
        }
        let body =
            buf.get(at + RECORD_HEADER..at + RECORD_HEADER + len).ok_or(Ja4Error::Truncated)?;
        message.extend_from_slice(body);
        at += RECORD_HEADER + len;
        if message[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(Ja4Error::NotTls);
        }
        if message.len() >= 4 {
            let declared = (usize::from(message[1]) << 16)
                | (usize::from(message[2]) << 8)
                | usize::from(message[3]);
            if declared > MAX_HELLO_LEN {
                return Err(Ja4Error::TooLarge);
            }
            if message.len() >= 4 + declared {
                message.truncate(4 + declared);
                return Ok((message, at));
            }
        }
    }
}

/// The parts of a ClientHello that JA4 uses, GREASE values already removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` of the hello body (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// Cipher suites in the order sent.
    pub ciphers: Vec<u16>,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    /// Versions from the supported_versions extension.
    pub supported_versions: Vec<u16>,
    /// Signature algorithms in the order sent.
    pub signature_algorithms: Vec<u16>,
    /// First ALPN protocol name, if the ALPN extension has one.
    pub alpn_first: Option<Vec<u8>>,
}

/// GREASE values (RFC 8701) are random per connection by design; JA4 ignores them so
/// one client keeps one fingerprint.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A bounds-checked reader over a byte slice: every accessor fails instead of panicking.
struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Ja4Error> {
        if n > self.data.len() {
            return Err(Ja4Error::Malformed);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Ja4Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Ja4Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A sub-cursor over a vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self) -> Result<Cursor<'a>, Ja4Error> {
        let n = usize::from(self.u8()?);
        Ok(Cursor { data: self.take(n)? })
    }
    fn vec16(&mut self) -> Result<Cursor<'a>, Ja4Error> {
        let n = usize::from(self.u16()?);
        Ok(Cursor { data: self.take(n)? })
    }
    /// Reads the rest as big-endian u16s, dropping GREASE; an odd byte is malformed.
    fn u16_list(self) -> Result<Vec<u16>, Ja4Error> {
        let pairs = self.data.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(Ja4Error::Malformed);
        }
        Ok(pairs.map(|c| u16::from_be_bytes([c[0], c[1]])).filter(|v| !is_grease(*v)).collect())
    }
}

impl ClientHello {
    /// Parses TLS records holding a ClientHello (as read from the socket, record headers
    /// included). Bytes after the ClientHello are ignored.
    pub fn parse(records: &[u8]) -> Result<ClientHello, Ja4Error> {
        let (message, _) = reassemble(records)?;
        // `reassemble` guarantees a 4-byte header and exactly the declared body.
        Self::parse_body(message.get(4..).ok_or(Ja4Error::Malformed)?)
    }

    fn parse_body(body: &[u8]) -> Result<ClientHello, Ja4Error> {
        let mut c = Cursor { data: body };
        let mut hello = ClientHello { legacy_version: c.u16()?, ..ClientHello::default() };
        c.take(32)?; // random
        let session_id = c.vec8()?;
        if session_id.data.len() > 32 {
            return Err(Ja4Error::Malformed);
        }
        hello.ciphers = c.vec16()?.u16_list()?;
        c.vec8()?; // compression methods
        if c.data.is_empty() {
            return Ok(hello); // a hello without extensions (old clients) is valid
        }
        let mut exts = c.vec16()?;
        while !exts.data.is_empty() {
            let kind = exts.u16()?;
            let mut data = exts.vec16()?;
            if is_grease(kind) {
                continue;
            }
            hello.extensions.push(kind);
            match kind {
                EXT_SUPPORTED_VERSIONS => hello.supported_versions = data.vec8()?.u16_list()?,
                EXT_SIG_ALGS => hello.signature_algorithms = data.vec16()?.u16_list()?,
                EXT_ALPN => {
                    let mut list = data.vec16()?;
                    if !list.data.is_empty() {
                        hello.alpn_first = Some(list.vec8()?.data.to_vec());
                    }
                }
                _ => {}
            }
        }
        Ok(hello)
    }

    /// The JA4 fingerprint, `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub fn ja4(&self) -> String {
        let version = self.supported_versions.iter().copied().max().unwrap_or(self.legacy_version);
        let sni = if self.extensions.contains(&EXT_SNI) { 'd' } else { 'i' };
        let mut out = format!(
            "t{}{}{:02}{:02}{}_",
            version_code(version),
            sni,
            self.ciphers.len().min(99),
            self.extensions.len().min(99),
            alpn_code(self.alpn_first.as_deref()),
        );
        let mut ciphers = self.ciphers.clone();
        ciphers.sort_unstable();
        out.push_str(&hash12(&hex_list(&ciphers)));
        out.push('_');
        let mut exts: Vec<u16> =
            self.extensions.iter().copied().filter(|e| *e != EXT_SNI && *e != EXT_ALPN).collect();
        exts.sort_unstable();
        let mut text = hex_list(&exts);
        if !exts.is_empty() && !self.signature_algorithms.is_empty() {
            text.push('_');
            text.push_str(&hex_list(&self.signature_algorithms));
        }
        out.push_str(&hash12(&text));
        out
    }
}

/// Computes the JA4 fingerprint of the ClientHello at the start of `records`.
pub fn ja4(records: &[u8]) -> Result<String, Ja4Error> {
    ClientHello::parse(records).map(|h| h.ja4())
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First and last character of the first ALPN value; its hex form's first and last
/// digit when either end is not an ASCII letter or digit; `00` when absent or empty.
fn alpn_code(alpn: Option<&[u8]>) -> String {
    let Some((&first, rest)) = alpn.and_then(|a| a.split_first()) else { return "00".into() };
    let last = rest.last().copied().unwrap_or(first);
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        format!("{}{}", char::from(first), char::from(last))
    } else {
        let digits = b"0123456789abcdef";
        format!(
            "{}{}",
            char::from(digits[usize::from(first >> 4)]),
            char::from(digits[usize::from(last & 0x0f)])
        )
    }
}

fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{v:04x}"));
    }
    s
}

/// First 12 hex digits of SHA-256, or twelve zeros for an empty list (JA4's marker for
/// "no values", distinct from the hash of an empty string).
fn hash12(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".into();
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(12);
    hex
}

#[cfg(test)]
mod tests;
