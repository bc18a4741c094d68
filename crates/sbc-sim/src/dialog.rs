//! The caller's side of a dialog (RFC 3261 §12.1.2, §12.2.1): the requests sbc-sim
//! sends — INVITE (§8.1.1, again with credentials after a 401/407, §22.2), ACK for a
//! 2xx (§13.2.2.4), CANCEL (§9.1), BYE and INFO (§12.2.1.1) — and the dialog state a
//! 2xx sets (remote tag, remote target, route set).
//!
//! `dialbridge_sip::dialog` holds only the UAS side (the bridge's); this small UAC
//! belongs there eventually. Requests are written as text and read back through
//! `dialbridge_sip::message::parse`, so they are exactly what the bridge will parse.

use std::fmt::Write as _;

use dialbridge_sip::message::{self, fields};
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{Header, Request, Response, SipMessage};
use dialbridge_sip::transaction::new_branch;

use crate::Error;
use crate::ua::Transport;

/// Who calls whom, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// The number or user in From (`+14155550100`, `alice`).
    pub from_user: String,
    /// The host in From (our address, or the softphone realm).
    pub from_host: String,
    /// The dialled number.
    pub to: String,
    /// The bridge, `host:port`.
    pub bridge: String,
    /// Our signaling address, `ip:port`, for Via and Contact.
    pub local: String,
    /// The transport.
    pub transport: Transport,
}

/// One call's dialog, from the first INVITE to the BYE.
#[derive(Debug, Clone)]
pub struct UacDialog {
    parties: Parties,
    call_id: String,
    local_tag: String,
    request_uri: String,
    /// The To tag of the 2xx (§12.1.2).
    remote_tag: Option<String>,
    /// The Contact of the 2xx: where in-dialog requests go (the URI only).
    remote_target: Option<String>,
    /// The Record-Route of the 2xx, reversed (§12.1.2).
    route_set: Vec<String>,
    cseq: u32,
    /// The last INVITE sent (CANCEL copies its Via and CSeq).
    invite: Option<Request>,
}

impl UacDialog {
    /// A dialog with a fresh Call-ID and From tag.
    pub fn new(parties: Parties) -> Self {
        let call_id = format!("{:016x}@sbc-sim", rand::random::<u64>());
        let local_tag = dialbridge_sip::dialog::new_tag().to_string();
        let request_uri = format!("sip:{}@{}", parties.to, parties.bridge);
        UacDialog {
            parties,
            call_id,
            local_tag,
            request_uri,
            remote_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            cseq: 0,
            invite: None,
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The Request-URI of the INVITE (the digest `uri`).
    pub fn request_uri(&self) -> &str {
        &self.request_uri
    }

    /// An INVITE carrying `sdp`, with `authorization` (header name and value) when
    /// answering a challenge. Each INVITE takes the next CSeq and a new branch.
    pub fn invite(
        &mut self,
        sdp: &str,
        authorization: Option<(&str, &str)>,
    ) -> Result<Request, Error> {
        let mut extra = String::new();
        if let Some((name, value)) = authorization {
            let _ = write!(extra, "{name}: {value}\r\n");
        }
        let _ = write!(
            extra,
            "Allow: INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, UPDATE\r\nSupported: timer\r\n"
        );
        let request = self.request(
            "INVITE",
            &self.request_uri.clone(),
            false,
            &extra,
            Some(("application/sdp", sdp)),
        )?;
        self.invite = Some(request.clone());
        Ok(request)
    }

    /// Reads the dialog state from the 2xx to our INVITE (§12.1.2).
    pub fn handle_2xx(&mut self, response: &Response) {
        self.remote_tag = fields::to_tag(&response.headers).map(str::to_owned);
        self.remote_target = response.headers.iter().find_map(|h| match h {
            Header::Contact(c) => uri_of(c.value()),
            _ => None,
        });
        let mut routes: Vec<String> = response
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::RecordRoute(r) => Some(r.value()),
                _ => None,
            })
            .flat_map(|v| v.split(','))
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        routes.reverse();
        self.route_set = routes;
    }

    /// The ACK for the 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4: its own
    /// branch, the INVITE's CSeq number).
    pub fn ack(&self, invite_seq: u32) -> Result<Request, Error> {
        let text = self.text("ACK", &self.target(), true, invite_seq, "", None);
        to_request(&text)
    }

    /// CANCEL for the INVITE in progress (§9.1: same Request-URI, Call-ID, From, To,
    /// CSeq number and top Via as the INVITE).
    pub fn cancel(&self) -> Option<Result<Request, Error>> {
        let invite = self.invite.as_ref()?;
        let via = fields::raw_value(&invite.headers, fields::Name::Via)?;
        let seq = fields::cseq(&invite.headers).ok()?.seq;
        let text = format!(
            "CANCEL {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
             To: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {seq} CANCEL\r\nContent-Length: 0\r\n\r\n",
            uri = self.request_uri,
            from = self.from(),
            call_id = self.call_id,
        );
        Some(to_request(&text))
    }

    /// BYE (§15.1.1).
    pub fn bye(&mut self) -> Result<Request, Error> {
        let target = self.target();
        self.request("BYE", &target, true, "", None)
    }

    /// INFO with a body (RFC 6086), for `application/dtmf-relay` keys.
    pub fn info(&mut self, content_type: &str, body: &str) -> Result<Request, Error> {
        let target = self.target();
        self.request("INFO", &target, true, "", Some((content_type, body)))
    }

    /// The Contact we put in requests and 2xx responses.
    pub fn contact(&self) -> String {
        contact(&self.parties)
    }

    fn request(
        &mut self,
        method: &str,
        uri: &str,
        in_dialog: bool,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> Result<Request, Error> {
        self.cseq += 1;
        let text = self.text(method, uri, in_dialog, self.cseq, extra, body);
        to_request(&text)
    }

    fn text(
        &self,
        method: &str,
        uri: &str,
        in_dialog: bool,
        seq: u32,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        let p = &self.parties;
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={};rport\r\nMax-Forwards: 70\r\n",
            p.transport.via_name(),
            p.local,
            new_branch()
        );
        if in_dialog {
            for route in &self.route_set {
                let _ = write!(out, "Route: {route}\r\n");
            }
        }
        let to = match (&self.remote_tag, in_dialog) {
            (Some(tag), true) => format!("<{}>;tag={tag}", self.request_uri),
            _ => format!("<{}>", self.request_uri),
        };
        let _ = write!(
            out,
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nContact: {}\r\n\
             User-Agent: sbc-sim\r\n{extra}",
            self.from(),
            self.call_id,
            self.contact(),
        );
        match body {
            Some((content_type, body)) => {
                let _ = write!(
                    out,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out
    }

    fn from(&self) -> String {
        format!(
            "<sip:{}@{}>;tag={}",
            self.parties.from_user, self.parties.from_host, self.local_tag
        )
    }

    fn target(&self) -> String {
        self.remote_target
            .clone()
            .unwrap_or_else(|| self.request_uri.clone())
    }
}

/// Our Contact header value.
pub fn contact(p: &Parties) -> String {
    match p.transport {
        Transport::Udp => format!("<sip:{}@{}>", p.from_user, p.local),
        Transport::Tcp => format!("<sip:{}@{};transport=tcp>", p.from_user, p.local),
        Transport::Tls => format!("<sip:{}@{};transport=tls>", p.from_user, p.local),
    }
}

/// A response to an in-dialog request from the bridge, with an optional body.
pub fn response(
    request: &Request,
    status: u16,
    contact: Option<&str>,
    body: Option<(&str, &str)>,
) -> Response {
    let mut resp = fields::response_for(request, status, None, None);
    resp.headers
        .retain(|h| !matches!(h, Header::ContentLength(_)));
    if let Some(c) = contact {
        resp.headers.push(Header::Contact(
            dialbridge_sip::rsip::headers::Contact::new(c),
        ));
    }
    let length = match body {
        Some((content_type, body)) => {
            resp.headers.push(Header::ContentType(
                dialbridge_sip::rsip::headers::ContentType::new(content_type),
            ));
            resp.body = body.as_bytes().to_vec();
            body.len()
        }
        None => 0,
    };
    resp.headers.push(Header::ContentLength(
        dialbridge_sip::rsip::headers::ContentLength::new(length.to_string()),
    ));
    resp
}

/// The URI inside a name-addr (`"x" <sip:a@b;transport=tcp>;expires=3` gives
/// `sip:a@b;transport=tcp`) or a bare addr-spec without its header parameters.
fn uri_of(value: &str) -> Option<String> {
    let value = value.trim();
    let uri = match value.find('<') {
        Some(open) => {
            let rest = value.get(open + 1..)?;
            rest.get(..rest.find('>')?)?
        }
        None => value.split(';').next()?,
    };
    let uri = uri.trim();
    (!uri.is_empty()).then(|| uri.to_owned())
}

fn to_request(text: &str) -> Result<Request, Error> {
    match message::parse(text.as_bytes())? {
        SipMessage::Request(r) => Ok(r),
        SipMessage::Response(_) => Err(Error::invalid("request", "built a response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties() -> Parties {
        Parties {
            from_user: "+14155550100".into(),
            from_host: "127.0.0.20".into(),
            to: "+33170000100".into(),
            bridge: "127.0.0.1:5060".into(),
            local: "127.0.0.20:40000".into(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn invite_then_in_dialog_requests_follow_the_2xx() {
        let mut d = UacDialog::new(parties());
        let invite = d
            .invite("v=0\r\n", Some(("Authorization", "Digest x=1")))
            .unwrap();
        assert_eq!(invite.uri.to_string(), "sip:+33170000100@127.0.0.1:5060");
        assert_eq!(fields::cseq(&invite.headers).unwrap().seq, 1);
        assert_eq!(invite.body, b"v=0\r\n");
        let mut ok = fields::response_for(&invite, 200, None, Some("bridge1"));
        ok.headers.push(Header::Contact(
            dialbridge_sip::rsip::headers::Contact::new("<sip:conf@127.0.0.1:5060;transport=udp>"),
        ));
        ok.headers.push(Header::RecordRoute(
            dialbridge_sip::rsip::headers::RecordRoute::new("<sip:p1;lr>, <sip:p2;lr>"),
        ));
        d.handle_2xx(&ok);
        let ack = d.ack(1).unwrap();
        // rsip prints the transport parameter in upper case.
        assert!(
            ack.uri
                .to_string()
                .eq_ignore_ascii_case("sip:conf@127.0.0.1:5060;transport=udp")
        );
        assert_eq!(fields::to_tag(&ack.headers), Some("bridge1"));
        assert_eq!(fields::cseq(&ack.headers).unwrap().seq, 1);
        let bye = d.bye().unwrap();
        assert_eq!(fields::cseq(&bye.headers).unwrap().seq, 2);
        let routes: Vec<String> = bye
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Route(r) => Some(r.value().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(routes, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        assert_ne!(
            fields::top_via(&bye.headers).unwrap().branch,
            fields::top_via(&invite.headers).unwrap().branch
        );
        let cancel = d.cancel().unwrap().unwrap();
        assert_eq!(
            fields::top_via(&cancel.headers).unwrap().branch,
            fields::top_via(&invite.headers).unwrap().branch
        );
    }

    #[test]
    fn uri_of_name_addr_and_addr_spec() {
        assert_eq!(
            uri_of("\"B\" <sip:a@b;transport=tcp>;expires=3").as_deref(),
            Some("sip:a@b;transport=tcp")
        );
        assert_eq!(uri_of("sip:a@b;expires=3").as_deref(), Some("sip:a@b"));
        assert_eq!(uri_of("<>"), None);
        assert_eq!(uri_of("<sip:a@b"), None);
    }
}
