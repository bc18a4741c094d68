//! What a user agent server says before any dialog looks at a request (RFC 3261 §8.2):
//! who it is, which methods and extensions it speaks, and the answers those facts decide
//! — 483, 405 with Allow, 420 with Unsupported, the 200 to OPTIONS, 481, 400 naming a
//! fault, the 401 challenge and 403 of digest authentication (and of its lock-out).

use rsip::headers::{Accept, Allow, Supported, Unsupported, UntypedHeader};
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use crate::Error;
use crate::message::{self, fields::response_for};

/// What a UAS speaks; the answers of this module follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The Server header: what answers (never which version: no help to attackers).
    pub server: &'static str,
    /// Methods accepted, as the Allow header lists them.
    pub allow: &'static str,
    /// Option-tags supported (Supported; anything else in Require gets 420).
    pub supported: &'static str,
    /// Bodies understood (Accept).
    pub accept: &'static str,
}

impl Capabilities {
    /// Headers every response carries: the Server.
    pub fn identity(&self) -> Vec<Header> {
        vec![Header::Other("Server".into(), self.server.into())]
    }

    /// Allow, Accept and Supported: on a call's 200, the 200 to OPTIONS and a 405.
    pub fn headers(&self) -> Vec<Header> {
        vec![
            Header::Allow(Allow::new(self.allow)),
            Header::Accept(Accept::new(self.accept)),
            Header::Supported(Supported::new(self.supported)),
        ]
    }

    /// A response with our Server header and `reason` (or the RFC's phrase); CR, LF and
    /// other control characters in `reason` become spaces.
    pub fn reply(&self, request: &Request, status: u16, reason: Option<&str>) -> Response {
        let mut response = response_for(request, status, reason, None);
        response.headers.extend(self.identity());
        response
    }

    /// The checks every request passes first: Max-Forwards (483), the method (405 with
    /// Allow) and Require (420 with Unsupported). `None`: the request may go on. An ACK is
    /// never answered (§17.2.3).
    pub fn precheck(&self, request: &Request) -> Option<Response> {
        if request.method == Method::Ack {
            return None;
        }
        // OPTIONS with Max-Forwards 0 queries this hop (§11); still 483 here, as nothing
        // is forwarded and a trunk's ping never sends 0.
        if let Ok(mf) = request.max_forwards_header()
            && mf.num().ok() == Some(0)
        {
            return Some(self.reply(request, 483, Some("Too Many Hops")));
        }
        if !self.allows(&request.method) {
            return Some(self.method_not_allowed(request));
        }
        if request.method != Method::Cancel {
            let unsupported = self.unsupported_requirements(request);
            if !unsupported.is_empty() {
                let mut response = self.reply(request, 420, Some("Bad Extension"));
                response.headers.push(Header::Unsupported(Unsupported::new(
                    unsupported.join(", "),
                )));
                return Some(response);
            }
        }
        None
    }

    /// Whether `method` is in Allow.
    pub fn allows(&self, method: &Method) -> bool {
        let name = method_name(method);
        self.allow
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case(name))
    }

    /// 200 to an OPTIONS outside a dialog, with our capabilities.
    pub fn options(&self, request: &Request) -> Response {
        let mut response = self.reply(request, 200, None);
        response.headers.extend(self.headers());
        response
    }

    /// 405 with Allow.
    pub fn method_not_allowed(&self, request: &Request) -> Response {
        let mut response = self.reply(request, 405, Some("Method Not Allowed"));
        response.headers.extend(self.headers());
        response
    }

    /// 481 for a request of a dialog or transaction we do not have (§12.2.2).
    pub fn no_such_dialog(&self, request: &Request) -> Response {
        self.reply(request, 481, None)
    }

    /// 400 naming `fault` (a request the transaction layer or the digest check refused).
    pub fn bad_request(&self, request: &Request, fault: &str) -> Response {
        self.reply(request, 400, Some(fault))
    }

    /// 400 with the phrase [`message::answer_for`] gives `error`.
    pub fn malformed(&self, request: &Request, error: &Error) -> Response {
        let reason = message::answer_for(error)
            .map(|(_, r)| r)
            .unwrap_or("Bad Request");
        self.bad_request(request, reason)
    }

    /// 401 with one WWW-Authenticate per challenge (RFC 8760 §2.4: the preferred first).
    pub fn challenge(&self, request: &Request, challenges: &[String]) -> Response {
        let mut response = self.reply(request, 401, None);
        for value in challenges {
            response.headers.push(Header::WwwAuthenticate(
                rsip::headers::WwwAuthenticate::new(value.clone()),
            ));
        }
        response
    }

    /// 403: credentials that do not prove who the caller says it is.
    pub fn forbidden(&self, request: &Request) -> Response {
        self.reply(request, 403, Some("Forbidden"))
    }

    /// 403 during a lock-out after too many failed attempts: no challenge, and a
    /// Warning (RFC 3261 §20.43, code 399) saying why, for the user of the phone.
    pub fn locked_out(&self, request: &Request) -> Response {
        let mut response = self.reply(request, 403, Some("Too Many Failed Attempts"));
        response
            .headers
            .push(Header::Warning(rsip::headers::Warning::new(format!(
                "399 {} \"Too many failed authentication attempts; try again later\"",
                self.server
            ))));
        response
    }

    /// The raw answer to bytes that did not parse as a message, when Via, From, To,
    /// Call-ID and CSeq can still be found: 405 with Allow for an unknown method (RFC
    /// 3261 says 501; both tell the client to stop), the status [`message::answer_for`]
    /// gives otherwise.
    pub fn reject_unparsable(&self, bytes: &[u8], error: &Error) -> Option<Vec<u8>> {
        match error {
            Error::UnsupportedMethod => message::reject_malformed(bytes, 405, "Method Not Allowed")
                .map(|raw| insert_header(raw, "Allow", self.allow)),
            other => message::answer_for(other)
                .and_then(|(status, reason)| message::reject_malformed(bytes, status, reason)),
        }
    }

    /// Option-tags in Require (and Proxy-Require) that we do not support.
    fn unsupported_requirements(&self, request: &Request) -> Vec<String> {
        let mut out = Vec::new();
        for header in request.headers.iter() {
            let value = match header {
                Header::Require(r) => r.value(),
                Header::ProxyRequire(r) => r.value(),
                _ => continue,
            };
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !self
                    .supported
                    .split(',')
                    .any(|s| s.trim().eq_ignore_ascii_case(tag))
                {
                    out.push(tag.to_string());
                }
            }
        }
        out
    }
}

/// A method's name, without the allocation of its `Display`.
fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Info => "INFO",
        Method::Invite => "INVITE",
        Method::Message => "MESSAGE",
        Method::Notify => "NOTIFY",
        Method::Options => "OPTIONS",
        Method::PRack => "PRACK",
        Method::Publish => "PUBLISH",
        Method::Refer => "REFER",
        Method::Register => "REGISTER",
        Method::Subscribe => "SUBSCRIBE",
        Method::Update => "UPDATE",
    }
}

/// Adds a header line to a raw message (one built by `reject_malformed`).
fn insert_header(mut raw: Vec<u8>, name: &str, value: &str) -> Vec<u8> {
    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let line = format!("\r\n{name}: {value}");
        raw.splice(end..end, line.into_bytes());
    }
    raw
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const US: Capabilities = Capabilities {
        server: "test",
        allow: "INVITE, ACK, CANCEL, BYE, OPTIONS",
        supported: "timer",
        accept: "application/sdp",
    };

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
        let r = US
            .precheck(&request("Max-Forwards: 0\r\n", "INVITE"))
            .unwrap();
        assert_eq!(r.status_code.code(), 483);
    }

    #[test]
    fn unknown_requirement_is_420_naming_it() {
        let invite = request("Max-Forwards: 70\r\nRequire: timer, frob\r\n", "INVITE");
        let r = US.precheck(&invite).unwrap();
        assert_eq!(r.status_code.code(), 420);
        assert!(r.to_string().contains("Unsupported: frob"), "{r}");
    }

    #[test]
    fn supported_requirement_passes() {
        let invite = request("Max-Forwards: 70\r\nRequire: timer\r\n", "INVITE");
        assert!(US.precheck(&invite).is_none());
    }

    #[test]
    fn a_method_not_in_allow_is_405_with_allow() {
        let r = US
            .precheck(&request("Max-Forwards: 70\r\n", "INFO"))
            .unwrap();
        assert_eq!(r.status_code.code(), 405);
        assert!(r.to_string().contains("Allow: INVITE"), "{r}");
    }

    #[test]
    fn ack_is_never_answered() {
        assert!(
            US.precheck(&request("Max-Forwards: 0\r\n", "ACK"))
                .is_none()
        );
    }

    #[test]
    fn reason_phrases_cannot_inject_lines() {
        let r = US.reply(&request("", "OPTIONS"), 400, Some("bad\r\nX-Evil: 1"));
        assert!(!r.to_string().contains("\r\nX-Evil"));
    }
}
