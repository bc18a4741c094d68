//! The transaction user's inputs: responses to our INVITE (2xx, digest challenges,
//! refusals), BYE, CANCEL and INFO; the bridge's requests (BYE, re-INVITE and UPDATE
//! offers, INFO, OPTIONS); and the SDP answers that set where media goes.

use std::time::Instant;

use dialbridge_media::AudioCodec;
use dialbridge_sip::message::fields::response_for;
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{Header, Method, Request, Response};
use dialbridge_sip::sdp::{MediaSession, Negotiated, SessionDescription};
use dialbridge_sip::transaction::{ClientKey, Event, PeerAddr, ServerKey, TransactionKey};

use super::{Call, Phase};
use crate::dialog::response;
use crate::outcome::{EndedBy, NegotiatedCodec};
use crate::rtp::{Media, RemoteMedia};

impl Call<'_> {
    pub(super) fn handle_event(&mut self, event: Event<PeerAddr>) -> Result<(), String> {
        let now = Instant::now();
        match event {
            Event::Response { key, response } => self.handle_response(&key, &response, now),
            Event::TimedOut { key } => {
                let method = match &key {
                    TransactionKey::Client(k) => k.method(),
                    TransactionKey::Server(k) => k.method(),
                };
                match method {
                    Method::Invite if self.phase == Phase::Inviting => {
                        self.fail("INVITE timed out (Timer B)".into());
                        self.ended_by = Some(EndedBy::Timeout);
                        self.phase = Phase::Done;
                    }
                    Method::Bye | Method::Cancel => {
                        self.fail(format!("{method} timed out"));
                        self.phase = Phase::Done;
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
                Ok(())
            }
            Event::NewRequest { key, request, .. } => self.handle_request(&key, &request, now),
            Event::AckFor2xx { request, .. } => {
                if self.offered_in_2xx && !request.body.is_empty() {
                    self.offered_in_2xx = false;
                    self.apply_answer_sdp(&request.body)?;
                }
                Ok(())
            }
            Event::Cancel {
                invite_key, cancel, ..
            } => {
                self.say("← CANCEL");
                let _ =
                    self.layer
                        .respond(&invite_key, response_for(&cancel, 487, None, None), now);
                Ok(())
            }
            Event::Refused { request, peer, .. } => {
                let reply = response_for(&request, 503, None, None);
                self.layer.send_stateless(reply, peer);
                Ok(())
            }
            Event::Terminated { .. } | Event::NoAckFor2xx { .. } => Ok(()),
        }
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
            Method::Bye | Method::Cancel if code >= 200 => {
                if method == Method::Bye || self.phase == Phase::Cancelling && self.status.is_some()
                {
                    self.phase = Phase::Done;
                }
                Ok(())
            }
            Method::Info if code >= 200 => {
                if code >= 300 {
                    self.fail(format!("INFO refused: {code} {reason}"));
                }
                self.info_answered(key, now)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn handle_invite_response(
        &mut self,
        key: &ClientKey,
        resp: &Response,
        code: u16,
        reason: String,
        now: Instant,
    ) -> Result<(), String> {
        if code < 200 {
            return Ok(());
        }
        let current = self.invite_key.as_ref() == Some(key);
        if (200..300).contains(&code) {
            // A 2xx (or its retransmission): every one gets an ACK (§13.2.2.4).
            if self.phase == Phase::Inviting || self.phase == Phase::Cancelling {
                self.dialog.handle_2xx(resp).map_err(|e| e.to_string())?;
            }
            let ack = self
                .dialog
                .ack(self.invite_seq)
                .map_err(|e| e.to_string())?;
            self.layer.send_stateless(ack, self.peer);
            if self.answered_at.is_some() {
                return Ok(());
            }
            self.say("→ ACK");
            self.answered_at = Some(now);
            self.setup = Some(now.saturating_duration_since(self.started));
            self.status = Some((code, reason));
            if self.phase == Phase::Cancelling {
                // The 2xx crossed our CANCEL: the call exists, end it.
                self.phase = Phase::Established;
                return self.hangup(now);
            }
            self.phase = Phase::Established;
            self.phase_deadline = None;
            if let Err(why) = self.start_media(&resp.body) {
                // An answer we cannot use (a codec we did not offer, no SDP): the
                // dialog exists all the same, so it ends with a BYE (RFC 3264 §7).
                self.fail(why);
                return self.hangup(now);
            }
            return self.advance_script(now);
        }
        if !current {
            return Ok(());
        }
        if (code == 401 || code == 407)
            && !self.challenged
            && let Some((user, password)) = self.config.credentials.clone()
        {
            self.challenged = true;
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
                self.dialog.request_uri(),
                &cnonce,
                1,
            )
            .map_err(|e| format!("cannot answer the challenge: {e}"))?;
            let offer = self
                .session
                .as_mut()
                .map(MediaSession::offer)
                .unwrap_or_default();
            self.say("→ ACK");
            return self.send_invite(&offer, Some((answer, &value)));
        }
        self.say("→ ACK");
        self.status = Some((code, reason));
        self.ended_by.get_or_insert(EndedBy::Refused);
        self.phase = Phase::Done;
        Ok(())
    }

    pub(super) fn handle_request(
        &mut self,
        key: &ServerKey,
        req: &Request,
        now: Instant,
    ) -> Result<(), String> {
        let method = req.method;
        self.say(&format!("← {method}"));
        let contact = self.dialog.contact();
        let reply = match method {
            Method::Bye => {
                if self.phase == Phase::Established {
                    self.ended_by.get_or_insert(EndedBy::Bridge);
                }
                self.phase = Phase::Done;
                response(req, 200, None, None)
            }
            Method::Invite | Method::Update => {
                match self.answer_offer(req, method == Method::Invite) {
                    Ok(sdp) => response(
                        req,
                        200,
                        Some(&contact),
                        sdp.as_deref().map(|s| ("application/sdp", s)),
                    ),
                    Err(e) => {
                        self.fail(format!("re-{method} refused: {e}"));
                        response(req, 488, None, None)
                    }
                }
            }
            Method::Info | Method::Options | Method::Notify => response(req, 200, None, None),
            _ => response(req, 501, None, None),
        };
        self.say(&format!("→ {} ({method})", reply.status_code.code()));
        self.layer
            .respond(key, reply, now)
            .map_err(|e| e.to_string())
    }

    /// The SDP for our 2xx to a re-INVITE or UPDATE: the answer to its offer, or our
    /// offer when it had none (the answer then comes in the ACK).
    pub(super) fn answer_offer(
        &mut self,
        req: &Request,
        is_invite: bool,
    ) -> Result<Option<String>, String> {
        let session = self.session.as_mut().ok_or("no media session")?;
        if req.body.is_empty() {
            if !is_invite {
                return Ok(None);
            }
            self.offered_in_2xx = true;
            return Ok(Some(session.offer()));
        }
        let offer = SessionDescription::parse_bytes(&req.body).map_err(|e| e.to_string())?;
        let answer = session.handle_offer(&offer).map_err(|e| e.to_string())?;
        let remote = remote_media(&answer.media)?;
        self.negotiated = Some(NegotiatedCodec::of(&remote));
        if let Some(media) = &self.media {
            media.set_remote(remote);
        }
        Ok(Some(answer.sdp))
    }

    pub(super) fn apply_answer_sdp(&mut self, body: &[u8]) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no media session")?;
        let sdp = SessionDescription::parse_bytes(body).map_err(|e| format!("SDP answer: {e}"))?;
        let negotiated = session
            .handle_answer(&sdp)
            .map_err(|e| format!("SDP answer: {e}"))?;
        let remote = remote_media(&negotiated)?;
        self.negotiated = Some(NegotiatedCodec::of(&remote));
        if let Some(media) = &self.media {
            media.set_remote(remote);
        }
        Ok(())
    }

    pub(super) fn start_media(&mut self, body: &[u8]) -> Result<(), String> {
        let session = self.session.as_ref().ok_or("no media session")?;
        if body.is_empty() {
            return Err("2xx without an SDP answer".into());
        }
        let sdp = SessionDescription::parse_bytes(body).map_err(|e| format!("SDP answer: {e}"))?;
        let negotiated = session
            .handle_answer(&sdp)
            .map_err(|e| format!("SDP answer: {e}"))?;
        let remote = remote_media(&negotiated)?;
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

/// What the media task needs from a negotiation: the codec as the answer numbered it
/// (Opus's payload type is dynamic: the answer's number is the one we send with).
fn remote_media(n: &Negotiated) -> Result<RemoteMedia, String> {
    let codec = AudioCodec::from_rtpmap(n.codec.name, n.codec.clock_rate, n.payload_type)
        .ok_or_else(|| format!("codec {}/{} not offered", n.codec.name, n.codec.clock_rate))?;
    Ok(RemoteMedia {
        addr: n.remote_rtp,
        codec,
        payload_type: n.payload_type,
        telephone_event: n.telephone_event,
        send: n.direction.sends()
            && !n.remote_rtp.ip().is_unspecified()
            && n.remote_rtp.port() != 0,
    })
}

pub(super) fn cseq_of(req: &Request) -> u32 {
    dialbridge_sip::message::fields::cseq(&req.headers)
        .map(|c| c.seq)
        .unwrap_or_default()
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

    fn answer(codec: CallCodec, m_line: &str, attributes: &str) -> Result<RemoteMedia, String> {
        let local = codec.local_media("127.0.0.1".parse().unwrap(), 40000, 1, true);
        let session = MediaSession::new(local);
        let sdp = format!(
            "v=0\r\no=bridge 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             {m_line}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n"
        );
        let parsed = SessionDescription::parse_bytes(sdp.as_bytes()).map_err(|e| e.to_string())?;
        let negotiated = session.handle_answer(&parsed).map_err(|e| e.to_string())?;
        remote_media(&negotiated)
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
