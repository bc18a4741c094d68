//! The bridge's own SIP answers: which methods and extensions it speaks, and the
//! responses every request may get before it reaches a call (RFC 3261 §8.2).

use rsip::headers::{Accept, Allow, Supported, Unsupported, UntypedHeader};
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use dialbridge_sip::message::fields::response_for;

/// Methods the bridge accepts (the Allow header of 200 to OPTIONS and of 405).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Extensions the bridge supports (RFC 4028 session timers).
pub const SUPPORTED: &str = "timer";
/// Bodies the bridge understands.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// The Server header: what answers, never which version (no help to attackers).
pub const SERVER: &str = "dialbridge";

/// Whether the bridge handles `method` at all.
pub fn is_allowed(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite
            | Method::Ack
            | Method::Cancel
            | Method::Bye
            | Method::Options
            | Method::Info
            | Method::Update
    )
}

/// A response with the bridge's Server header and a reason phrase (`reason`, or the
/// RFC's) and, for responses inside a dialog, our To tag.
pub fn reply(request: &Request, status: u16, reason: Option<&str>) -> Response {
    let mut response = response_for(request, status, reason, None);
    response
        .headers
        .push(Header::Other("Server".into(), SERVER.into()));
    response
}

/// Adds a header line to a raw message (one built by `reject_malformed`).
pub fn insert_header(mut raw: Vec<u8>, name: &str, value: &str) -> Vec<u8> {
    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let line = format!("\r\n{name}: {value}");
        raw.splice(end..end, line.into_bytes());
    }
    raw
}

/// The headers every response of a call carries: who answers.
pub fn identity() -> Vec<Header> {
    vec![Header::Other("Server".into(), SERVER.into())]
}

/// The headers that say what the bridge speaks (Allow, Accept, Supported): on a call's
/// 200, its OPTIONS 200 and its 405.
pub fn capabilities() -> Vec<Header> {
    vec![
        Header::Allow(Allow::new(ALLOW)),
        Header::Accept(Accept::new(ACCEPT)),
        Header::Supported(Supported::new(SUPPORTED)),
    ]
}

/// The capabilities headers (for OPTIONS 200 and 405).
pub fn with_capabilities(mut response: Response) -> Response {
    response.headers.extend(capabilities());
    response
}

/// The checks every request passes before anything else looks at it: Max-Forwards
/// (483), the method (405 with Allow) and Require (420 with Unsupported). `None` means
/// the request may go on.
pub fn precheck(request: &Request) -> Option<Response> {
    if request.method == Method::Ack {
        return None; // never answered (RFC 3261 §17.2.3)
    }
    if let Ok(mf) = request.max_forwards_header() {
        if mf.num().ok() == Some(0) && request.method != Method::Options {
            return Some(reply(request, 483, Some("Too Many Hops")));
        }
        // OPTIONS with Max-Forwards 0 is a query of this hop (RFC 3261 §11): still 483
        // here, as nothing is forwarded and a trunk's ping never sends 0.
        if mf.num().ok() == Some(0) {
            return Some(reply(request, 483, Some("Too Many Hops")));
        }
    }
    if !is_allowed(&request.method) {
        return Some(with_capabilities(reply(
            request,
            405,
            Some("Method Not Allowed"),
        )));
    }
    if request.method != Method::Cancel {
        let unsupported = unsupported_requirements(request);
        if !unsupported.is_empty() {
            let mut response = reply(request, 420, Some("Bad Extension"));
            response.headers.push(Header::Unsupported(Unsupported::new(
                unsupported.join(", "),
            )));
            return Some(response);
        }
    }
    None
}

/// Option-tags in Require (and Proxy-Require) that the bridge does not support.
fn unsupported_requirements(request: &Request) -> Vec<String> {
    let mut out = Vec::new();
    for header in request.headers.iter() {
        let value = match header {
            Header::Require(r) => r.value(),
            Header::ProxyRequire(r) => r.value(),
            _ => continue,
        };
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !SUPPORTED
                .split(',')
                .any(|s| s.trim().eq_ignore_ascii_case(tag))
            {
                out.push(tag.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str, method: &str) -> Request {
        let raw = format!(
            "{method} sip:+14255550100@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.10>;tag=f\r\n\
             To: <sip:+14255550100@127.0.0.1>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).unwrap()
    }

    #[test]
    fn max_forwards_zero_is_483() {
        let r = precheck(&request("Max-Forwards: 0\r\n", "INVITE")).unwrap();
        assert_eq!(r.status_code.code(), 483);
    }

    #[test]
    fn unknown_requirement_is_420_naming_it() {
        let r = precheck(&request(
            "Max-Forwards: 70\r\nRequire: timer, frob\r\n",
            "INVITE",
        ))
        .unwrap();
        assert_eq!(r.status_code.code(), 420);
        assert!(r.to_string().contains("Unsupported: frob"), "{r}");
    }

    #[test]
    fn supported_requirement_passes() {
        assert!(precheck(&request("Max-Forwards: 70\r\nRequire: timer\r\n", "INVITE")).is_none());
    }

    #[test]
    fn subscribe_is_405_with_allow() {
        let r = precheck(&request("Max-Forwards: 70\r\n", "SUBSCRIBE")).unwrap();
        assert_eq!(r.status_code.code(), 405);
        assert!(r.to_string().contains("Allow: INVITE"), "{r}");
    }

    #[test]
    fn ack_is_never_answered() {
        assert!(precheck(&request("Max-Forwards: 0\r\n", "ACK")).is_none());
    }

    #[test]
    fn reason_phrases_cannot_inject_lines() {
        let r = reply(&request("", "OPTIONS"), 400, Some("bad\r\nX-Evil: 1"));
        assert!(!r.to_string().contains("\r\nX-Evil"));
    }
}
