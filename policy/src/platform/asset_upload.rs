//! The real sizes of the files of an asset upload, read while its body streams.
//!
//! An upload session's manifest only declares sizes; the files come later in
//! `POST {base}/accounts/{id}/workers/assets/upload` as `multipart/form-data`, one part
//! per file named by its content hash, base64-encoded when the query says
//! `base64=true`. [`AssetUploadScanner`] follows the parts chunk by chunk without
//! holding the body (only a boundary's length of it between chunks), so the gateway
//! can refuse a file the moment it grows past its limit.

/// Longest part header block read (a part's headers are a line or two).
const MAX_PART_HEADERS: usize = 16 * 1024;

/// One file of the upload, complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// The part's name: the file's content hash.
    pub name: String,
    /// Its size, decoded from base64 when the upload is base64.
    pub bytes: u64,
}

/// Why an upload body could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The body does not have the multipart shape it declared.
    #[error("the asset upload is not well-formed multipart/form-data: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

/// Follows a multipart body's parts and measures each.
#[derive(Debug)]
pub struct AssetUploadScanner {
    delimiter: Vec<u8>,
    base64: bool,
    state: State,
    pending: Vec<u8>,
    name: String,
    raw: u64,
    significant: u64,
}

/// The boundary of a `multipart/...` content type, if it is one.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 200).then(|| v.to_string())
    })
}

impl AssetUploadScanner {
    /// A scanner for a body with this boundary; `base64`: the parts are base64 text
    /// whose decoded size counts.
    pub fn new(boundary: &str, base64: bool) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        AssetUploadScanner {
            delimiter,
            base64,
            state: State::Preamble,
            // The first boundary has no CRLF before it; pretend it has.
            pending: b"\r\n".to_vec(),
            name: String::new(),
            raw: 0,
            significant: 0,
        }
    }

    /// The part being read and its size so far, if one is open.
    pub fn current(&self) -> Option<(&str, u64)> {
        (self.state == State::Body).then(|| (self.name.as_str(), self.size()))
    }

    fn size(&self) -> u64 {
        if self.base64 {
            self.significant.saturating_mul(3) / 4
        } else {
            self.raw
        }
    }

    /// Counts the first `n` pending bytes as the open part's.
    fn count(&mut self, n: usize) {
        let bytes = &self.pending[..n];
        self.raw = self.raw.saturating_add(n as u64);
        if self.base64 {
            let sig = bytes.iter().filter(|b| !b.is_ascii_whitespace() && **b != b'=').count();
            self.significant = self.significant.saturating_add(sig as u64);
        }
    }

    /// Reads one chunk; returns the files it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<ScannedFile>, UploadError> {
        self.pending.extend_from_slice(chunk);
        let mut done = Vec::new();
        loop {
            match self.state {
                State::Done => {
                    self.pending.clear();
                    return Ok(done);
                }
                State::Preamble | State::Body => match find(&self.pending, &self.delimiter) {
                    Some(i) => {
                        if self.state == State::Body {
                            self.count(i);
                            let name = std::mem::take(&mut self.name);
                            done.push(ScannedFile { name, bytes: self.size() });
                        }
                        self.pending.drain(..i + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let safe = self.pending.len().saturating_sub(self.delimiter.len() - 1);
                        if self.state == State::Body {
                            self.count(safe);
                        }
                        self.pending.drain(..safe);
                        return Ok(done);
                    }
                },
                State::AfterDelimiter => {
                    if self.pending.len() < 2 {
                        return Ok(done);
                    }
                    if self.pending.starts_with(b"--") {
                        self.state = State::Done;
                        continue;
                    }
                    match find(&self.pending, b"\r\n") {
                        Some(i) if self.pending[..i].iter().all(|b| *b == b' ' || *b == b'\t') => {
                            self.pending.drain(..i + 2);
                            self.state = State::Headers;
                        }
                        Some(_) => return Err(UploadError::Malformed("text after a boundary")),
                        None if self.pending.len() > 256 => {
                            return Err(UploadError::Malformed("text after a boundary"))
                        }
                        None => return Ok(done),
                    }
                }
                State::Headers => match find(&self.pending, b"\r\n\r\n") {
                    Some(i) => {
                        let headers = String::from_utf8_lossy(&self.pending[..i]).into_owned();
                        self.name = part_name(&headers)
                            .ok_or(UploadError::Malformed("a part without a name"))?;
                        self.pending.drain(..i + 4);
                        self.raw = 0;
                        self.significant = 0;
                        self.state = State::Body;
                    }
                    None if self.pending.len() > MAX_PART_HEADERS => {
                        return Err(UploadError::Malformed("part headers too long"))
                    }
                    None => return Ok(done),
                },
            }
        }
    }

    /// Whether the body ended where a multipart body may end.
    pub fn finish(&self) -> Result<(), UploadError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(UploadError::Malformed("the body ended inside a part"))
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + i;
        if haystack.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The `name` parameter of a part's `Content-Disposition`.
fn part_name(headers: &str) -> Option<String> {
    headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        value.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("name")
                .then(|| v.trim().trim_matches('"').to_string())
                .filter(|n| !n.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in parts {
            out.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\"; filename=\"f\"\r\nContent-Type: application/null\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        out
    }

    #[test]
    fn measures_every_part_whatever_the_chunking() {
        let big = vec![b'a'; 10_000];
        let data = body(&[("h1", b"hello"), ("h2", &big), ("h3", b"")]);
        for step in [1usize, 3, 7, 64, 4096, data.len()] {
            let mut s = AssetUploadScanner::new("XyZ", false);
            let mut files = Vec::new();
            for chunk in data.chunks(step) {
                files.extend(s.feed(chunk).expect("well-formed"));
            }
            s.finish().expect("complete");
            let got: Vec<(String, u64)> = files.into_iter().map(|f| (f.name, f.bytes)).collect();
            assert_eq!(
                got,
                vec![("h1".into(), 5), ("h2".into(), 10_000), ("h3".into(), 0)],
                "step {step}"
            );
        }
    }

    #[test]
    fn base64_parts_count_their_decoded_size_and_open_parts_show_progress() {
        let data = body(&[("h1", b"aGVsbG8=\r\n"), ("h2", b"QUJD")]);
        let mut s = AssetUploadScanner::new("XyZ", true);
        let files = s.feed(&data).expect("well-formed");
        assert_eq!(files.iter().map(|f| f.bytes).collect::<Vec<_>>(), vec![5, 3]);
        let mut s = AssetUploadScanner::new("XyZ", false);
        s.feed(b"--XyZ\r\nContent-Disposition: form-data; name=\"h\"\r\n\r\n").expect("header");
        s.feed(&[b'x'; 100]).expect("body");
        let (name, size) = s.current().expect("open part");
        assert_eq!(name, "h");
        assert!(size >= 100 - 8, "all but a boundary's length is counted: {size}");
        assert!(s.finish().is_err(), "cut inside a part");
        assert_eq!(multipart_boundary("multipart/form-data; boundary=\"XyZ\""), Some("XyZ".into()));
        assert_eq!(multipart_boundary("application/json"), None);
    }
}
