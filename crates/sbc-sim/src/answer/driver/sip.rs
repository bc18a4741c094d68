//! The SIP side of the run: the transaction layer's events, new requests (a call, one
//! too many, an OPTIONS ping, a request in a call) and what they are answered.

use std::net::SocketAddr;
use std::time::Instant;

use dialbridge_sip::dialog::LocalAddress;
use dialbridge_sip::message::fields;
use dialbridge_sip::rsip::{self, Method, Request, Response};
use dialbridge_sip::transaction::{Event, PeerAddr, Refusal, ServerKey, TransactionKey};
use tokio::net::UdpSocket;

use super::{Entry, MAX_CALLS, Phone, tell};
use crate::answer::callee::{self, Callee};
use crate::answer::report::CallReport;
use crate::answer::{OptionsReply, PHONE};

impl Phone<'_> {
    pub(super) fn handle_event(&mut self, event: Event<PeerAddr>, now: Instant) {
        match event {
            Event::NewRequest { key, request, peer } => {
                self.handle_request(key, request, peer, now)
            }
            Event::AckFor2xx { request, .. } => {
                let id = fields::call_id(&request.headers).unwrap_or_default();
                tell(self.progress, id, "← ACK");
                if let Some(entry) = self.calls.get_mut(id) {
                    entry.callee.handle_ack(&request, now);
                }
            }
            Event::Cancel {
                invite_key, cancel, ..
            } => {
                let id = self.invites.get(&invite_key).cloned().unwrap_or_default();
                let response = self
                    .calls
                    .get_mut(&id)
                    .and_then(|e| e.callee.handle_cancel(&cancel, now));
                if let Some(response) = response {
                    self.say_call(&id, "← CANCEL → 487");
                    self.respond(&invite_key, response, now);
                }
            }
            Event::Response { key, response } => {
                let id = self.requests.get(&key).cloned().unwrap_or_default();
                self.say_call(
                    &id,
                    &format!("← {} ({})", response.status_code, key.method()),
                );
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_response(&response, now);
                }
            }
            Event::TimedOut {
                key: TransactionKey::Client(key),
            } => {
                let id = self.requests.get(&key).cloned().unwrap_or_default();
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_request_timeout(key.method(), now);
                }
            }
            Event::NoAckFor2xx { invite_key } => {
                let id = self.invites.get(&invite_key).cloned().unwrap_or_default();
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.callee.handle_no_ack(now);
                }
            }
            Event::Terminated { key } => match key {
                TransactionKey::Server(k) => {
                    self.invites.remove(&k);
                }
                TransactionKey::Client(k) => {
                    self.requests.remove(&k);
                }
            },
            Event::Refused {
                request,
                peer,
                reason,
            } => {
                let reply = match reason {
                    Refusal::Overloaded => PHONE.reply(&request, 503, None),
                    Refusal::Malformed(e) => PHONE.malformed(&request, &e),
                };
                self.layer.send_stateless(reply, peer);
            }
            // Timer H: our refusal was never ACKed; the call is already over.
            Event::TimedOut { .. } => {}
        }
    }

    fn handle_request(&mut self, key: ServerKey, request: Request, peer: PeerAddr, now: Instant) {
        if let Some(refusal) = PHONE.precheck(&request) {
            self.respond(&key, refusal, now);
            return;
        }
        let call_id = fields::call_id(&request.headers)
            .unwrap_or_default()
            .to_owned();
        let in_dialog = fields::to_tag(&request.headers).is_some();
        match request.method {
            Method::Invite if !in_dialog => self.take_call(key, request, peer, call_id, now),
            Method::Options if !in_dialog => self.answer_options(&key, &request, now),
            method => {
                let response = match self.calls.get_mut(&call_id) {
                    Some(entry) => entry.callee.handle_request(&request, now),
                    None => Some(PHONE.no_such_dialog(&request)),
                };
                if let Some(response) = response {
                    let code = response.status_code.code();
                    self.say_call(&call_id, &format!("← {method} → {code}"));
                    self.respond(&key, response, now);
                }
            }
        }
    }

    /// A new INVITE: a call, unless it is one too many (503) or cannot be one.
    fn take_call(
        &mut self,
        key: ServerKey,
        invite: Request,
        peer: PeerAddr,
        call_id: String,
        now: Instant,
    ) {
        let (from, to) = (callee::from_user(&invite), callee::dialled(&invite));
        self.say_call(
            &call_id,
            &format!("← INVITE {to} from {from} ({})", peer.addr),
        );
        if self.calls.contains_key(&call_id) {
            let refusal = PHONE.reply(&invite, 482, Some("Loop Detected"));
            self.respond(&key, refusal, now);
            return;
        }
        self.taken += 1;
        let expected = self.config.calls;
        if self.taken > expected || self.calls.len() >= MAX_CALLS {
            self.summary.failures.push(if self.taken > expected {
                format!("a call to {to} from {from} beyond the {expected} expected")
            } else {
                format!("a call to {to} from {from} while {MAX_CALLS} were going")
            });
            let refusal = PHONE.reply(&invite, 503, Some("No More Calls Expected"));
            self.respond(&key, refusal, now);
            return;
        }
        let rtp = match bind_rtp(self.local) {
            Ok(rtp) => rtp,
            Err(e) => {
                let refusal = PHONE.reply(&invite, 503, Some("No RTP Port"));
                self.refuse_call(&call_id, &from, &to, refusal, &e.to_string(), &key, now);
                return;
            }
        };
        let media = match rtp.local_addr() {
            Ok(addr) => addr,
            Err(e) => {
                let refusal = PHONE.reply(&invite, 503, Some("No RTP Port"));
                self.refuse_call(&call_id, &from, &to, refusal, &e.to_string(), &key, now);
                return;
            }
        };
        let local = LocalAddress::new("sbc-sim", self.local, rsip::Transport::Udp);
        match Callee::new(invite, local, media, self.config.plan.clone(), now) {
            Ok(callee) => {
                self.invites.insert(key.clone(), call_id.clone());
                self.calls.insert(
                    call_id,
                    Entry {
                        callee,
                        peer,
                        invite_key: key,
                        rtp: Some(rtp),
                        media: None,
                    },
                );
            }
            Err(refusal) => {
                let why = refusal.status_code.to_string();
                self.refuse_call(&call_id, &from, &to, *refusal, &why, &key, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn refuse_call(
        &mut self,
        call_id: &str,
        from: &str,
        to: &str,
        refusal: Response,
        why: &str,
        key: &ServerKey,
        now: Instant,
    ) {
        let status = refusal.status_code.code();
        self.say_call(call_id, &format!("→ {status} ({why})"));
        self.respond(key, refusal, now);
        self.refused
            .push(CallReport::refused(call_id, from, to, status, why));
    }

    fn answer_options(&mut self, key: &ServerKey, request: &Request, now: Instant) {
        self.summary.options += 1;
        let response = match self.config.options {
            OptionsReply::Status(200) => PHONE.options(request),
            OptionsReply::Status(code) => PHONE.reply(request, code, None),
            // Left unanswered: the server transaction absorbs its retransmissions.
            OptionsReply::Silent => {
                self.say("← OPTIONS (not answered)");
                return;
            }
        };
        self.say(&format!("← OPTIONS → {}", response.status_code.code()));
        self.respond(key, response, now);
    }
}

/// An RTP socket on our address, any port (its port goes in our answer).
fn bind_rtp(local: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}
