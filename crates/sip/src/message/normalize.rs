//! Rewrites raw SIP bytes into the plain subset of RFC 3261 syntax that rsip 0.4 reads right.
//!
//! rsip reads one `Name: value` per CRLF-terminated line and takes the body as everything
//! after the blank line. Real traffic uses more of the grammar, so before rsip sees a
//! message we: expand compact names (§7.3.3), unfold continuation lines and drop LWS
//! before the colon (§7.3.1), split comma-joined Via and Contact values into one header
//! each (§7.3.1), remove the SWS the grammar allows around `/ ; = , :` in Via and around
//! `; = ,` in name-addr headers (§25.1), end every line with CRLF, cut the body to
//! Content-Length (§18.3, §20.14) and replace bytes that are not UTF-8 in header values
//! (rsip refuses the whole message for them). The same text is produced twice: first into a
//! comparer, so a message that needs nothing is returned borrowed with no second copy.

use std::borrow::Cow;

use crate::Error;

/// Logical header lines we read in one message: a bound on the work a datagram can cause.
pub const MAX_HEADERS: usize = 256;

/// Normalises `bytes` (one whole message) for rsip; borrows when nothing needs changing.
///
/// CRLFs before the start line are skipped (§7.5). A Content-Length larger than the bytes
/// present is an error; bytes past it are dropped. Without Content-Length the body runs
/// to the end of `bytes` (what §18.3 allows on datagrams; streams frame before this).
pub fn normalize(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    let msg = skip_leading_crlf(bytes);
    let layout = Layout::scan(msg)?;
    let mut cmp = Compare {
        orig: msg,
        pos: 0,
        same: true,
    };
    emit(msg, &layout, &mut cmp);
    if cmp.same {
        let end = layout.body_start.saturating_add(layout.body_len);
        return msg
            .get(..end)
            .map(Cow::Borrowed)
            .ok_or(Error::BadMessage("Content-Length exceeds body"));
    }
    let mut out = Vec::with_capacity(msg.len().saturating_add(64));
    emit(msg, &layout, &mut out);
    Ok(Cow::Owned(out))
}

/// Reads the Content-Length of a header block (start line included), if any.
///
/// Used by the stream framer, which needs the length before the body has arrived.
pub(crate) fn content_length(head: &[u8]) -> Result<Option<usize>, Error> {
    let after_start = match find_byte(head, b'\n') {
        Some(i) => i.saturating_add(1),
        None => return Ok(None),
    };
    let mut length = None;
    // Lines that are not headers are rsip's to refuse later; framing only needs the length.
    for header in Headers::new(head.get(after_start..).unwrap_or_default()).flatten() {
        if header.kind == Kind::ContentLength {
            let value = parse_content_length(header.value)?;
            if length.is_some_and(|l| l != value) {
                return Err(Error::BadMessage("conflicting Content-Length"));
            }
            length = Some(value);
        }
    }
    Ok(length)
}

/// The bytes from the first that is not part of a leading CR/LF run.
pub(crate) fn skip_leading_crlf(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    bytes.get(n..).unwrap_or_default()
}

/// Where the parts of a message are.
struct Layout {
    /// End of the start line's text (before its CR/LF).
    start_line_end: usize,
    /// First byte of the first header line.
    headers_start: usize,
    /// End of the header block: first byte of the blank line.
    headers_end: usize,
    /// First byte of the body.
    body_start: usize,
    /// Body length to keep.
    body_len: usize,
}

impl Layout {
    fn scan(msg: &[u8]) -> Result<Self, Error> {
        let first_nl = find_byte(msg, b'\n').ok_or(Error::BadMessage("incomplete message"))?;
        let start_line_end = trim_cr(msg, first_nl);
        if start_line_end == 0 {
            return Err(Error::BadMessage("empty start line"));
        }
        let headers_start = first_nl.saturating_add(1);
        // Find the blank line: a line that is empty or just CR.
        let mut pos = headers_start;
        let (headers_end, body_start) = loop {
            let rest = msg.get(pos..).unwrap_or_default();
            let nl = find_byte(rest, b'\n').ok_or(Error::BadMessage("missing empty line"))?;
            if nl == 0 || (nl == 1 && rest.first() == Some(&b'\r')) {
                break (pos, pos.saturating_add(nl).saturating_add(1));
            }
            pos = pos.saturating_add(nl).saturating_add(1);
        };
        let head = msg.get(headers_start..headers_end).unwrap_or_default();
        let mut length = None;
        for (count, header) in Headers::new(head).enumerate() {
            if count >= MAX_HEADERS {
                return Err(Error::BadMessage("too many headers"));
            }
            let header = header?;
            if has_control_byte(header.value) {
                return Err(Error::BadMessage("control character in header"));
            }
            if header.kind == Kind::ContentLength {
                let value = parse_content_length(header.value)?;
                if length.is_some_and(|l| l != value) {
                    return Err(Error::BadMessage("conflicting Content-Length"));
                }
                length = Some(value);
            }
        }
        let available = msg.len().saturating_sub(body_start);
        let body_len = match length {
            Some(l) if l > available => {
                return Err(Error::BadMessage("Content-Length exceeds body"));
            }
            Some(l) => l,
            None => available,
        };
        Ok(Self {
            start_line_end,
            headers_start,
            headers_end,
            body_start,
            body_len,
        })
    }
}

/// Whether a raw header value holds a control byte other than HT and the CRLF of a fold
/// (RFC 3261 §25.1: TEXT-UTF8 and LWS only). The one exception is a quoted-pair inside a
/// quoted string (`"NUL:\<NUL>"`, RFC 4475 intmeth); a bare NUL inside a From is a
/// broken or hostile peer, never a name.
fn has_control_byte(value: &[u8]) -> bool {
    let (mut in_quote, mut escaped) = (false, false);
    for (i, b) in value.iter().enumerate() {
        if escaped {
            escaped = false;
            if !matches!(b, b'\r' | b'\n') {
                continue;
            }
        }
        match b {
            b'\t' | b'\n' => {}
            b'\r' if value.get(i + 1) == Some(&b'\n') => {}
            b'"' => in_quote = !in_quote,
            b'\\' if in_quote => escaped = true,
            _ if b.is_ascii_control() => return true,
            _ => {}
        }
    }
    false
}

fn parse_content_length(value: &[u8]) -> Result<usize, Error> {
    const BAD: Error = Error::BadMessage("bad Content-Length");
    let digits = trim_lws(value);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// Writes the normalised message into `out`.
fn emit(msg: &[u8], layout: &Layout, out: &mut impl Sink) {
    out.put(msg.get(..layout.start_line_end).unwrap_or_default());
    out.put(b"\r\n");
    let head = msg
        .get(layout.headers_start..layout.headers_end)
        .unwrap_or_default();
    // Layout::scan already read every header without error, so none fails here.
    for header in Headers::new(head).flatten() {
        emit_header(&header, out);
    }
    out.put(b"\r\n");
    let body_end = layout.body_start.saturating_add(layout.body_len);
    out.put(msg.get(layout.body_start..body_end).unwrap_or_default());
}

fn emit_header(header: &RawHeader<'_>, out: &mut impl Sink) {
    let name = header.name;
    let structured = header.kind.structured();
    let splits = header.kind.splits();
    let via = header.kind == Kind::Via;
    out.put(name);
    out.put(b":");

    let mut elements = 0usize; // elements (comma-separated parts) started so far
    let mut started = false; // current element has content
    let mut pending_space = false;
    let mut after_separator = false;
    let mut in_quote = false;
    let mut escaped = false;
    let mut in_angle = false;
    // rsip refuses a whole message for one header that is not UTF-8 (an ISO-8859-1
    // display name from an old SBC); we replace the bad bytes with U+FFFD instead.
    let value = String::from_utf8_lossy(header.value);
    for &b in value.as_bytes() {
        if in_quote {
            if b == b'\r' || b == b'\n' {
                // A fold inside quotes: keep the SP/HT that follows. CR and LF cannot be
                // quoted (§25.1 quoted-pair), so this holds after a backslash too.
                continue;
            }
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quote = false;
            }
            out.put_byte(b);
            continue;
        }
        if is_lws(b) {
            pending_space = started;
            continue;
        }
        if in_angle {
            if pending_space {
                out.put_byte(b' ');
                pending_space = false;
            }
            out.put_byte(b);
            in_angle = b != b'>';
            continue;
        }
        if splits && b == b',' {
            // End of an element; the next one starts on its own header line.
            started = false;
            pending_space = false;
            after_separator = false;
            continue;
        }
        let separator =
            structured && (matches!(b, b';' | b'=' | b',') || (via && matches!(b, b'/' | b':')));
        if !started {
            if elements > 0 {
                out.put(b"\r\n");
                out.put(name);
                out.put(b":");
            }
            out.put_byte(b' ');
            elements += 1;
            started = true;
        } else if pending_space && !separator && !after_separator {
            out.put_byte(b' ');
        }
        pending_space = false;
        after_separator = separator;
        out.put_byte(b);
        if structured {
            in_quote = b == b'"';
            in_angle = b == b'<';
        } else {
            in_quote = b == b'"';
        }
    }
    out.put(b"\r\n");
}

/// The headers whose value shape we care about; the rest pass through unfolded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Via,
    Contact,
    NameAddr,
    ContentLength,
    CallId,
    CSeq,
    Other,
}

impl Kind {
    /// The kind of a header by its long name.
    fn of(name: &[u8]) -> Self {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("Via") {
            Self::Via
        } else if is("Contact") {
            Self::Contact
        } else if is("From")
            || is("To")
            || is("Route")
            || is("Record-Route")
            || is("Refer-To")
            || is("Referred-By")
        {
            Self::NameAddr
        } else if is("Content-Length") {
            Self::ContentLength
        } else if is("Call-ID") {
            Self::CallId
        } else if is("CSeq") {
            Self::CSeq
        } else {
            Self::Other
        }
    }

    /// Whether SWS around separators is removed (§25.1: SEMI, EQUAL, COMMA, SLASH, COLON).
    fn structured(self) -> bool {
        matches!(self, Self::Via | Self::Contact | Self::NameAddr)
    }

    /// Whether comma-joined values become separate header lines (rsip keeps only the first).
    fn splits(self) -> bool {
        matches!(self, Self::Via | Self::Contact)
    }
}

/// Compact forms: RFC 3261 §7.3.3 and the later ones in IANA's "SIP Parameters" registry.
const COMPACT: &[(u8, &[u8])] = &[
    (b'a', b"Accept-Contact"),
    (b'b', b"Referred-By"),
    (b'c', b"Content-Type"),
    (b'd', b"Request-Disposition"),
    (b'e', b"Content-Encoding"),
    (b'f', b"From"),
    (b'i', b"Call-ID"),
    (b'j', b"Reject-Contact"),
    (b'k', b"Supported"),
    (b'l', b"Content-Length"),
    (b'm', b"Contact"),
    (b'n', b"Identity-Info"),
    (b'o', b"Event"),
    (b'r', b"Refer-To"),
    (b's', b"Subject"),
    (b't', b"To"),
    (b'u', b"Allow-Events"),
    (b'v', b"Via"),
    (b'x', b"Session-Expires"),
    (b'y', b"Identity"),
];

/// The long name for a compact one; other names as written.
pub(crate) fn expand(name: &[u8]) -> &[u8] {
    if let [c] = name {
        let c = c.to_ascii_lowercase();
        if let Some((_, long)) = COMPACT.iter().find(|(k, _)| *k == c) {
            return long;
        }
    }
    name
}

/// One logical header: long name, kind and raw value (folds still inside).
pub(crate) struct RawHeader<'a> {
    /// The name, compact forms expanded.
    pub(crate) name: &'a [u8],
    pub(crate) kind: Kind,
    pub(crate) value: &'a [u8],
}

/// Iterates the logical headers of a header block (no start line, no blank line).
pub(crate) struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Headers<'a> {
    pub(crate) fn new(block: &'a [u8]) -> Self {
        Self { rest: block }
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Result<RawHeader<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let block = self.rest;
        if block.is_empty() {
            return None;
        }
        // The logical line runs until a line break not followed by SP/HT.
        let mut end = block.len();
        let mut next = block.len();
        let mut i = 0;
        while let Some(off) = block.get(i..).and_then(|r| find_byte(r, b'\n')) {
            let nl = i.saturating_add(off);
            if !matches!(block.get(nl.saturating_add(1)), Some(b' ' | b'\t')) {
                end = nl;
                next = nl.saturating_add(1);
                break;
            }
            i = nl.saturating_add(1);
        }
        self.rest = block.get(next..).unwrap_or_default();
        let mut line = block.get(..end).unwrap_or_default();
        if let [rest @ .., b'\r'] = line {
            line = rest; // the CR of the CRLF, not part of the value
        }
        Some(split_header(line))
    }
}

fn split_header(line: &[u8]) -> Result<RawHeader<'_>, Error> {
    let name_len = line.iter().take_while(|b| is_token(**b)).count();
    if name_len == 0 {
        return Err(Error::BadMessage(
            if matches!(line.first(), Some(b' ' | b'\t')) {
                "bad header folding"
            } else {
                "bad header name"
            },
        ));
    }
    let (name, rest) = line.split_at(name_len);
    let ws = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    match rest.get(ws..) {
        Some([b':', value @ ..]) => {
            let name = expand(name);
            Ok(RawHeader {
                name,
                kind: Kind::of(name),
                value,
            })
        }
        _ => Err(Error::BadMessage("bad header line")),
    }
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_lws(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_lws(*first) {
            break;
        }
        v = rest;
    }
    while let [rest @ .., last] = v {
        if !is_lws(*last) {
            break;
        }
        v = rest;
    }
    v
}

fn trim_cr(msg: &[u8], nl: usize) -> usize {
    if nl > 0 && msg.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    }
}

pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// Where normalised text goes: a buffer, or a comparer against the original.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }
}

/// Checks, without copying, that the normalised text equals the original.
struct Compare<'a> {
    orig: &'a [u8],
    pos: usize,
    same: bool,
}

impl Sink for Compare<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if !self.same {
            return;
        }
        let end = self.pos.saturating_add(bytes.len());
        self.same = self.orig.get(self.pos..end) == Some(bytes);
        self.pos = end;
    }
    fn put_byte(&mut self, b: u8) {
        if self.same {
            self.same = self.orig.get(self.pos) == Some(&b);
            self.pos = self.pos.saturating_add(1);
        }
    }
}
