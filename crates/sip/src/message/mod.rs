//! Bytes to SIP messages and back: normalisation before rsip, Content-Length framing on
//! streams, parsing with the checks of RFC 3261 §8.2 and §18.3, raw answers to what cannot
//! be parsed, header accessors and printing.
//!
//! Every patch-up for rsip 0.4 lives here; the rest of the crate sees only
//! [`rsip::SipMessage`] values that came through [`parse`].

mod encode;
pub mod fields;
mod framer;
mod normalize;
mod reject;
pub mod uri;

pub use encode::{encode, encode_into, reason_phrase};
pub use framer::{Frame, StreamFramer};
pub use normalize::{MAX_HEADERS, normalize};
pub use reject::reject_malformed;

use crate::Error;
use rsip::SipMessage;

/// The largest message we take, on any transport (RFC 3261 §18.1.1 leaves the bound to
/// us; 64 KiB is the UDP maximum and what ezk and libre use). Larger ones get 513.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Parses one whole message (a datagram, or a frame from [`StreamFramer`]).
///
/// Normalises first (see [`normalize`]), then lets rsip read it, then checks what rsip
/// does not: the headers every message needs (§8.1.1, §8.2.6.2), CSeq, Max-Forwards and
/// the top Via. Errors are [`Error::BadMessage`] with a reason fit for a 400, or
/// [`Error::TooLarge`], [`Error::UnsupportedMethod`], [`Error::UnsupportedVersion`].
pub fn parse(datagram: &[u8]) -> Result<SipMessage, Error> {
    if datagram.len() > MAX_MESSAGE {
        return Err(Error::TooLarge(datagram.len()));
    }
    let bytes = normalize(datagram)?;
    let request_uri = check_start_line(&bytes)?;
    let msg = match SipMessage::try_from(&*bytes) {
        Ok(msg) => msg,
        Err(_) => match &request_uri {
            Some(_) if !rsip_reads_request_line(&bytes) => with_request_uri(&bytes)?,
            _ => return Err(classify_rsip_failure(&bytes)),
        },
    };
    check(&msg)?;
    Ok(msg)
}

/// The Request-URI of a request: ours, read by [`uri::Uri::parse_request_uri`].
///
/// rsip's `Request::uri` is only a printing vessel for URIs rsip cannot read itself
/// (IPv6 references, `tel:`, a `;` in the user part); this reads any of them.
pub fn request_uri(request: &rsip::Request) -> Result<uri::Uri, Error> {
    uri::Uri::parse_request_uri(&request.uri.to_string()).map_err(request_uri_error)
}

/// rsip could not read a Request-URI that we can: let it parse the message around a
/// placeholder, then put the URI back as written (in a vessel that prints it unchanged).
fn with_request_uri(bytes: &[u8]) -> Result<SipMessage, Error> {
    const PLACEHOLDER: &[u8] = b"sip:request-uri.invalid";
    let first_space = bytes.iter().position(|b| *b == b' ').unwrap_or(0);
    let uri_len = bytes
        .get(first_space + 1..)
        .and_then(|rest| rest.iter().position(|b| *b == b' '))
        .unwrap_or(0);
    let mut replaced = Vec::with_capacity(bytes.len() + PLACEHOLDER.len());
    replaced.extend_from_slice(bytes.get(..=first_space).unwrap_or_default());
    replaced.extend_from_slice(PLACEHOLDER);
    replaced.extend_from_slice(bytes.get(first_space + 1 + uri_len..).unwrap_or_default());
    let written = bytes
        .get(first_space + 1..first_space + 1 + uri_len)
        .and_then(|u| std::str::from_utf8(u).ok())
        .unwrap_or_default();
    match SipMessage::try_from(&replaced[..]) {
        Ok(SipMessage::Request(mut request)) => {
            request.uri = uri::rsip_vessel(written);
            Ok(SipMessage::Request(request))
        }
        _ => Err(classify_rsip_failure(&replaced)),
    }
}

/// Whether rsip reads the start line on its own (this error path may allocate).
fn rsip_reads_request_line(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .position(|b| *b == b'\r')
        .unwrap_or(bytes.len());
    let mut probe = Vec::with_capacity(end + 4);
    probe.extend_from_slice(bytes.get(..end).unwrap_or_default());
    probe.extend_from_slice(b"\r\n\r\n");
    SipMessage::try_from(&probe[..]).is_ok()
}

fn request_uri_error(error: uri::UriError) -> Error {
    match error {
        uri::UriError::UnsupportedScheme => Error::UnsupportedUriScheme,
        uri::UriError::Empty => Error::BadMessage("empty Request-URI"),
        uri::UriError::Malformed(_) => Error::BadMessage("bad Request-URI"),
    }
}

/// The answer RFC 3261 gives a peer's message that [`parse`] refused: status and reason
/// for [`reject_malformed`], or `None` for errors that are not about a message.
pub fn answer_for(error: &Error) -> Option<(u16, &str)> {
    match error {
        Error::BadMessage(reason) => Some((400, reason)),
        Error::TooLarge(_) => Some((513, "Message Too Large")),
        Error::UnsupportedMethod => Some((501, "Not Implemented")),
        Error::UnsupportedVersion => Some((505, "Version Not Supported")),
        Error::UnsupportedUriScheme => Some((416, "Unsupported URI Scheme")),
        Error::Malformed(_) => Some((400, "Bad Request")),
        _ => None,
    }
}

/// Checks the start line's shape before rsip reads it (RFC 3261 §7.1, §7.2).
///
/// rsip's Request-URI reader runs on past CR/LF until it finds a space, so a start line
/// cut short would make rsip read our body as headers; one SP between exactly three
/// parts and no control bytes keeps rsip's view of the message the same as ours.
///
/// Returns the Request-URI of a request, read ([`request_uri`]'s rules), `None` for a
/// response.
fn check_start_line(bytes: &[u8]) -> Result<Option<uri::Uri>, Error> {
    let end = bytes
        .iter()
        .position(|b| *b == b'\r')
        .unwrap_or(bytes.len());
    let line = bytes.get(..end).unwrap_or_default();
    if line.starts_with(b"SIP/") {
        let mut parts = line.splitn(3, |b| *b == b' ');
        let (version, code) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let reason = parts.next().unwrap_or_default();
        if version != b"SIP/2.0" {
            return Err(Error::UnsupportedVersion);
        }
        // Three digits of a class RFC 3261 §7.2 knows (1xx to 6xx): "099" would read as
        // 99 and print as a status line nobody parses back.
        if code.len() != 3
            || !code.iter().all(u8::is_ascii_digit)
            || !code.first().is_some_and(|d| (b'1'..=b'6').contains(d))
            || reason.iter().any(|b| b.is_ascii_control() && *b != b'\t')
        {
            return Err(Error::BadMessage("bad status line"));
        }
        return Ok(None);
    }
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::BadMessage("bad request line"));
    };
    if version.starts_with(b"SIP/") && version != b"SIP/2.0" {
        return Err(Error::UnsupportedVersion);
    }
    if method.is_empty() || !method.iter().all(|b| normalize::is_token(*b)) || version != b"SIP/2.0"
    {
        return Err(Error::BadMessage("bad request line"));
    }
    if uri.is_empty() {
        return Err(Error::BadMessage("empty Request-URI"));
    }
    if uri.iter().any(|b| *b <= b' ' || *b >= 0x7f) {
        return Err(Error::BadMessage("bad Request-URI"));
    }
    // Only ASCII is left, so this is UTF-8.
    let text = std::str::from_utf8(uri).map_err(|_| Error::BadMessage("bad Request-URI"))?;
    uri::Uri::parse_request_uri(text)
        .map(Some)
        .map_err(request_uri_error)
}

/// Why rsip refused a message whose start line [`check_start_line`] accepted.
fn classify_rsip_failure(bytes: &[u8]) -> Error {
    let end = bytes
        .iter()
        .position(|b| *b == b'\r')
        .unwrap_or(bytes.len());
    let line = bytes.get(..end).unwrap_or_default();
    if line.starts_with(b"SIP/") {
        return Error::BadMessage("malformed response");
    }
    let method = line.split(|b| *b == b' ').next().unwrap_or_default();
    if method.parse_method().is_none() {
        return Error::UnsupportedMethod;
    }
    // rsip refused either the Request-URI or a header. Try the request line alone to
    // tell which (this error path may allocate).
    let mut probe = Vec::with_capacity(line.len() + 4);
    probe.extend_from_slice(line);
    probe.extend_from_slice(b"\r\n\r\n");
    if SipMessage::try_from(&probe[..]).is_err() {
        return Error::BadMessage("bad Request-URI");
    }
    Error::BadMessage("bad header")
}

/// The checks rsip leaves to us (RFC 3261 §8.1.1, §8.2.2, §20).
fn check(msg: &SipMessage) -> Result<(), Error> {
    let headers = match msg {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    };
    fields::top_via(headers)?;
    for via in fields::raw_values(headers, fields::Name::Via).skip(1) {
        fields::parse_via(via)?;
    }
    if fields::call_id(headers).is_none() {
        return Err(Error::BadMessage("missing Call-ID"));
    }
    if fields::raw_value(headers, fields::Name::From).is_none() {
        return Err(Error::BadMessage("missing From"));
    }
    if fields::raw_value(headers, fields::Name::To).is_none() {
        return Err(Error::BadMessage("missing To"));
    }
    let cseq = fields::cseq(headers)?;
    fields::max_forwards(headers)?;
    if let SipMessage::Request(req) = msg
        && cseq.method.parse_method().as_ref() != Some(&req.method)
    {
        return Err(Error::BadMessage("CSeq method mismatch"));
    }
    Ok(())
}

/// Whether a method token is one rsip can represent.
trait ParseMethod {
    fn parse_method(&self) -> Option<rsip::Method>;
}

impl ParseMethod for [u8] {
    fn parse_method(&self) -> Option<rsip::Method> {
        std::str::from_utf8(self).ok()?.parse_method()
    }
}

impl ParseMethod for str {
    fn parse_method(&self) -> Option<rsip::Method> {
        self.parse().ok()
    }
}

#[cfg(test)]
mod tests;
