//! The transaction user's inputs: responses to our INVITE (2xx, digest challenges,
//! refusals), BYE, CANCEL and INFO; the bridge's requests (BYE, re-INVITE and UPDATE
//! offers, INFO, OPTIONS) and ACKs, all through the invite session; and what the
//! session then says: what to send, and the answers that set where media goes.

use std::time::Instant;

use dialbridge_sip::message::fields::response_for;
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{Header, Method, Request, Response};
use dialbridge_sip::session::{Output, SessionEnd, SessionEvent};
use dialbridge_sip::transaction::{ClientKey, Event, PeerAddr, ServerKey, TransactionKey};

use super::{Call, HANGUP_WAIT, UNUSABLE_REASON};
use crate::outcome::{EndedBy, NegotiatedCodec};
use crate::rtp::{Media, RemoteMedia};

impl Call<'_> {
    pub(super) fn handle_event(&mut self, event: Event<PeerAddr>) -> Result<(), String> {
        let now = Instant::now();
        match event {
            Event::Response { key, response } => self.handle_response(&key, &response, now)?,
            Event::TimedOut { key } => {
                let method = match &key {
                    TransactionKey::Client(k) => k.method(),
                    TransactionKey::Server(k) => k.method(),
                };
                match method {
                    Method::Invite if !self.hanging_up => {
                        self.fail("INVITE timed out (Timer B)".into());
                        self.ended_by = Some(EndedBy::Timeout);
                        self.session.handle_invite_timeout();
                        self.done = true;
                    }
                    Method::Bye | Method::Cancel => {
                        self.fail(format!("{method} timed out"));
                        self.done = true;
                    }
                    Method::Info => {
                        self.fail("INFO timed out".into());
                        self.info_answered(
                            &ClientKey::clone(
                                self.script.info_in_flight.as_ref().ok_or("no INFO")?,
                            ),
                            now,
                        )?;
                    }
                    _ => {}
                }
            }
            Event::NewRequest { key, request, .. } => self.handle_request(&key, &request, now)?,
            Event::AckFor2xx { request, .. } => self.session.handle_ack(&request, now),
            Event::Cancel {
                invite_key, cancel, ..
            } => {
                self.say("← CANCEL");
                let _ =
                    self.layer
                        .respond(&invite_key, response_for(&cancel, 487, None, None), now);
            }
            Event::Refused { request, peer, .. } => {
                let reply = response_for(&request, 503, None, None);
                self.layer.send_stateless(reply, peer);
            }
            Event::Terminated { .. } | Event::NoAckFor2xx { .. } => {}
        }
        self.handle_session(now)
    }

    pub(super) fn handle_response(
        &mut self,
        key: &ClientKey,
        resp: &Response,
        now: Instant,
    ) -> Result<(), String> {
        let code = resp.status_code.code();
        let reason = reason_of(resp);
        let method = key.method();
        self.say(&format!("← {code} {reason} ({method})"));
        match method {
            Method::Invite => self.handle_invite_response(key, resp, code, reason, now),
            // The INVITE's 487 (or a crossing 2xx) settles a CANCEL, not its 200.
            Method::Cancel => {}
            Method::Bye if code >= 200 => {
                self.session.handle_response(resp, now);
                self.done = true;
            }
            Method::Info if code >= 200 => {
                self.session.handle_response(resp, now);
                if code >= 300 {
                    self.fail(format!("INFO refused: {code} {reason}"));
                }
                return self.info_answered(key, now);
            }
            _ => {}
        }
        Ok(())
    }

    /// A response to our INVITE: the session ACKs a 2xx and reads its answer; what it
    /// says comes back through [`Self::handle_session`]. The status and times are the
    /// report's.
    fn handle_invite_response(
        &mut self,
        key: &ClientKey,
        resp: &Response,
        code: u16,
        reason: String,
        now: Instant,
    ) {
        if (200..300).contains(&code) {
            if self.answered_at.is_none() {
                self.answered_at = Some(now);
                self.setup = Some(now.saturating_duration_since(self.started));
                self.status = Some((code, reason));
            }
        } else if code >= 200 {
            // A final answer to an INVITE we no longer wait for (the one a challenge
            // replaced) changes nothing.
            if self.invite_key.as_ref() != Some(key) {
                return;
            }
            self.say("→ ACK");
            if !self.will_answer_challenge(code) {
                self.status = Some((code, reason));
            }
        }
        self.session.handle_invite_response(resp, now);
    }

    /// A 401/407 we answer with credentials: the first one, while not hanging up.
    fn will_answer_challenge(&self, code: u16) -> bool {
        matches!(code, 401 | 407)
            && !self.challenged
            && !self.hanging_up
            && self.config.credentials.is_some()
    }

    pub(super) fn handle_request(
        &mut self,
        key: &ServerKey,
        req: &Request,
        now: Instant,
    ) -> Result<(), String> {
        let method = req.method;
        self.say(&format!("← {method}"));
        // An ACK is never answered (the session takes it and gives nothing).
        let Some(reply) = self.session.handle_request(req, now) else {
            return Ok(());
        };
        let code = reply.status_code.code();
        if matches!(method, Method::Invite | Method::Update) && code >= 300 {
            self.fail(format!("re-{method} refused: {code} {}", reason_of(&reply)));
        }
        self.say(&format!("→ {code} ({method})"));
        self.layer
            .respond(key, reply, now)
            .map_err(|e| e.to_string())
    }

    /// Carries out what the session says: ACKs and its own BYEs go out, and its events
    /// start media, move it, answer a challenge or end the call.
    pub(super) fn handle_session(&mut self, now: Instant) -> Result<(), String> {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Ack(ack) => {
                    self.say("→ ACK");
                    self.layer.send_stateless(ack, self.peer);
                }
                Output::Request(request) => {
                    self.say(&format!("→ {}", request.method));
                    self.layer
                        .send_request(request, self.peer, now)
                        .map_err(|e| e.to_string())?;
                }
                Output::RespondInvite(_) => {}
                Output::Event(event) => self.handle_session_event(event, now)?,
            }
        }
        Ok(())
    }

    fn handle_session_event(&mut self, event: SessionEvent, now: Instant) -> Result<(), String> {
        match event {
            SessionEvent::Answered => {
                self.deadline = None;
                if let Err(why) = self.start_media() {
                    // An answer we cannot use (a codec we did not offer): the dialog
                    // exists all the same, so it ends with a BYE (RFC 3264 §7).
                    self.fail(why);
                    return self.hangup(UNUSABLE_REASON, now);
                }
                self.advance_script(now)?;
            }
            SessionEvent::Challenged(challenge) => {
                let code = challenge.status_code.code();
                if !self.will_answer_challenge(code) {
                    self.ended_by.get_or_insert(EndedBy::Refused);
                    self.done = true;
                    return Ok(());
                }
                self.challenged = true;
                self.answer_challenge(&challenge, code)?;
            }
            SessionEvent::MediaChanged { .. } => {
                if let Err(why) = self.apply_negotiated() {
                    self.fail(why);
                }
            }
            SessionEvent::MustEnd(how) => {
                if how == SessionEnd::BadAnswer {
                    self.fail("SDP answer in the ACK missing or unfit for our offer".into());
                }
                self.hangup(UNUSABLE_REASON, now)?;
            }
            SessionEvent::Ended(SessionEnd::Cancelled) => {
                // The 2xx crossed our CANCEL: the session ACKed it and sent BYE.
                self.hanging_up = true;
                self.deadline = Some(now + HANGUP_WAIT);
            }
            SessionEvent::Ended(SessionEnd::BadAnswer) => {
                // The session ACKed the 2xx and sent BYE (RFC 3264 §7).
                self.fail("SDP answer missing or unfit for our offer".into());
                self.ended_by.get_or_insert(EndedBy::Caller);
                self.hanging_up = true;
                self.deadline = Some(now + HANGUP_WAIT);
            }
            SessionEvent::Ended(SessionEnd::RemoteBye) => {
                if self.answered_at.is_some() && !self.hanging_up {
                    self.ended_by.get_or_insert(EndedBy::Bridge);
                }
                self.done = true;
            }
            SessionEvent::Ended(SessionEnd::Refused(_)) => {
                self.ended_by.get_or_insert(EndedBy::Refused);
                self.done = true;
            }
            SessionEvent::Ended(_) => self.done = true,
            SessionEvent::Progress(_) | SessionEvent::Confirmed => {}
        }
        Ok(())
    }

    /// A new INVITE with our credentials for the challenge in a 401/407.
    fn answer_challenge(&mut self, resp: &Response, code: u16) -> Result<(), String> {
        let (user, password) = self.config.credentials.clone().ok_or("no credentials")?;
        let (ask, answer) = if code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let challenge = challenge_of(resp, code).ok_or(format!("{code} without {ask}"))?;
        let cnonce = format!("{:08x}", rand::random::<u32>());
        let value = dialbridge_sip::auth::respond(
            &challenge,
            &user,
            &password,
            "INVITE",
            &self.session.caller().request_uri().to_string(),
            &cnonce,
            1,
        )
        .map_err(|e| format!("cannot answer the challenge: {e}"))?;
        self.send_invite(Some((answer, &value)))
    }

    /// Where media now goes, after a re-offer answered or an answer in an ACK.
    fn apply_negotiated(&mut self) -> Result<(), String> {
        let negotiated = self.session.negotiated().ok_or("no media negotiated")?;
        let remote = RemoteMedia::from_negotiated(negotiated)?;
        self.negotiated = Some(NegotiatedCodec::of(&remote));
        if let Some(media) = &self.media {
            media.set_remote(remote);
        }
        Ok(())
    }

    fn start_media(&mut self) -> Result<(), String> {
        let negotiated = self.session.negotiated().ok_or("no media negotiated")?;
        let remote = RemoteMedia::from_negotiated(negotiated)?;
        self.negotiated = Some(NegotiatedCodec::of(&remote));
        self.say(&format!(
            "media: {} PT {} to {}{}",
            remote.codec.encoding_name(),
            remote.payload_type,
            remote.addr,
            match remote.telephone_event {
                Some(pt) => format!(", telephone-event PT {pt}"),
                None => String::new(),
            }
        ));
        let socket = self.socket.take().ok_or("RTP socket already used")?;
        let media = Media::start(
            socket,
            remote,
            self.config.source.clone(),
            self.config.record_limit,
        )
        .map_err(|e| format!("media: {e}"))?;
        self.media = Some(media);
        Ok(())
    }
}

fn reason_of(resp: &Response) -> String {
    match &resp.status_code {
        dialbridge_sip::rsip::StatusCode::Other(_, r) if !r.is_empty() => r.clone(),
        s => dialbridge_sip::message::reason_phrase(s.code()).to_owned(),
    }
}

fn challenge_of(resp: &Response, code: u16) -> Option<String> {
    resp.headers.iter().find_map(|h| match (code, h) {
        (401, Header::WwwAuthenticate(v)) => Some(v.value().to_owned()),
        (407, Header::ProxyAuthenticate(v)) => Some(v.value().to_owned()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CallCodec;
    use dialbridge_media::AudioCodec;
    use dialbridge_sip::sdp::{MediaSession, SessionDescription};

    fn answer(codec: CallCodec, m_line: &str, attributes: &str) -> Result<RemoteMedia, String> {
        let local = codec.local_media("127.0.0.1".parse().unwrap(), 40000, 1, true);
        let session = MediaSession::new(local);
        let sdp = format!(
            "v=0\r\no=bridge 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             {m_line}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n"
        );
        let parsed = SessionDescription::parse_bytes(sdp.as_bytes()).map_err(|e| e.to_string())?;
        let negotiated = session.handle_answer(&parsed).map_err(|e| e.to_string())?;
        RemoteMedia::from_negotiated(&negotiated)
    }

    #[test]
    fn the_answer_says_the_codec_and_its_payload_types() {
        // Opus renumbered by the answer: we send with the answer's numbers.
        let r = answer(
            CallCodec::Opus,
            "m=audio 30000 RTP/AVP 96 100",
            "a=rtpmap:96 opus/48000/2\r\na=rtpmap:100 telephone-event/8000\r\n",
        )
        .unwrap();
        assert_eq!(r.codec, AudioCodec::Opus { payload_type: 96 });
        assert_eq!((r.payload_type, r.telephone_event), (96, Some(100)));
        assert_eq!(r.addr, "192.0.2.1:30000".parse().unwrap());
        assert!(r.send);
        // G.722 by its static payload type alone.
        let r = answer(CallCodec::G722, "m=audio 30002 RTP/AVP 9", "").unwrap();
        assert_eq!(
            (r.codec, r.payload_type, r.telephone_event),
            (AudioCodec::G722, 9, None)
        );
        assert_eq!(
            NegotiatedCodec::of(&r),
            NegotiatedCodec {
                codec: CallCodec::G722,
                encoding: "G722",
                payload_type: 9,
                clock_rate: 8000,
                telephone_event: None,
            }
        );
        // A codec we did not offer is refused.
        assert!(
            answer(
                CallCodec::G722,
                "m=audio 30004 RTP/AVP 0",
                "a=rtpmap:0 PCMU/8000\r\n"
            )
            .is_err()
        );
    }
}
