//! RFC 3264 offer/answer for one audio stream: answering a peer's offer (§6),
//! making our own offer (§5) and reading the answer to it (§7), and the `o=`
//! version rules across a dialog's re-INVITEs (§8).

use std::net::SocketAddr;

use super::parse::{Crypto, Media, Proto, SessionDescription};
use super::write::{MediaLine, redact_sdes_keys, render};
use super::{
    Codec, Direction, LocalMedia, SRTP_SUITES, SdpError, TELEPHONE_EVENT_FMTP,
    TELEPHONE_EVENT_OFFER_PT,
};

/// Packetisation assumed when the peer writes no `a=ptime` (RFC 3551 §4.5: 20 ms
/// for G.711 and G.722; Opus's default is 20 ms too).
const DEFAULT_PTIME: u32 = 20;

/// What one negotiation settled for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides use.
    pub codec: Codec,
    /// Its payload type, as the offer numbered it.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, as the offer numbered it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (`c=` address and `m=` port; `0.0.0.0` when on old-style hold).
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `a=rtcp` if given, else the RTP port + 1 (RFC 3550 §11;
    /// RTCP multiplexing is not negotiated).
    pub remote_rtcp: SocketAddr,
    /// The peer's packetisation time in ms (`a=ptime`, 20 when absent).
    pub ptime: u32,
    /// Our direction: whether we send and/or receive.
    pub direction: Direction,
    /// The peer holds us: it offered sendonly or inactive, or `c=0.0.0.0`.
    pub hold: bool,
    /// Every `a=crypto` the peer wrote on the chosen m-line.
    pub offered_crypto: Vec<Crypto>,
    /// The `a=crypto` accepted (the peer's key for the media it sends), with RTP/SAVP.
    pub remote_crypto: Option<Crypto>,
}

/// Our answer to an offer.
#[derive(Clone, PartialEq, Eq)]
pub struct Answer {
    /// What was agreed.
    pub media: Negotiated,
    /// The answer SDP to send (with SRTP, it holds our key: log it through
    /// [`redact_sdes_keys`](super::redact_sdes_keys)).
    pub sdp: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("media", &self.media)
            .field("sdp", &redact_sdes_keys(&self.sdp))
            .finish()
    }
}

/// Answers `offer` (RFC 3264 §6) with `local.session_version` in `o=`.
///
/// The first audio m-line that has a codec we support is accepted; every other
/// m-line is rejected with port 0. With nothing accepted the error is
/// [`SdpError::NotAcceptable`] (488). Use [`MediaSession`] within a dialog.
pub fn answer(offer: &SessionDescription, local: &LocalMedia) -> Result<Answer, SdpError> {
    build_answer(offer, local, local.session_version)
}

/// Our offer (RFC 3264 §5) with `local.session_version` in `o=`: every codec of
/// `local` in preference order, telephone-event as PT 101.
pub fn offer(local: &LocalMedia) -> String {
    build_offer(local, local.session_version)
}

/// Reads the peer's answer to our [`offer`] made from `local` (RFC 3264 §7).
pub fn handle_answer(
    local: &LocalMedia,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    let [m] = answer.media.as_slice() else {
        return Err(SdpError::AnswerMismatch(
            "m-line count differs from our offer",
        ));
    };
    if m.port == 0 {
        return Err(SdpError::NotAcceptable("peer rejected the audio stream"));
    }
    if m.proto != our_proto(local) {
        return Err(SdpError::AnswerMismatch("transport differs from our offer"));
    }
    let (codec, payload_type) = m
        .payload_types
        .iter()
        .find_map(|pt| match_codec(m, *pt, &local.codecs, true).map(|c| (c, *pt)))
        .ok_or(SdpError::AnswerMismatch("no codec we offered"))?;
    let remote_crypto = match m.proto {
        Proto::RtpSavp => Some(m.crypto.iter().find(|c| usable_crypto(c)).cloned().ok_or(
            SdpError::AnswerMismatch("RTP/SAVP answer without a suite we offered"),
        )?),
        _ => None,
    };
    let telephone_event = local
        .telephone_event
        .then(|| m.telephone_event_for(codec.clock_rate))
        .flatten()
        .map(|(pt, _)| pt);
    Ok(settle(
        answer,
        m,
        local,
        codec,
        payload_type,
        telephone_event,
        remote_crypto,
    ))
}

/// The offer/answer state of one dialog: keeps `o=` sess-version rules across
/// re-INVITEs (RFC 3264 §8: the version grows by one each time the SDP we send
/// differs from the previous one, and stays when it does not).
#[derive(Clone)]
pub struct MediaSession {
    local: LocalMedia,
    version: u64,
    last_sent: Option<String>,
}

impl std::fmt::Debug for MediaSession {
    // The last SDP sent may hold our SDES key: it is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("local", &self.local)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// A session that will send `local.session_version` in its first SDP.
    pub fn new(local: LocalMedia) -> Self {
        let version = local.session_version;
        MediaSession {
            local,
            version,
            last_sent: None,
        }
    }

    /// Our media description.
    pub fn local(&self) -> &LocalMedia {
        &self.local
    }

    /// The sess-version of the last SDP sent (or of the next, before any).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Changes the direction we want (hold: `SendOnly`; resume: `SendRecv`). Takes
    /// effect in the next offer or answer.
    pub fn set_direction(&mut self, direction: Direction) {
        self.local.direction = direction;
    }

    /// Answers an offer received in this dialog (initial INVITE or re-INVITE).
    /// A refused offer changes nothing.
    pub fn handle_offer(&mut self, offer: &SessionDescription) -> Result<Answer, SdpError> {
        let mut answer = build_answer(offer, &self.local, self.version)?;
        if self.changed(&answer.sdp) {
            self.version = self.version.wrapping_add(1);
            answer = build_answer(offer, &self.local, self.version)?;
        }
        self.last_sent = Some(answer.sdp.clone());
        Ok(answer)
    }

    /// Makes an offer in this dialog (for a re-INVITE that came without SDP, or our
    /// own hold/resume).
    pub fn offer(&mut self) -> String {
        let mut sdp = build_offer(&self.local, self.version);
        if self.changed(&sdp) {
            self.version = self.version.wrapping_add(1);
            sdp = build_offer(&self.local, self.version);
        }
        self.last_sent = Some(sdp.clone());
        sdp
    }

    /// Reads the answer to our last [`MediaSession::offer`].
    pub fn handle_answer(&self, answer: &SessionDescription) -> Result<Negotiated, SdpError> {
        handle_answer(&self.local, answer)
    }

    fn changed(&self, sdp: &str) -> bool {
        self.last_sent.as_deref().is_some_and(|last| last != sdp)
    }
}

fn build_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    version: u64,
) -> Result<Answer, SdpError> {
    let mut lines = Vec::with_capacity(offer.media.len());
    let mut accepted = None;
    let mut refusal = "offer has no m= line";
    for m in &offer.media {
        let outcome = match accepted {
            None => accept(offer, m, local),
            Some(_) => Err("only one audio stream is supported"),
        };
        match outcome {
            Ok((negotiated, line)) => {
                accepted = Some(negotiated);
                lines.push(line);
            }
            Err(reason) => {
                refusal = reason;
                lines.push(MediaLine::rejected(m));
            }
        }
    }
    let media = accepted.ok_or(SdpError::NotAcceptable(refusal))?;
    let sdp = render(local, version, &offer.timing, &lines);
    Ok(Answer { media, sdp })
}

/// Accepts one offered m-line, or says why not.
fn accept(
    offer: &SessionDescription,
    m: &Media,
    local: &LocalMedia,
) -> Result<(Negotiated, MediaLine), &'static str> {
    if m.kind != "audio" {
        return Err("only audio is supported");
    }
    if m.port == 0 {
        return Err("audio stream disabled by the offerer");
    }
    let answer_crypto = match m.proto {
        Proto::RtpAvp => None,
        Proto::RtpSavp => {
            let key = local
                .sdes_inline_key
                .as_deref()
                .ok_or("RTP/SAVP offered but SRTP is not configured")?;
            let chosen = m
                .crypto
                .iter()
                .find(|c| usable_crypto(c))
                .ok_or("no supported a=crypto suite")?;
            Some((chosen.clone(), key))
        }
        _ => return Err("unsupported transport"),
    };
    let (codec, payload_type) = m
        .payload_types
        .iter()
        .find_map(|pt| match_codec(m, *pt, &local.codecs, false).map(|c| (c, *pt)))
        .ok_or("no common codec")?;
    let telephone_event = local
        .telephone_event
        .then(|| m.telephone_event_for(codec.clock_rate))
        .flatten();

    let mut line = MediaLine::audio(local.rtp_port, m.proto.as_str());
    line.add_codec(payload_type, &codec);
    if let Some((te, clock_rate)) = telephone_event {
        line.add_telephone_event(te, clock_rate, m.fmtp(te).unwrap_or(TELEPHONE_EVENT_FMTP));
    }
    let telephone_event = telephone_event.map(|(pt, _)| pt);
    line.attribute(format!("ptime:{}", local.ptime));
    let remote_crypto = answer_crypto.map(|(chosen, key)| {
        line.attribute(format!(
            "crypto:{} {} inline:{key}",
            chosen.tag, chosen.suite
        ));
        chosen
    });
    let negotiated = settle(
        offer,
        m,
        local,
        codec,
        payload_type,
        telephone_event,
        remote_crypto,
    );
    line.attribute(negotiated.direction.as_str().to_owned());
    Ok((negotiated, line))
}

/// The common part of reading an offer or an answer: addresses and direction.
fn settle(
    sdp: &SessionDescription,
    m: &Media,
    local: &LocalMedia,
    codec: Codec,
    payload_type: u8,
    telephone_event: Option<u8>,
    remote_crypto: Option<Crypto>,
) -> Negotiated {
    // The parser refuses an RTP m-line with a port and no c=, so this is only a fallback.
    let address = sdp
        .connection_of(m)
        .map(|c| c.address)
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let mut theirs = sdp.direction_of(m);
    if address.is_unspecified() {
        // RFC 3264 §8.4: c=0.0.0.0 is RFC 2543 hold; the peer receives nothing.
        theirs = Direction::from_flags(theirs.sends(), false);
    }
    let direction = Direction::from_flags(
        local.direction.sends() && theirs.receives(),
        local.direction.receives() && theirs.sends(),
    );
    // We never offer or answer a=rtcp-mux (RFC 5761 §5.1.1: mux only when both
    // sides say so), so RTCP goes apart even to a peer that offered mux.
    let remote_rtcp = match m.rtcp {
        Some(r) => SocketAddr::new(r.address.unwrap_or(address), r.port),
        None => SocketAddr::new(address, m.port.saturating_add(1)),
    };
    Negotiated {
        codec,
        payload_type,
        telephone_event,
        remote_rtp: SocketAddr::new(address, m.port),
        remote_rtcp,
        ptime: m.ptime.unwrap_or(DEFAULT_PTIME),
        direction,
        hold: !theirs.receives(),
        offered_crypto: m.crypto.clone(),
        remote_crypto,
    }
}

/// Which of our codecs an offered payload type is: by `a=rtpmap` name, clock rate
/// and channels, else by static payload type (RFC 3551), else — reading an answer
/// to our offer, which may omit `a=rtpmap` — by the payload type we offered.
fn match_codec(m: &Media, pt: u8, ours: &[Codec], our_numbering: bool) -> Option<Codec> {
    match m.rtpmap(pt) {
        Some(map) => ours.iter().copied().find(|c| {
            c.name.eq_ignore_ascii_case(&map.encoding)
                && c.clock_rate == map.clock_rate
                && c.channels == map.channels
        }),
        None => ours
            .iter()
            .copied()
            .find(|c| c.static_pt == Some(pt) || (our_numbering && c.offer_pt == pt)),
    }
}

fn our_proto(local: &LocalMedia) -> Proto {
    match local.sdes_inline_key {
        Some(_) => Proto::RtpSavp,
        None => Proto::RtpAvp,
    }
}

fn build_offer(local: &LocalMedia, version: u64) -> String {
    let proto = our_proto(local);
    let mut line = MediaLine::audio(local.rtp_port, proto.as_str());
    for codec in &local.codecs {
        line.add_codec(codec.offer_pt, codec);
    }
    if local.telephone_event {
        line.add_telephone_event(TELEPHONE_EVENT_OFFER_PT, 8000, TELEPHONE_EVENT_FMTP);
    }
    line.attribute(format!("ptime:{}", local.ptime));
    if let Some(key) = &local.sdes_inline_key {
        for (tag, suite) in (1..).zip(SRTP_SUITES) {
            line.attribute(format!("crypto:{tag} {suite} inline:{key}"));
        }
    }
    line.attribute(local.direction.as_str().to_owned());
    render(local, version, "0 0", &[line])
}

/// An `a=crypto` we can key SRTP from: a suite of [`SRTP_SUITES`] and no session
/// parameters (RFC 4568 §6.3: `UNENCRYPTED_SRTP`, `KDR=`... change the transform and
/// an answerer must not accept what it does not implement).
fn usable_crypto(c: &Crypto) -> bool {
    SRTP_SUITES.contains(&c.suite.as_str()) && c.session_params.is_empty()
}
