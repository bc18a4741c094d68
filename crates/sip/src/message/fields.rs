//! Cheap, non-allocating accessors for the headers the stack reads on every message, and
//! the two edits a UAS makes: RFC 3581 received/rport and the RFC 3261 §8.2.6.2 response.
//!
//! They read rsip's untyped header text ourselves instead of rsip's typed parsers, which
//! lose Via parameters written with spaces, cannot read bracketed IPv6 hosts and allocate.

use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Request, Response, StatusCode};

use crate::Error;

/// A header this module reads, by its long name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// `Via` (RFC 3261 §20.42).
    Via,
    /// `From` (§20.20).
    From,
    /// `To` (§20.39).
    To,
    /// `Call-ID` (§20.8).
    CallId,
    /// `CSeq` (§20.16).
    CSeq,
    /// `Max-Forwards` (§20.22).
    MaxForwards,
    /// `Require` (§20.32).
    Require,
    /// `Content-Length` (§20.14).
    ContentLength,
}

/// The text of the first header called `name`.
pub fn raw_value(headers: &Headers, name: Name) -> Option<&str> {
    raw_values(headers, name).next()
}

/// The texts of every header called `name`, in message order.
pub fn raw_values(headers: &Headers, name: Name) -> impl Iterator<Item = &str> {
    headers.iter().filter_map(move |h| match (name, h) {
        (Name::Via, Header::Via(v)) => Some(v.value()),
        (Name::From, Header::From(v)) => Some(v.value()),
        (Name::To, Header::To(v)) => Some(v.value()),
        (Name::CallId, Header::CallId(v)) => Some(v.value()),
        (Name::CSeq, Header::CSeq(v)) => Some(v.value()),
        (Name::MaxForwards, Header::MaxForwards(v)) => Some(v.value()),
        (Name::Require, Header::Require(v)) => Some(v.value()),
        (Name::ContentLength, Header::ContentLength(v)) => Some(v.value()),
        _ => None,
    })
}

/// One Via header value, read (RFC 3261 §20.42, RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport of the sent-protocol, as written (`UDP`, `TCP`, `TLS`, `WS`...).
    pub transport: &'a str,
    /// sent-by host; an IPv6 reference without its brackets.
    pub host: &'a str,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// The `branch` parameter.
    pub branch: Option<&'a str>,
    /// The `received` parameter.
    pub received: Option<&'a str>,
    /// The `rport` parameter: `Some(None)` when present without a value.
    pub rport: Option<Option<u16>>,
}

/// The topmost Via (§8.2.6.2: the one the response goes back along).
pub fn top_via(headers: &Headers) -> Result<Via<'_>, Error> {
    let value = raw_value(headers, Name::Via).ok_or(Error::BadMessage("missing Via"))?;
    parse_via(value)
}

/// Reads one Via value (`SIP/2.0/UDP host:port;branch=...`).
pub fn parse_via(value: &str) -> Result<Via<'_>, Error> {
    const BAD: Error = Error::BadMessage("bad Via");
    let value = value.trim();
    let (protocol, rest) = value.split_once([' ', '\t']).ok_or(BAD)?;
    let mut parts = protocol.split('/').map(str::trim);
    let (Some(name), Some(version), Some(transport), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || !is_token(transport) {
        return Err(BAD);
    }
    let (sent_by, params) = rest.split_once(';').unwrap_or((rest, ""));
    let (host, port) = split_host_port(sent_by.trim()).ok_or(BAD)?;
    let mut via = Via {
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: None,
    };
    for param in params.split(';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param.trim(), None),
        };
        if name.eq_ignore_ascii_case("branch") {
            via.branch = value;
        } else if name.eq_ignore_ascii_case("received") {
            via.received = value;
        } else if name.eq_ignore_ascii_case("rport") {
            via.rport = Some(match value {
                Some(v) => Some(v.parse().map_err(|_| BAD)?),
                None => None,
            });
        }
    }
    Ok(via)
}

/// `host[:port]`, with `[v6]` references unbracketed.
fn split_host_port(sent_by: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match sent_by.split_once(':') {
            Some((host, port)) => (host.trim_end(), Some(port)),
            None => (sent_by, None),
        }
    };
    let bracketed = sent_by.starts_with('[');
    let host_char = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') || (bracketed && c == ':')
    };
    if host.is_empty() || !host.chars().all(host_char) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.trim().parse().ok()?),
        None => None,
    };
    Some((host, port))
}

/// The Call-ID (§20.8).
pub fn call_id(headers: &Headers) -> Option<&str> {
    raw_value(headers, Name::CallId)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A CSeq value read (§20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number; below 2**31 (§8.1.1.5).
    pub seq: u32,
    /// The method token, as written.
    pub method: &'a str,
}

/// The CSeq header, which every message needs.
pub fn cseq(headers: &Headers) -> Result<CSeq<'_>, Error> {
    let value = raw_value(headers, Name::CSeq).ok_or(Error::BadMessage("missing CSeq"))?;
    parse_cseq(value)
}

/// Reads `number SP method`.
pub fn parse_cseq(value: &str) -> Result<CSeq<'_>, Error> {
    const BAD: Error = Error::BadMessage("bad CSeq");
    let mut parts = value.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BAD);
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return Err(BAD);
    }
    let seq: u32 = number.parse().map_err(|_| BAD)?;
    if seq >= 1 << 31 {
        return Err(BAD);
    }
    Ok(CSeq { seq, method })
}

/// The From tag (§19.3).
pub fn from_tag(headers: &Headers) -> Option<&str> {
    raw_value(headers, Name::From)
        .and_then(|v| header_param(v, "tag"))
        .flatten()
}

/// The To tag (§19.3); absent on a dialog-creating request.
pub fn to_tag(headers: &Headers) -> Option<&str> {
    raw_value(headers, Name::To)
        .and_then(|v| header_param(v, "tag"))
        .flatten()
}

/// Max-Forwards (§20.22), if present.
pub fn max_forwards(headers: &Headers) -> Result<Option<u32>, Error> {
    const BAD: Error = Error::BadMessage("bad Max-Forwards");
    let Some(value) = raw_value(headers, Name::MaxForwards) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    value.parse().map(Some).map_err(|_| BAD)
}

/// The option-tags of every Require header (§20.32), in order.
pub fn require(headers: &Headers) -> impl Iterator<Item = &str> {
    raw_values(headers, Name::Require)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A header parameter of a name-addr / addr-spec value (From, To, Contact, Route).
///
/// `Some(None)` for a parameter without a value. Parameters inside `<...>` belong to the
/// URI and are not looked at; without brackets every `;` parameter is the header's (§20).
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<Option<&'a str>> {
    let params = after_address(value)?;
    params.split(';').skip(1).find_map(|p| {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The part of a name-addr after the address: starting at the first header `;`.
fn after_address(value: &str) -> Option<&str> {
    for (i, c) in super::uri::unquoted(value) {
        match c {
            '<' => {
                let rest = value.get(i..)?;
                let close = rest.find('>')?;
                let after = rest.get(close + 1..)?;
                return Some(after.find(';').and_then(|p| after.get(p..)).unwrap_or(""));
            }
            ';' => return value.get(i..),
            _ => {}
        }
    }
    Some("")
}

/// Adds `received` and fills `rport` in the top Via of a request just received from
/// `source` (RFC 3261 §18.2.1, RFC 3581 §4).
///
/// `received` is added when the sent-by host is not the source address, and always when
/// `rport` is present (RFC 3581 §4 asks for both). A top Via we cannot read is left alone:
/// [`crate::message::parse`] has already refused such requests.
pub fn set_received_rport(request: &mut Request, source: SocketAddr) {
    let Some(header) = request
        .headers
        .iter_mut()
        .find(|h| matches!(h, Header::Via(_)))
    else {
        return;
    };
    let Header::Via(via_header) = header else {
        return;
    };
    let value = via_header.value();
    let Ok(via) = parse_via(value) else {
        return;
    };
    let same_host = via.host.parse::<IpAddr>().is_ok_and(|ip| ip == source.ip());
    let rport = via.rport.is_some();
    if same_host && !rport {
        return;
    }
    let mut out = String::with_capacity(value.len() + 48);
    let mut params = value.trim().split(';');
    out.push_str(params.next().unwrap_or_default().trim_end());
    for param in params {
        let name = param.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        if name.eq_ignore_ascii_case("rport") {
            out.push_str("rport=");
            out.push_str(&source.port().to_string());
        } else {
            out.push_str(param.trim());
        }
    }
    out.push_str(";received=");
    out.push_str(&source.ip().to_string());
    *header = Header::Via(rsip::headers::Via::new(out));
}

/// Builds the response to `request` the way RFC 3261 §8.2.6.2 says: every Via in order,
/// From, To, Call-ID, CSeq, and Content-Length 0. Other headers (Contact, Allow, SDP...)
/// are the caller's to add.
///
/// A To without a tag gets `to_tag`, or, for any status but 100 when none is given, a tag
/// derived from what identifies the request ([`stateless_tag`]): a retransmission that
/// reaches a stateless answer again gets the same tag (§8.2.7).
///
/// With a `reason` other than the RFC one, the status is `StatusCode::Other(code, reason)`:
/// compare statuses with `.code()`, not with rsip's named variants. CR, LF and other
/// control characters in the reason are replaced by spaces.
pub fn response_for(
    request: &Request,
    status: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Vec::with_capacity(
        request
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .count()
            + 5,
    );
    headers.extend(
        request
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .cloned(),
    );
    for header in request.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(header.clone()),
            Header::To(to) if header_param(to.value(), "tag").is_none() && status != 100 => {
                let tag = match to_tag {
                    Some(tag) => tag.to_owned(),
                    None => format!("{:016x}", stateless_tag(&request.headers)),
                };
                let value = format!("{};tag={}", to.value().trim_end(), tag);
                headers.push(Header::To(rsip::headers::To::new(value)));
            }
            Header::To(_) => headers.push(header.clone()),
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status_code(status, reason),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Sets a message's body with its Content-Type and the Content-Length that matches it
/// (an empty body: Content-Length 0 and no Content-Type).
pub fn set_body(headers: &mut Headers, body_slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    if !body.is_empty() {
        headers.push(Header::ContentType(rsip::headers::ContentType::new(
            content_type,
        )));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        body.len().to_string(),
    )));
    *body_slot = body;
}

/// A To tag for a response sent without a dialog: the same for every retransmission of
/// one request (FNV-1a of its Call-ID, From, CSeq and top Via), different across requests.
pub fn stateless_tag(headers: &Headers) -> u64 {
    let parts = [
        raw_value(headers, Name::CallId),
        raw_value(headers, Name::From),
        raw_value(headers, Name::CSeq),
        raw_value(headers, Name::Via),
    ];
    fnv1a(parts.iter().flatten().map(|p| p.as_bytes()))
}

/// FNV-1a over the concatenation of `parts`: a stable, cheap hash, not a secret.
pub(crate) fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    parts
        .into_iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// rsip's status for `code`, carrying `reason` when it is not the RFC's phrase.
pub fn status_code(code: u16, reason: Option<&str>) -> StatusCode {
    let standard = super::reason_phrase(code);
    match reason {
        Some(r) if r != standard => StatusCode::Other(code, sanitize_reason(r)),
        _ => match StatusCode::from(code) {
            StatusCode::Other(code, _) => StatusCode::Other(code, standard.to_owned()),
            known => known,
        },
    }
}

/// A reason phrase safe on a status line: no control characters, not empty.
pub(crate) fn sanitize_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "Error".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(super::normalize::is_token)
}
