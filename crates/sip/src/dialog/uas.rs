//! A dialog created by an INVITE the bridge answers (RFC 3261 §12.1.1, §12.2), and what the
//! bridge sends inside it (§12.2.1.1).

use super::session_timer::{SessionTimer, SessionTimerConfig, SessionTimerEvent};
use super::{DialogId, new_tag};
use crate::Error;
use crate::message::fields::response_for;
use crate::message::uri::{NameAddr, Uri};
use crate::transaction::new_branch;
use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response, Transport};
use std::net::SocketAddr;
use std::time::Instant;

/// Where the bridge is, as it writes itself into Via and Contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    /// Our Contact URI (the remote target the peer uses for us).
    pub contact: Uri,
    /// The sent-by of our Via: `host[:port]`, an IPv6 host in brackets.
    pub sent_by: String,
    /// The transport of our Via.
    pub transport: Transport,
}

impl LocalAddress {
    /// The bridge at `addr` over `transport`: Contact `sip:user@addr` (with a transport
    /// parameter unless UDP), Via sent-by `addr`.
    pub fn new(user: &str, addr: SocketAddr, transport: Transport) -> Self {
        use crate::message::uri::{Host, Param, SipUri};
        let mut contact = SipUri::new(Some(user), Host::Ip(addr.ip()), Some(addr.port()));
        if transport != Transport::Udp {
            contact.params.push(Param {
                name: "transport".to_owned(),
                value: Some(transport.to_string().to_ascii_lowercase()),
            });
        }
        Self {
            sent_by: format!("{}:{}", Host::Ip(addr.ip()), addr.port()),
            contact: Uri::Sip(contact),
            transport,
        }
    }

    /// Our Contact header.
    pub fn contact_header(&self) -> Header {
        Header::Contact(rsip::headers::Contact::new(format!("<{}>", self.contact)))
    }
}

/// Dialog states (RFC 3261 §12; a UAS dialog is early from its first tagged 1xx).
///
/// ```text
///          INVITE received
///                 |
///                 V         2xx sent        +-----------+
///           +-----------+ ----------------> | Confirmed |
///           |   Early   |                   +-----------+
///           +-----------+                         |
///                 | 3xx-6xx sent                  | BYE sent or received,
///                 V                               | 481/408 to our request,
///           +------------+ <----------------------+ session expired
///           | Terminated |
///           +------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE received, no 2xx yet.
    Early,
    /// 2xx sent.
    Confirmed,
    /// Over; the TU removes it.
    Terminated,
}

/// What an in-dialog request asks of the TU (the CSeq check has passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InDialogRequest {
    /// The ACK for our 2xx; `body` is the SDP answer when our 2xx carried the offer.
    Ack {
        /// The body, possibly empty.
        body: Vec<u8>,
    },
    /// BYE: answer 200; the dialog is terminated.
    Bye,
    /// A re-INVITE; `offer` is its SDP, if any (otherwise our 2xx must carry an offer).
    ReInvite {
        /// The offer, if the re-INVITE has a body.
        offer: Option<Vec<u8>>,
    },
    /// An UPDATE (RFC 3311); `offer` is its SDP, if any.
    Update {
        /// The offer, if the UPDATE has a body.
        offer: Option<Vec<u8>>,
    },
    /// Anything else (INFO, OPTIONS, NOTIFY...).
    Other(Method),
}

/// What a dialog's session timer asks of the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogEvent {
    /// We are the refresher: send a re-INVITE or UPDATE ([`Dialog::make_request`]).
    SendRefresh,
    /// The session timer expired without a refresh: send BYE.
    SessionExpired,
}

/// One dialog, UAS side. See the module doc.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    local_seq: u32,
    remote_seq: Option<u32>,
    /// Our From in requests we send: the INVITE's To, with our tag.
    local_party: NameAddr,
    /// Our To in requests we send: the INVITE's From, with the peer's tag.
    remote_party: NameAddr,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
    local: LocalAddress,
    session: Option<SessionTimer>,
    session_config: SessionTimerConfig,
}

impl Dialog {
    /// The dialog an INVITE creates on our side (§12.1.1): Call-ID, the peer's From tag, a
    /// new tag of ours, remote target from Contact, route set from Record-Route (in order),
    /// remote CSeq from the INVITE, and the session timer negotiated per RFC 4028 §9.
    ///
    /// Errors: [`Error::BadHeader`] (answer 400) for a missing Call-ID, From tag, Contact or
    /// unparsable Record-Route; [`Error::SessionIntervalTooSmall`] (answer 422 with
    /// [`super::session_timer::interval_too_small`]).
    pub fn new_uas(
        invite: &Request,
        local: LocalAddress,
        session_config: &SessionTimerConfig,
        now: Instant,
    ) -> Result<Self, Error> {
        let call_id = invite
            .call_id_header()
            .map_err(|_| Error::BadHeader("Call-ID"))?
            .value()
            .to_owned();
        let from = name_addr(invite.from_header().map(|h| h.value()), "From")?;
        let remote_tag = from.tag().ok_or(Error::BadHeader("From tag"))?.to_owned();
        let mut to = name_addr(invite.to_header().map(|h| h.value()), "To")?;
        let remote_target = contact_uri(invite.contact_header().map(|h| h.value()))?;
        let remote_seq = invite
            .cseq_header()
            .and_then(|c| c.seq())
            .map_err(|_| Error::BadHeader("CSeq"))?;
        let route_set = record_routes(&invite.headers)?;
        let session = SessionTimer::negotiate(invite, session_config, now)?;
        let local_tag = new_tag().value().to_owned();
        to.set_tag(&local_tag);
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            state: DialogState::Early,
            // §8.1.1.5: the first CSeq is below 2^31.
            local_seq: rand::random::<u32>() >> 2,
            remote_seq: Some(remote_seq),
            local_party: to,
            remote_party: from,
            remote_target,
            route_set,
            local,
            session,
            session_config: *session_config,
        })
    }

    /// A dialog from its parts: the calling side's constructor ([`super::Caller`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_parts(
        id: DialogId,
        confirmed: bool,
        local_seq: u32,
        local_party: NameAddr,
        remote_party: NameAddr,
        remote_target: Uri,
        route_set: Vec<NameAddr>,
        local: LocalAddress,
        session_config: SessionTimerConfig,
    ) -> Self {
        Self {
            id,
            state: if confirmed {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_seq,
            remote_seq: None,
            local_party,
            remote_party,
            remote_target,
            route_set,
            local,
            session: None,
            session_config,
        }
    }

    /// Takes a later response to our INVITE (§12.1.2, §13.2.2.4): a 2xx confirms an
    /// early dialog and moves the remote target to its Contact.
    pub fn handle_invite_response(&mut self, response: &Response) {
        let code = response.status_code.code();
        if (200..300).contains(&code) {
            if self.state == DialogState::Early {
                self.state = DialogState::Confirmed;
            }
            if let Ok(target) = contact_uri(response.contact_header().map(|h| h.value())) {
                self.remote_target = target;
            }
        } else if code >= 300 && self.state == DialogState::Early {
            self.state = DialogState::Terminated;
        }
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The state.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Where our requests go (the peer's latest Contact).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The route set, in the order our requests list it.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// The CSeq of the last request we sent.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// The highest CSeq the peer used.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// The session timer, if one was negotiated.
    pub fn session_timer(&self) -> Option<&SessionTimer> {
        self.session.as_ref()
    }

    /// A response to `request` in this dialog: our To tag; for an INVITE's 1xx/2xx and an
    /// UPDATE's 2xx our Contact; for the initial INVITE the Record-Route copied (§12.1.1);
    /// for a 2xx to INVITE/UPDATE the session timer headers, and the session counts as
    /// refreshed at `now` (RFC 4028 §10). A 2xx to the initial INVITE confirms the dialog,
    /// a final non-2xx to it terminates it.
    pub fn make_response(&mut self, request: &Request, status: u16, now: Instant) -> Response {
        let mut response = response_for(request, status, None, Some(&self.id.local_tag));
        let method = request.method;
        let is_2xx = (200..300).contains(&status);
        let initial = method == Method::Invite && self.state == DialogState::Early;
        if (method == Method::Invite && status > 100 && status < 300)
            || (method == Method::Update && is_2xx)
        {
            response.headers.push(self.local.contact_header());
        }
        if initial && status > 100 && status < 300 {
            for header in request.headers.iter() {
                if let Header::RecordRoute(_) = header {
                    response.headers.push(header.clone());
                }
            }
        }
        if is_2xx
            && matches!(method, Method::Invite | Method::Update)
            && let Some(session) = self.session.as_mut()
        {
            session.refreshed(now);
            for header in session.response_headers() {
                response.headers.push(header);
            }
        }
        if initial {
            if is_2xx {
                self.state = DialogState::Confirmed;
            } else if status >= 300 {
                self.state = DialogState::Terminated;
            }
        }
        response
    }

    /// An in-dialog request from the peer (§12.2.2). A CSeq lower than the last one is
    /// [`Error::CSeqOutOfOrder`] (answer 500); a re-INVITE/UPDATE whose Session-Expires is
    /// too small is [`Error::SessionIntervalTooSmall`] (answer 422). A re-INVITE or UPDATE
    /// with a Contact moves the remote target.
    pub fn handle_request(
        &mut self,
        request: &Request,
        now: Instant,
    ) -> Result<InDialogRequest, Error> {
        let seq = request
            .cseq_header()
            .and_then(|c| c.seq())
            .map_err(|_| Error::BadHeader("CSeq"))?;
        // ACK and CANCEL reuse their INVITE's CSeq; they are not new requests in the
        // dialog's sequence.
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq
                && seq < last
            {
                return Err(Error::CSeqOutOfOrder { got: seq, last });
            }
            self.remote_seq = Some(seq);
        }
        let body = || (!request.body.is_empty()).then(|| request.body.clone());
        Ok(match request.method {
            Method::Ack => InDialogRequest::Ack {
                body: request.body.clone(),
            },
            Method::Bye => {
                self.state = DialogState::Terminated;
                InDialogRequest::Bye
            }
            Method::Invite | Method::Update => {
                if let Some(session) = self.session.as_mut() {
                    session.handle_refresh_request(request, &self.session_config, now)?;
                } else {
                    self.session = SessionTimer::negotiate(request, &self.session_config, now)?;
                }
                if let Ok(target) = contact_uri(request.contact_header().map(|h| h.value())) {
                    self.remote_target = target;
                }
                if request.method == Method::Invite {
                    InDialogRequest::ReInvite { offer: body() }
                } else {
                    InDialogRequest::Update { offer: body() }
                }
            }
            other => InDialogRequest::Other(other),
        })
    }

    /// A new request of ours in the dialog (§12.2.1.1): Request-URI the remote target
    /// (or the first route when it is a strict router), the route set as Route headers,
    /// From/To with the tags, the next CSeq, a Via with a fresh branch; INVITE and UPDATE
    /// also carry our Contact and, with a session timer, Session-Expires.
    pub fn make_request(&mut self, method: Method, _now: Instant) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        let mut request = self.base_request(method, self.local_seq);
        if matches!(method, Method::Invite | Method::Update) {
            request.headers.push(self.local.contact_header());
            if let Some(session) = &self.session {
                for header in session.request_headers() {
                    request.headers.push(header);
                }
            }
        }
        if method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        request
    }

    /// The ACK for a 2xx to our re-INVITE (§13.2.2.4): the INVITE's CSeq number, a new
    /// branch, same routing as any in-dialog request.
    pub fn make_ack(&self, response: &Response) -> Result<Request, Error> {
        let seq = response
            .cseq_header()
            .and_then(|c| c.seq())
            .map_err(|_| Error::BadHeader("CSeq"))?;
        Ok(self.make_ack_for(seq))
    }

    /// The ACK for a 2xx to our INVITE whose CSeq number was `invite_seq`.
    pub fn make_ack_for(&self, invite_seq: u32) -> Request {
        self.base_request(Method::Ack, invite_seq)
    }

    /// A response to one of our in-dialog requests: a 2xx to re-INVITE/UPDATE refreshes
    /// the session and the remote target; 481 or 408 ends the dialog (§12.2.1.2).
    pub fn handle_response(&mut self, response: &Response, now: Instant) {
        let code = response.status_code.code();
        let method = response.cseq_header().and_then(|c| c.method()).ok();
        if code == 481 || code == 408 {
            self.state = DialogState::Terminated;
            return;
        }
        if (200..300).contains(&code) && matches!(method, Some(Method::Invite | Method::Update)) {
            if let Some(session) = self.session.as_mut() {
                session.handle_refresh_response(response, now);
            }
            if let Ok(target) = contact_uri(response.contact_header().map(|h| h.value())) {
                self.remote_target = target;
            }
        }
    }

    /// The next session timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == DialogState::Terminated {
            return None;
        }
        self.session.as_ref().and_then(SessionTimer::poll_timeout)
    }

    /// Fire the session timer if due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<DialogEvent> {
        if self.state == DialogState::Terminated {
            return None;
        }
        match self.session.as_mut()?.handle_timeout(now)? {
            SessionTimerEvent::SendRefresh => Some(DialogEvent::SendRefresh),
            SessionTimerEvent::Expired => Some(DialogEvent::SessionExpired),
        }
    }

    fn base_request(&self, method: Method, seq: u32) -> Request {
        let (uri, routes) = self.routing();
        let mut headers = Headers::default();
        headers.push(Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/{} {};branch={}",
            self.local.transport,
            self.local.sent_by,
            new_branch().value()
        ))));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70u32)));
        for route in routes {
            headers.push(Header::Route(rsip::headers::Route::new(route.to_string())));
        }
        headers.push(Header::From(rsip::headers::From::new(
            self.local_party.to_string(),
        )));
        headers.push(Header::To(rsip::headers::To::new(
            self.remote_party.to_string(),
        )));
        headers.push(Header::CallId(rsip::headers::CallId::new(&self.id.call_id)));
        headers.push(rsip::typed::CSeq::from((seq, method)).into());
        headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
            0u32,
        )));
        Request {
            method,
            uri: uri.to_rsip(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    /// Request-URI and Route list (§12.2.1.1): loose routing when the first route has
    /// `lr` (or there is none), strict routing otherwise.
    fn routing(&self) -> (Uri, Vec<NameAddr>) {
        match self.route_set.split_first() {
            Some((first, rest)) if !is_loose(first) => {
                let mut uri = first.uri.clone();
                if let Uri::Sip(sip) = &mut uri {
                    sip.headers = None;
                }
                let mut routes = rest.to_vec();
                routes.push(NameAddr {
                    display_name: None,
                    uri: self.remote_target.clone(),
                    params: Vec::new(),
                });
                (uri, routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }
}

fn is_loose(route: &NameAddr) -> bool {
    route.uri.param("lr").is_some() || route.param("lr").is_some()
}

/// A From or To read (§20.20, §20.39): [`Error::BadHeader`] naming it when missing or
/// unreadable.
fn name_addr(value: Result<&str, rsip::Error>, name: &'static str) -> Result<NameAddr, Error> {
    value
        .ok()
        .and_then(|v| NameAddr::parse(v).ok())
        .ok_or(Error::BadHeader(name))
}

/// The remote target a Contact names: a SIP or SIPS URI (§8.1.1.8, §12.1.1).
pub(super) fn contact_uri(value: Result<&str, rsip::Error>) -> Result<Uri, Error> {
    let contact = name_addr(value, "Contact")?;
    match contact.uri {
        uri @ Uri::Sip(_) => Ok(uri),
        _ => Err(Error::BadHeader("Contact")),
    }
}

/// Every Record-Route entry, in the order they appear (the UAS keeps it, §12.1.1; the
/// UAC reverses it, §12.1.2).
pub(super) fn record_routes(headers: &Headers) -> Result<Vec<NameAddr>, Error> {
    let mut routes = Vec::new();
    for header in headers.iter() {
        if let Header::RecordRoute(rr) = header {
            let entries =
                NameAddr::parse_list(rr.value()).map_err(|_| Error::BadHeader("Record-Route"))?;
            routes.extend(entries);
        }
    }
    Ok(routes)
}
