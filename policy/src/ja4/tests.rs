//! JA4 against FoxIO's published results, the spec's worked example, and hostile input.

use super::*;

/// `(expected JA4, raw records)` from `vectors.txt`.
fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    include_str!("vectors.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (ja4, hex) = l.split_once(' ').expect("`JA4 HEX` line");
            (ja4, hex::decode(hex.trim()).expect("hex"))
        })
        .collect()
}

#[test]
fn ja4_matches_foxio_published_captures() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 8);
    for (expected, bytes) in &vectors {
        assert_eq!(ja4(bytes).as_deref(), Ok(*expected));
        assert_eq!(hello_progress(bytes), HelloProgress::Complete(bytes.len()));
    }
}

/// Builds a ClientHello body from parts (extension payloads given raw).
fn hello_body(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend_from_slice(&[7u8; 32]);
    b.push(0); // empty session id
    b.extend_from_slice(&u16::try_from(ciphers.len() * 2).expect("small").to_be_bytes());
    for c in ciphers {
        b.extend_from_slice(&c.to_be_bytes());
    }
    b.extend_from_slice(&[1, 0]); // compression: null
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend_from_slice(&kind.to_be_bytes());
        exts.extend_from_slice(&u16::try_from(data.len()).expect("small").to_be_bytes());
        exts.extend_from_slice(data);
    }
    b.extend_from_slice(&u16::try_from(exts.len()).expect("small").to_be_bytes());
    b.extend_from_slice(&exts);
    b
}

/// Wraps a ClientHello body in a handshake header and records of at most `fragment` bytes.
fn records(body: &[u8], fragment: usize) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("small").to_be_bytes();
    let mut message = vec![HANDSHAKE_CLIENT_HELLO, len[1], len[2], len[3]];
    message.extend_from_slice(body);
    let mut out = Vec::new();
    for chunk in message.chunks(fragment) {
        out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&u16::try_from(chunk.len()).expect("small").to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn u16s(values: &[u16], len_bytes: usize) -> Vec<u8> {
    let n = values.len() * 2;
    let mut v = if len_bytes == 1 {
        vec![u8::try_from(n).expect("small")]
    } else {
        u16::try_from(n).expect("small").to_be_bytes().to_vec()
    };
    for x in values {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn alpn(protocols: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for p in protocols {
        list.push(u8::try_from(p.len()).expect("small"));
        list.extend_from_slice(p);
    }
    let mut v = u16::try_from(list.len()).expect("small").to_be_bytes().to_vec();
    v.extend_from_slice(&list);
    v
}

/// The worked example of technical_details/JA4.md, with GREASE sprinkled in: the ciphers,
/// extensions and signature algorithms in the order the spec lists them.
fn spec_example(fragment: usize) -> Vec<u8> {
    let ciphers = [
        0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let order = [
        0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
        0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
    ];
    let mut exts = vec![(0x2a2a, Vec::new())];
    for kind in order {
        let data = match kind {
            0x0010 => alpn(&[b"h2", b"http/1.1"]),
            0x000d => u16s(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601], 2),
            0x002b => u16s(&[0x3a3a, 0x0304, 0x0303], 1),
            _ => Vec::new(),
        };
        exts.push((kind, data));
    }
    exts.push((0xfafa, vec![0]));
    records(&hello_body(&ciphers, &exts), fragment)
}

#[test]
fn ja4_spec_example_ignores_grease_and_record_splits() {
    for fragment in [usize::MAX, 64, 7, 1] {
        let bytes = spec_example(fragment.min(1 << 14));
        assert_eq!(
            ja4(&bytes).as_deref(),
            Ok("t13d1516h2_8daaf6152771_e5627efa2ab1"),
            "fragment {fragment}"
        );
        assert_eq!(hello_progress(&bytes), HelloProgress::Complete(bytes.len()));
    }
}

#[test]
fn ja4_trailing_bytes_after_the_hello_are_not_counted() {
    let mut bytes = spec_example(100);
    let hello_len = bytes.len();
    bytes.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]); // early data the TLS stack will read
    assert_eq!(hello_progress(&bytes), HelloProgress::Complete(hello_len));
    assert!(ja4(&bytes).is_ok());
}

#[test]
fn ja4_without_extensions_or_sigalgs_uses_zero_markers() {
    let bare = records(&hello_body(&[0x002f], &[]), 1 << 14);
    assert_eq!(ja4(&bare).as_deref(), Ok("t12i010000_ba72b8082249_000000000000"));
    // SNI and ALPN only: counted, but the extension hash list is empty.
    let only =
        records(&hello_body(&[], &[(0x0000, Vec::new()), (0x0010, alpn(&[b"h2"]))]), 1 << 14);
    assert_eq!(ja4(&only).as_deref(), Ok("t12d0002h2_000000000000_000000000000"));
}

#[test]
fn ja4_alpn_codes_follow_the_spec_table() {
    let cases: [(&[u8], &str); 10] = [
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"h", "hh"),
        (b"", "00"),
        (&[0xab], "ab"),
        (&[0x20], "20"),
        (&[0xab, 0xcd], "ad"),
        (&[0x20, 0x61], "21"),
        (&[0x30, 0xab], "3b"),
        (&[0x61, 0x20], "60"),
    ];
    for (value, code) in cases {
        assert_eq!(alpn_code(Some(value)), code, "{value:?}");
    }
    assert_eq!(alpn_code(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
    assert_eq!(alpn_code(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
    assert_eq!(alpn_code(None), "00");
}

#[test]
fn ja4_grease_detection() {
    assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
    assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0000));
}

#[test]
fn ja4_progress_needs_more_for_every_prefix() {
    for (_, bytes) in vectors() {
        for cut in 0..bytes.len() {
            assert_eq!(hello_progress(&bytes[..cut]), HelloProgress::NeedMore, "cut at {cut}");
            assert_eq!(ja4(&bytes[..cut]), Err(Ja4Error::Truncated));
        }
    }
}

#[test]
fn ja4_progress_rejects_non_tls_at_once() {
    assert_eq!(hello_progress(b"G"), HelloProgress::Invalid(Ja4Error::NotTls));
    assert_eq!(hello_progress(b"GET / HTTP/1.1\r\n"), HelloProgress::Invalid(Ja4Error::NotTls));
    // An alert record, and a handshake that is not a ClientHello.
    assert_eq!(
        hello_progress(&[0x15, 3, 3, 0, 2, 2, 40]),
        HelloProgress::Invalid(Ja4Error::NotTls)
    );
    assert_eq!(
        hello_progress(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]),
        HelloProgress::Invalid(Ja4Error::NotTls)
    );
    // SSLv2-style hello.
    assert_eq!(hello_progress(&[0x80, 0x2e, 0x01]), HelloProgress::Invalid(Ja4Error::NotTls));
}

#[test]
fn ja4_progress_enforces_the_size_cap() {
    let declared = u32::try_from(MAX_HELLO_LEN + 1).expect("small").to_be_bytes();
    let head = [
        CONTENT_HANDSHAKE,
        3,
        1,
        0,
        4,
        HANDSHAKE_CLIENT_HELLO,
        declared[1],
        declared[2],
        declared[3],
    ];
    assert_eq!(hello_progress(&head), HelloProgress::Invalid(Ja4Error::TooLarge));
    assert_eq!(
        hello_progress(&[CONTENT_HANDSHAKE, 3, 1, 0x7f, 0xff]),
        HelloProgress::Invalid(Ja4Error::Malformed)
    );
    assert_eq!(
        hello_progress(&[CONTENT_HANDSHAKE, 3, 1, 0, 0]),
        HelloProgress::Invalid(Ja4Error::Malformed)
    );
}

/// xorshift64*: a fixed-seed generator so the mutation test is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).expect("fits")).expect("fits")
    }
}

#[test]
fn ja4_mutated_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seeds: Vec<Vec<u8>> = vectors().into_iter().map(|(_, b)| b).collect();
    seeds.push(spec_example(50));
    let (mut complete, mut parsed) = (0, 0);
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => {
                    let bit = 1u8 << rng.below(8);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= bit;
                    }
                }
                1 => {
                    let v = u8::try_from(rng.below(256)).expect("byte");
                    if let Some(b) = bytes.get_mut(at) {
                        *b = v;
                    }
                }
                2 => bytes.truncate(at),
                3 => {
                    if at < bytes.len() {
                        bytes.remove(at);
                    }
                }
                _ => bytes.insert(at, 0xff),
            }
        }
        if let HelloProgress::Complete(n) = hello_progress(&bytes) {
            assert!(n <= bytes.len());
            complete += 1;
        }
        if let Ok(fp) = ja4(&bytes) {
            assert_eq!(fp.len(), 36, "{fp}");
            parsed += 1;
        }
    }
    // The mutations must exercise both the accepting and the rejecting paths.
    assert!(
        complete > 1_000 && parsed > 1_000 && parsed < 20_000,
        "complete {complete}, parsed {parsed}"
    );
}
