//! The calling side (RFC 3261 §8.1, §12.1.2, §13.2): the INVITE a UAC sends (again with
//! credentials after a 401/407, §22.2, keeping Call-ID and From tag), the CANCEL for it
//! (§9.1), and the [`Dialog`] that a tagged response to it creates. In-dialog requests,
//! the ACK for a 2xx and the peer's requests are then the dialog's, as on the UAS side.
//!
//! Used by sbc-sim today, and by the bridge's dial-outs and node-to-node legs next.

use super::session_timer::SessionTimerConfig;
use super::uas::{Dialog, LocalAddress, contact_uri, record_routes};
use super::{DialogId, new_tag};
use crate::Error;
use crate::message::fields;
use crate::message::uri::{NameAddr, Uri};
use crate::transaction::new_branch;
use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response};

/// A call being placed: everything the INVITE and its CANCEL need, until a response
/// with a To tag turns it into a [`Dialog`] ([`Caller::dialog_for`]).
#[derive(Debug, Clone)]
pub struct Caller {
    call_id: String,
    /// Our From, with our tag.
    from: NameAddr,
    /// The To of the INVITE (no tag).
    to: NameAddr,
    request_uri: Uri,
    local: LocalAddress,
    /// The CSeq of the last INVITE sent.
    cseq: u32,
    /// The last INVITE sent: the CANCEL copies its Via and CSeq (§9.1).
    invite: Option<Request>,
}

impl Caller {
    /// A call from `from` to `to` at `request_uri`, with a fresh Call-ID (`@host` as
    /// given) and From tag. A tag already on `from` is replaced.
    pub fn new(
        mut from: NameAddr,
        to: NameAddr,
        request_uri: Uri,
        local: LocalAddress,
        call_id_host: &str,
    ) -> Self {
        from.set_tag(new_tag().value());
        Self {
            call_id: format!("{:016x}@{call_id_host}", rand::random::<u64>()),
            from,
            to,
            request_uri,
            local,
            // §8.1.1.5: below 2^31; small numbers read better in traces.
            cseq: 0,
            invite: None,
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The Request-URI (the digest `uri` of a challenge's answer).
    pub fn request_uri(&self) -> &Uri {
        &self.request_uri
    }

    /// The CSeq number of the last INVITE.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// The next INVITE: a new branch and CSeq, the same Call-ID and From tag (§8.1.3.5,
    /// §22.2), our Contact, then `extra` headers (Authorization, Allow, Supported...)
    /// and `body` with its Content-Type.
    pub fn invite(&mut self, extra: Vec<Header>, body: Option<(&str, Vec<u8>)>) -> Request {
        self.cseq += 1;
        let mut headers = Headers::default();
        headers.push(via(&self.local));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70u32)));
        headers.push(Header::From(rsip::headers::From::new(
            self.from.to_string(),
        )));
        headers.push(Header::To(rsip::headers::To::new(self.to.to_string())));
        headers.push(Header::CallId(rsip::headers::CallId::new(&self.call_id)));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{} INVITE",
            self.cseq
        ))));
        headers.push(self.local.contact_header());
        for header in extra {
            headers.push(header);
        }
        let mut request = Request {
            method: Method::Invite,
            uri: self.request_uri.to_rsip(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        };
        let (content_type, body) = body.unwrap_or(("", Vec::new()));
        fields::set_body(&mut request.headers, &mut request.body, content_type, body);
        self.invite = Some(request.clone());
        request
    }

    /// The CANCEL for the last INVITE (§9.1): its Request-URI, Call-ID, From, To, CSeq
    /// number and top Via; `None` before any INVITE.
    pub fn cancel(&self) -> Option<Request> {
        let invite = self.invite.as_ref()?;
        let mut headers = Headers::default();
        for header in invite.headers.iter() {
            match header {
                // Only the top Via (ours), §9.1.
                Header::Via(_) if !headers.iter().any(|h| matches!(h, Header::Via(_))) => {
                    headers.push(header.clone())
                }
                Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                    headers.push(header.clone())
                }
                _ => {}
            }
        }
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70u32)));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{} CANCEL",
            self.cseq
        ))));
        headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
            0u32,
        )));
        Some(Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        })
    }

    /// The dialog a response to our INVITE creates (§12.1.2): a 2xx confirms it, a 1xx
    /// with a To tag makes it early; any other response creates none
    /// ([`Error::NoSuchDialog`]). Its remote target is the response's Contact, its route
    /// set the Record-Route reversed, its local CSeq the INVITE's, its remote CSeq
    /// empty. A response without To tag or (for a 2xx) a SIP Contact is
    /// [`Error::BadHeader`]. No session timer is run on the calling side yet: the
    /// bridge's refreshes come from the UAS side.
    pub fn dialog_for(
        &self,
        response: &Response,
        session_config: &SessionTimerConfig,
    ) -> Result<Dialog, Error> {
        let code = response.status_code.code();
        if !(101..300).contains(&code) {
            return Err(Error::NoSuchDialog);
        }
        let remote_tag = fields::to_tag(&response.headers)
            .ok_or(Error::BadHeader("To tag"))?
            .to_owned();
        let remote_target = match response.contact_header() {
            Ok(contact) => contact_uri(Ok(contact.value()))?,
            // A 1xx need not carry a Contact: target the Request-URI until the 2xx.
            Err(_) if code < 200 => self.request_uri.clone(),
            Err(_) => return Err(Error::BadHeader("Contact")),
        };
        // §12.1.2: the UAC's route set is the Record-Route in reverse.
        let mut route_set = record_routes(&response.headers)?;
        route_set.reverse();
        let mut remote_party = self.to.clone();
        remote_party.set_tag(&remote_tag);
        Ok(Dialog::from_parts(
            DialogId {
                call_id: self.call_id.clone(),
                local_tag: self.from.tag().unwrap_or_default().to_owned(),
                remote_tag,
            },
            code >= 200,
            self.cseq,
            self.from.clone(),
            remote_party,
            remote_target,
            route_set,
            self.local.clone(),
            *session_config,
        ))
    }
}

/// Our Via with a fresh branch and `rport` (RFC 3581: answers come back to where we sent
/// from, NAT or not).
pub(super) fn via(local: &LocalAddress) -> Header {
    Header::Via(rsip::headers::Via::new(format!(
        "SIP/2.0/{} {};branch={};rport",
        local.transport,
        local.sent_by,
        new_branch().value()
    )))
}
