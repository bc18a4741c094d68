//! sbc-sim's calls as the calling side of a dialog: a thin layer over
//! `dialbridge_sip::dialog` (`Caller` for the INVITE, its retry with credentials and its
//! CANCEL; the `Dialog` a 2xx makes for ACK, BYE and INFO), so sbc-sim sends what the
//! bridge's own UAC would, and sipp stays the independent peer in the tests.

use std::net::SocketAddr;
use std::time::Instant;

use dialbridge_sip::dialog::{Caller, Dialog, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::fields;
use dialbridge_sip::message::uri::{NameAddr, Uri};
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{self, Header, Method, Request, Response};

use crate::Error;
use crate::ua::Transport;

/// Who calls whom, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// The number or user in From (`+14155550100`, `alice`).
    pub from_user: String,
    /// The host in From (our address, or the softphone realm); IPv6 in brackets.
    pub from_host: String,
    /// The dialled number.
    pub to: String,
    /// The bridge, `host:port`.
    pub bridge: String,
    /// Our signaling address, for Via and Contact.
    pub local: SocketAddr,
    /// The transport.
    pub transport: Transport,
}

/// One call's dialog, from the first INVITE to the BYE.
#[derive(Debug, Clone)]
pub struct UacDialog {
    caller: Caller,
    /// Set by the first 2xx (§12.1.2).
    dialog: Option<Dialog>,
    local: LocalAddress,
    request_uri: String,
}

impl UacDialog {
    /// A dialog with a fresh Call-ID and From tag.
    pub fn new(parties: Parties) -> Result<Self, Error> {
        let request_uri = format!("sip:{}@{}", parties.to, parties.bridge);
        let uri = Uri::parse(&request_uri).map_err(|e| Error::invalid("bridge", e.to_string()))?;
        let from = NameAddr::parse(&format!(
            "<sip:{}@{}>",
            parties.from_user, parties.from_host
        ))
        .map_err(|e| Error::invalid("from", e.to_string()))?;
        let to = NameAddr::parse(&format!("<{request_uri}>"))
            .map_err(|e| Error::invalid("to", e.to_string()))?;
        let transport = match parties.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
            Transport::Tls => rsip::Transport::Tls,
        };
        let local = LocalAddress::new(&parties.from_user, parties.local, transport);
        Ok(UacDialog {
            caller: Caller::new(from, to, uri, local.clone(), "sbc-sim"),
            dialog: None,
            local,
            request_uri,
        })
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.caller.call_id()
    }

    /// The Request-URI of the INVITE (the digest `uri`).
    pub fn request_uri(&self) -> &str {
        &self.request_uri
    }

    /// An INVITE carrying `sdp`, with `authorization` (header name and value) when
    /// answering a challenge. Each INVITE takes the next CSeq and a new branch.
    pub fn invite(&mut self, sdp: &str, authorization: Option<(&str, &str)>) -> Request {
        let mut extra = Vec::with_capacity(4);
        if let Some((name, value)) = authorization {
            extra.push(Header::Other(name.into(), value.into()));
        }
        extra.push(Header::Other(
            "Allow".into(),
            "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, UPDATE".into(),
        ));
        extra.push(Header::Other("Supported".into(), "timer".into()));
        extra.push(Header::Other("User-Agent".into(), "sbc-sim".into()));
        self.caller
            .invite(extra, Some(("application/sdp", sdp.as_bytes().to_vec())))
    }

    /// Takes a 2xx to our INVITE: the first makes the dialog, later ones (another
    /// fork's or a retransmission) move nothing but the remote target.
    pub fn handle_2xx(&mut self, response: &Response) -> Result<(), Error> {
        match &mut self.dialog {
            Some(dialog) => dialog.handle_invite_response(response),
            None => {
                let dialog = self
                    .caller
                    .dialog_for(response, &SessionTimerConfig::default())
                    .map_err(|e| Error::invalid("2xx", e.to_string()))?;
                self.dialog = Some(dialog);
            }
        }
        Ok(())
    }

    /// The ACK for the 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4).
    pub fn ack(&self, invite_seq: u32) -> Result<Request, Error> {
        Ok(self.confirmed()?.make_ack_for(invite_seq))
    }

    /// CANCEL for the INVITE in progress (§9.1); `None` before any INVITE.
    pub fn cancel(&self) -> Option<Request> {
        self.caller.cancel()
    }

    /// BYE (§15.1.1).
    pub fn bye(&mut self) -> Result<Request, Error> {
        Ok(self
            .confirmed_mut()?
            .make_request(Method::Bye, Instant::now()))
    }

    /// INFO with a body (RFC 6086), for `application/dtmf-relay` keys.
    pub fn info(&mut self, content_type: &str, body: &str) -> Result<Request, Error> {
        let mut info = self
            .confirmed_mut()?
            .make_request(Method::Info, Instant::now());
        fields::set_body(
            &mut info.headers,
            &mut info.body,
            content_type,
            body.as_bytes().to_vec(),
        );
        Ok(info)
    }

    /// The Contact we put in requests and 2xx responses.
    pub fn contact(&self) -> String {
        format!("<{}>", self.local.contact)
    }

    fn confirmed(&self) -> Result<&Dialog, Error> {
        self.dialog
            .as_ref()
            .ok_or_else(|| Error::invalid("dialog", "no 2xx yet"))
    }

    fn confirmed_mut(&mut self) -> Result<&mut Dialog, Error> {
        self.dialog
            .as_mut()
            .ok_or_else(|| Error::invalid("dialog", "no 2xx yet"))
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
    if let Some(c) = contact {
        resp.headers
            .push(Header::Contact(rsip::headers::Contact::new(c)));
    }
    let (content_type, body) = body.unwrap_or(("", ""));
    fields::set_body(
        &mut resp.headers,
        &mut resp.body,
        content_type,
        body.as_bytes().to_vec(),
    );
    resp
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
            local: "127.0.0.20:40000".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn invite_then_in_dialog_requests_follow_the_2xx() {
        let mut d = UacDialog::new(parties()).unwrap();
        assert!(d.bye().is_err(), "no BYE before a 2xx");
        let invite = d.invite("v=0\r\n", Some(("Authorization", "Digest x=1")));
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
        d.handle_2xx(&ok).unwrap();
        let ack = d.ack(1).unwrap();
        assert_eq!(ack.uri.to_string(), "sip:conf@127.0.0.1:5060;transport=udp");
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
        let cancel = d.cancel().unwrap();
        assert_eq!(
            fields::top_via(&cancel.headers).unwrap().branch,
            fields::top_via(&invite.headers).unwrap().branch
        );
        let info = d
            .info("application/dtmf-relay", "Signal=1\r\nDuration=160\r\n")
            .unwrap();
        assert_eq!(fields::cseq(&info.headers).unwrap().seq, 3);
        assert_eq!(info.body, b"Signal=1\r\nDuration=160\r\n");
    }

    #[test]
    fn an_ipv6_caller_names_itself_in_brackets() {
        let mut p = parties();
        p.from_host = "[::1]".into();
        p.local = "[::1]:40000".parse().unwrap();
        p.bridge = "[::1]:5060".into();
        let mut d = UacDialog::new(p).unwrap();
        let invite = d.invite("v=0\r\n", None);
        assert_eq!(invite.uri.to_string(), "sip:+33170000100@[::1]:5060");
        assert_eq!(d.contact(), "<sip:+14155550100@[::1]:40000>");
        let via = fields::top_via(&invite.headers).unwrap();
        assert_eq!((via.host, via.port), ("::1", Some(40000)));
    }
}
