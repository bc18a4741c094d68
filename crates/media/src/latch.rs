//! Symmetric RTP (RFC 4961) and latching ("comedia"): which sources a session accepts
//! RTP and RTCP from, and where it sends them, decided per packet. Pure: time is an
//! argument, nothing is allocated, and the engine calls it on its receive path.
//!
//! A caller behind a NAT (or a softphone that writes its default-route or IPv6 address
//! into the SDP) sends its media from somewhere other than the SDP `c=` address. Asterisk
//! (`rtp_symmetric`, comedia), FreeSWITCH (`rtp_autoadjust`), rtpengine and SBCs answer
//! this by sending back to where the media really comes from. Doing that for any
//! source would let whoever guesses the port take the stream, so a [`Latch`] moves only
//! to a source it has a reason to trust:
//!
//! - (a) the signalling peer's IP: the caller itself, behind the same NAT binding as
//!   its SIP (a NAT rebinding later moves the port, and we follow);
//! - (b) the first packet of the session: in the learning window (before any packet
//!   was accepted, [`LEARNING_WINDOW`] and [`LEARNING_PACKETS`] after open), if it
//!   carries a negotiated payload type (audio, telephone-event, comfort noise) and, with
//!   SRTP, authenticates;
//! - with SRTP, any packet that authenticates: only a holder of the SDES key can make one.
//!
//! Everything else — a stranger injecting plain RTP with the right payload type once
//! media flows — is refused ([`Verdict::Refuse`]), and the engine counts it.
//!
//! A session without latching ([`Latch::fixed`], trunks that do not want it) keeps the
//! RFC 4961 rule it always had: packets from the SDP address's IP only, following a new
//! port there (an SBC or NAT that changed it).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::comfort_noise::CN_PAYLOAD_TYPE;

/// How long after open a session may latch to a source it knows nothing about (rule b).
///
/// The caller starts sending when it has our answer: the ring (`answer_after`, 0 in the
/// demo, a few seconds at most) plus a round trip, plus the 200 OK's retransmissions if
/// UDP lost it (RFC 3261 timer G: 0.5, 1, 2 s, ... after the first). Ten seconds covers
/// a 200 retransmitted three times after a 2 s ring with room to spare; after that, a
/// source that still has not sent is not coming, and keeping the door open would only
/// give a port scanner more time.
pub const LEARNING_WINDOW: Duration = Duration::from_secs(10);

/// Packets refused in the learning window after which it closes (rule b).
///
/// The caller's first packet latches, so the window sees refused packets only when
/// something else is sending: garbage, a wrong payload type, a scanner trying payload
/// types. 50 is one second of 20 ms audio — far more than a confused-but-honest peer
/// sends before one of its packets is right — while it stops a sprayer from walking
/// through all 128 payload types.
pub const LEARNING_PACKETS: u32 = 50;

/// What to do with one received RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the source the session sends to: accept.
    Accept,
    /// Accept, and send to this source from now on (RTP and, see
    /// [`Latch::rtcp_target`], RTCP).
    Latch(SocketAddr),
    /// A stranger (or, with SRTP, a packet that did not authenticate): drop and count.
    Refuse,
}

/// Which RTP payload types a session negotiated (a 128-bit set: no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTypes(u128);

impl PayloadTypes {
    /// The audio codec's payload type, the RFC 4733 one if negotiated, and RFC 3389
    /// comfort noise (13), which callers send in silences without negotiating it.
    pub fn new(audio: u8, telephone_event: Option<u8>) -> Self {
        let set = Self(0).with(audio).with(CN_PAYLOAD_TYPE);
        match telephone_event {
            Some(pt) => set.with(pt),
            None => set,
        }
    }

    /// Whether `pt` is one of them.
    pub fn contains(self, pt: u8) -> bool {
        pt < 128 && self.0 & (1u128 << pt) != 0
    }

    fn with(self, pt: u8) -> Self {
        if pt < 128 {
            Self(self.0 | (1u128 << pt))
        } else {
            self
        }
    }
}

/// Where a session sends and whom it accepts media from.
#[derive(Debug, Clone)]
pub struct Latch {
    /// What signalling gave (the SDP address, or the signalling IP with the SDP port
    /// when a NAT is suspected): its IP is always trusted, as RFC 4961 has it.
    expected: SocketAddr,
    /// Where RTP goes, and the one source accepted without a second look.
    target: SocketAddr,
    symmetric: Option<Symmetric>,
}

#[derive(Debug, Clone)]
struct Symmetric {
    signalling_ip: IpAddr,
    payload_types: PayloadTypes,
    srtp: bool,
    /// The source of the far end's last accepted RTCP packet on the RTP target's IP.
    rtcp_seen: Option<SocketAddr>,
    /// Moved to a source since open (or the last new address from signalling).
    latched: bool,
    /// Open until the first packet is accepted, [`LEARNING_WINDOW`] passes or
    /// [`LEARNING_PACKETS`] are refused.
    learning: Option<Learning>,
}

#[derive(Debug, Clone, Copy)]
struct Learning {
    until: Instant,
    refusals_left: u32,
}

impl Learning {
    fn new(now: Instant) -> Self {
        Self {
            until: now + LEARNING_WINDOW,
            refusals_left: LEARNING_PACKETS,
        }
    }
}

impl Latch {
    /// No latching: send to `remote` (from the SDP) and accept packets from its IP only,
    /// following a new port on that IP.
    pub fn fixed(remote: SocketAddr) -> Self {
        let remote = canonical(remote);
        Self {
            expected: remote,
            target: remote,
            symmetric: None,
        }
    }

    /// Latching: send to `target` until a packet shows where the media really comes
    /// from. `signalling_ip` is where the call's SIP came from; `srtp` says whether
    /// packets are authenticated (then [`Latch::handle_packet`] is told which were).
    pub fn symmetric(
        target: SocketAddr,
        signalling_ip: IpAddr,
        payload_types: PayloadTypes,
        srtp: bool,
        now: Instant,
    ) -> Self {
        let target = canonical(target);
        Self {
            expected: target,
            target,
            symmetric: Some(Symmetric {
                signalling_ip: signalling_ip.to_canonical(),
                payload_types,
                srtp,
                rtcp_seen: None,
                latched: false,
                learning: Some(Learning::new(now)),
            }),
        }
    }

    /// Where RTP goes now.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Whether this latch follows the media (`false`: the SDP address's IP only).
    pub fn is_symmetric(&self) -> bool {
        self.symmetric.is_some()
    }

    /// Where RTCP goes, when latching has decided it: where the far end's RTCP comes
    /// from (a NAT maps the RTCP port on its own), else, once latched, the RTP target's
    /// port + 1 (RFC 3550 §11; no rtcp-mux is negotiated). `None` for a fixed session,
    /// or before anything was learnt: what signalling said (`a=rtcp`, port + 1) stands.
    pub fn rtcp_target(&self) -> Option<SocketAddr> {
        let s = self.symmetric.as_ref()?;
        let seen = s.rtcp_seen.filter(|r| r.ip() == self.target.ip());
        match (seen, s.latched) {
            (Some(seen), _) => Some(seen),
            (None, true) => Some(SocketAddr::new(
                self.target.ip(),
                self.target.port().wrapping_add(1),
            )),
            (None, false) => None,
        }
    }

    /// A cheap look before the packet is authenticated or parsed: `false` means
    /// [`Latch::handle_packet`] would refuse anything from `source` now, so the engine
    /// drops it without spending an HMAC on it.
    pub fn may_accept(&self, now: Instant, source: SocketAddr) -> bool {
        let source = canonical(source);
        if source == self.target || source.ip() == self.expected.ip() {
            return true;
        }
        match &self.symmetric {
            None => false,
            Some(s) => {
                source.ip() == s.signalling_ip
                    || s.srtp
                    || s.learning.is_some_and(|l| now < l.until)
            }
        }
    }

    /// One RTP packet from `source` with payload type `pt`; `authenticated`: it passed
    /// SRTP authentication (ignored without SRTP).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        source: SocketAddr,
        pt: u8,
        authenticated: bool,
    ) -> Verdict {
        let source = canonical(source);
        let Some(s) = self.symmetric.as_mut() else {
            return if source == self.target {
                Verdict::Accept
            } else if source.ip() == self.expected.ip() {
                self.target = source;
                Verdict::Latch(source)
            } else {
                Verdict::Refuse
            };
        };
        if s.srtp && !authenticated {
            return Verdict::Refuse;
        }
        if source == self.target {
            s.learning = None;
            return Verdict::Accept;
        }
        let trusted = source.ip() == s.signalling_ip || source.ip() == self.expected.ip();
        let learnt = match &mut s.learning {
            Some(l) if now < l.until && l.refusals_left > 0 => {
                if s.payload_types.contains(pt) {
                    true
                } else {
                    l.refusals_left -= 1;
                    false
                }
            }
            _ => false,
        };
        if trusted || (s.srtp && authenticated) || learnt {
            s.learning = None;
            s.latched = true;
            self.target = source;
            return Verdict::Latch(source);
        }
        if let Some(l) = &mut s.learning
            && (now >= l.until || l.refusals_left == 0)
        {
            s.learning = None;
        }
        Verdict::Refuse
    }

    /// Whether an RTCP packet from `source` is looked at (before SRTCP authentication,
    /// which an SRTP session still requires).
    pub fn may_accept_rtcp(&self, source: SocketAddr) -> bool {
        let ip = canonical(source).ip();
        if ip == self.expected.ip() {
            return true;
        }
        match &self.symmetric {
            None => false,
            Some(s) => s.srtp || ip == s.signalling_ip || ip == self.target.ip(),
        }
    }

    /// An RTCP packet from `source` was accepted (and authenticated, with SRTP): when it
    /// comes from the RTP target's IP it is where the far end wants its RTCP (a NAT maps
    /// the RTCP port on its own). Returns the new RTCP target if it changed.
    pub fn handle_rtcp(&mut self, source: SocketAddr) -> Option<SocketAddr> {
        let source = canonical(source);
        let target_ip = self.target.ip();
        let s = self.symmetric.as_mut()?;
        if source.ip() != target_ip || s.rtcp_seen == Some(source) {
            return None;
        }
        s.rtcp_seen = Some(source);
        Some(source)
    }

    /// Signalling gave a new address (a re-INVITE's SDP, computed the same way as the
    /// first). A latching session given the address it already has changes nothing, so
    /// hold and resume keep what was latched; a new one is a new start: sent to at once,
    /// with a fresh learning window (RFC 3264 §8.3.1: media may move with a new offer).
    /// A fixed session always moves. Returns whether the RTP target changed.
    pub fn handle_remote(&mut self, now: Instant, remote: SocketAddr) -> bool {
        let remote = canonical(remote);
        match self.symmetric.as_mut() {
            Some(s) => {
                if remote == self.expected {
                    return false;
                }
                s.rtcp_seen = None;
                s.latched = false;
                s.learning = Some(Learning::new(now));
            }
            None => {
                if remote == self.expected && remote == self.target {
                    return false;
                }
            }
        }
        self.expected = remote;
        self.target = remote;
        true
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) as IPv4, so
/// that one caller is one address however it was seen.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCMU: u8 = 0;
    const EVENTS: u8 = 101;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pts() -> PayloadTypes {
        PayloadTypes::new(PCMU, Some(EVENTS))
    }

    /// A softphone that signals from 127.0.0.1 but wrote 127.0.0.99 in its SDP; the
    /// server sends to the signalling IP with the SDP port until it hears from it.
    fn natted(now: Instant) -> Latch {
        Latch::symmetric(
            at("127.0.0.1:4000"),
            "127.0.0.1".parse().unwrap(),
            pts(),
            false,
            now,
        )
    }

    #[test]
    fn payload_types_are_a_set() {
        let p = PayloadTypes::new(8, None);
        assert!(p.contains(8) && p.contains(13));
        assert!(!p.contains(0) && !p.contains(101) && !p.contains(200));
        assert!(pts().contains(EVENTS));
        assert!(PayloadTypes::new(127, Some(128)).contains(127));
    }

    #[test]
    fn the_signalling_ip_latches_at_any_time_and_strangers_never_do() {
        let t0 = Instant::now();
        let mut l = natted(t0);
        // The phone's RTP really comes from port 7078.
        let phone = at("127.0.0.1:7078");
        assert_eq!(
            l.handle_packet(t0, phone, PCMU, false),
            Verdict::Latch(phone)
        );
        assert_eq!(l.target(), phone);
        assert_eq!(l.rtcp_target(), Some(at("127.0.0.1:7079")));
        assert_eq!(l.handle_packet(t0, phone, PCMU, false), Verdict::Accept);
        // A stranger with the right payload type, once media flows: refused, however
        // often it tries, and the stream stays where it is.
        let stranger = at("127.0.0.66:7078");
        for _ in 0..100 {
            assert!(!l.may_accept(t0, stranger));
            assert_eq!(l.handle_packet(t0, stranger, PCMU, false), Verdict::Refuse);
        }
        assert_eq!(l.target(), phone);
        // The NAT rebinds the phone to a new port, an hour later: followed.
        let later = t0 + Duration::from_secs(3600);
        let rebound = at("127.0.0.1:9000");
        assert!(l.may_accept(later, rebound));
        assert_eq!(
            l.handle_packet(later, rebound, PCMU, false),
            Verdict::Latch(rebound)
        );
        assert_eq!(l.rtcp_target(), Some(at("127.0.0.1:9001")));
    }

    #[test]
    fn the_first_packet_from_elsewhere_latches_in_the_learning_window() {
        let t0 = Instant::now();
        // Media from an address that is neither the SDP's nor the signalling one (an
        // SBC with separate media addresses, a phone with two interfaces).
        let mut l = Latch::symmetric(
            at("127.0.0.99:4000"),
            "127.0.0.98".parse().unwrap(),
            pts(),
            false,
            t0,
        );
        let media = at("127.0.0.1:7078");
        assert!(l.may_accept(t0, media));
        // A payload type that was not negotiated does not latch (and spends the window).
        assert_eq!(l.handle_packet(t0, media, 96, false), Verdict::Refuse);
        assert_eq!(l.target(), at("127.0.0.99:4000"));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(
            l.handle_packet(t1, media, PCMU, false),
            Verdict::Latch(media)
        );
        // Now the window is closed: another source on the same IP is a stranger.
        let injector = at("127.0.0.1:7090");
        assert!(!l.may_accept(t1, injector));
        assert_eq!(
            l.handle_packet(t1, injector, EVENTS, false),
            Verdict::Refuse
        );
        assert_eq!(l.target(), media);
    }

    #[test]
    fn the_learning_window_closes_with_time_and_with_refusals() {
        let t0 = Instant::now();
        let sdp = at("127.0.0.99:4000");
        let signalling = "127.0.0.98".parse().unwrap();
        let media = at("127.0.0.1:7078");
        // Nothing came for the whole window: a late first packet is not trusted.
        let mut l = Latch::symmetric(sdp, signalling, pts(), false, t0);
        let late = t0 + LEARNING_WINDOW;
        assert!(l.may_accept(late - Duration::from_millis(1), media));
        assert!(!l.may_accept(late, media));
        assert_eq!(l.handle_packet(late, media, PCMU, false), Verdict::Refuse);
        // A sprayer of wrong payload types closes it too, long before the time is up.
        let mut l = Latch::symmetric(sdp, signalling, pts(), false, t0);
        for pt in 20..20 + LEARNING_PACKETS as u8 {
            assert_eq!(l.handle_packet(t0, media, pt, false), Verdict::Refuse);
        }
        assert!(!l.may_accept(t0, media));
        assert_eq!(l.handle_packet(t0, media, PCMU, false), Verdict::Refuse);
        // The SDP address itself still works, whatever the window.
        assert_eq!(
            l.handle_packet(late, at("127.0.0.99:4002"), PCMU, false),
            Verdict::Latch(at("127.0.0.99:4002"))
        );
        // A packet from the expected source closes the window before anyone latched.
        let mut l = Latch::symmetric(sdp, signalling, pts(), false, t0);
        assert_eq!(l.handle_packet(t0, sdp, PCMU, false), Verdict::Accept);
        assert_eq!(l.handle_packet(t0, media, PCMU, false), Verdict::Refuse);
    }

    #[test]
    fn with_srtp_only_authenticated_packets_latch() {
        let t0 = Instant::now();
        let mut l = Latch::symmetric(
            at("127.0.0.99:4000"),
            "127.0.0.98".parse().unwrap(),
            pts(),
            true,
            t0,
        );
        let media = at("127.0.0.1:7078");
        // Right payload type, inside the window, not authenticated: refused, even from
        // the signalling IP.
        assert_eq!(l.handle_packet(t0, media, PCMU, false), Verdict::Refuse);
        assert_eq!(
            l.handle_packet(t0, at("127.0.0.98:7078"), PCMU, false),
            Verdict::Refuse
        );
        assert_eq!(
            l.handle_packet(t0, media, PCMU, true),
            Verdict::Latch(media)
        );
        // Long after, from anywhere: a packet that authenticates was made with the key.
        let later = t0 + Duration::from_secs(600);
        let moved = at("127.0.0.7:5000");
        assert!(l.may_accept(later, moved));
        assert_eq!(l.handle_packet(later, moved, PCMU, false), Verdict::Refuse);
        assert_eq!(
            l.handle_packet(later, moved, 96, true),
            Verdict::Latch(moved)
        );
        assert!(l.may_accept_rtcp(at("127.0.0.66:1")));
    }

    #[test]
    fn fixed_sessions_keep_the_sdp_ip_and_follow_its_port() {
        let t0 = Instant::now();
        let sdp = at("127.0.0.20:4000");
        let mut l = Latch::fixed(sdp);
        assert_eq!(l.handle_packet(t0, sdp, PCMU, false), Verdict::Accept);
        // The first packet from anywhere else, right payload type: still refused.
        let elsewhere = at("127.0.0.1:4000");
        assert!(!l.may_accept(t0, elsewhere));
        assert_eq!(l.handle_packet(t0, elsewhere, PCMU, false), Verdict::Refuse);
        let port = at("127.0.0.20:4100");
        assert_eq!(l.handle_packet(t0, port, PCMU, false), Verdict::Latch(port));
        assert_eq!(l.rtcp_target(), None);
        assert!(l.may_accept_rtcp(at("127.0.0.20:1")));
        assert!(!l.may_accept_rtcp(elsewhere));
        // A re-INVITE points it back at the SDP address.
        assert!(l.handle_remote(t0, sdp));
        assert_eq!(l.target(), sdp);
        assert!(!l.handle_remote(t0, sdp));
    }

    #[test]
    fn a_repeated_offer_keeps_the_latch_and_a_new_one_starts_over() {
        let t0 = Instant::now();
        let mut l = natted(t0);
        let phone = at("127.0.0.1:7078");
        assert_eq!(
            l.handle_packet(t0, phone, PCMU, false),
            Verdict::Latch(phone)
        );
        // Hold and resume repeat the same (suspicious) address: nothing moves.
        let t1 = t0 + Duration::from_secs(60);
        assert!(!l.handle_remote(t1, at("127.0.0.1:4000")));
        assert_eq!(l.target(), phone);
        assert_eq!(l.rtcp_target(), Some(at("127.0.0.1:7079")));
        // A new address is sent to at once, and learning starts again from t1.
        let moved = at("127.0.0.1:4100");
        assert!(l.handle_remote(t1, moved));
        assert_eq!(l.target(), moved);
        assert_eq!(l.rtcp_target(), None);
        let elsewhere = at("127.0.0.5:6000");
        assert_eq!(
            l.handle_packet(t1, elsewhere, PCMU, false),
            Verdict::Latch(elsewhere)
        );
    }

    #[test]
    fn rtcp_is_learnt_from_the_media_ip_only() {
        let t0 = Instant::now();
        let mut l = natted(t0);
        let phone = at("127.0.0.1:7078");
        // RTCP first (NAT maps it to its own port), then RTP: RTCP keeps its source.
        let rtcp = at("127.0.0.1:9999");
        assert!(l.may_accept_rtcp(rtcp));
        assert_eq!(l.handle_rtcp(rtcp), Some(rtcp));
        assert_eq!(l.handle_rtcp(rtcp), None);
        assert_eq!(
            l.handle_packet(t0, phone, PCMU, false),
            Verdict::Latch(phone)
        );
        assert_eq!(l.rtcp_target(), Some(rtcp));
        assert!(!l.may_accept_rtcp(at("127.0.0.66:7079")));
        assert_eq!(l.handle_rtcp(at("127.0.0.66:7079")), None);
    }

    #[test]
    fn ipv4_mapped_sources_are_ipv4() {
        let t0 = Instant::now();
        let mut l = natted(t0);
        let mapped = at("[::ffff:127.0.0.1]:7078");
        assert_eq!(
            l.handle_packet(t0, mapped, PCMU, false),
            Verdict::Latch(at("127.0.0.1:7078"))
        );
    }
}

/// Where a call's media is sent first. Without latching: the SDP address. With it
/// (`latching` is the signalling peer's IP), when the SDP address is not that IP — a
/// different address or family: a NAT, or a softphone writing its default-route or
/// IPv6 address — the signalling IP with the SDP port, until the media latches to
/// where it really comes from. Never the SDP address then: it is the address the
/// caller cannot be reached on (what OpenSIPS `fix_nated_sdp` and rtpengine do too).
pub fn first_target(sdp: SocketAddr, latching: Option<IpAddr>) -> SocketAddr {
    match latching {
        Some(signalling) if sdp.ip().to_canonical() != signalling.to_canonical() => {
            SocketAddr::new(signalling.to_canonical(), sdp.port())
        }
        _ => sdp,
    }
}

#[cfg(test)]
mod first_target_tests {
    use super::first_target;
    use std::net::SocketAddr;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_suspicious_sdp_address_is_replaced_by_the_signalling_ip() {
        let signalling = Some("127.0.0.1".parse().unwrap());
        // (SDP address, latching, first target).
        let cases = [
            // Linphone: its IPv6 or default-route address in the SDP, SIP from loopback.
            ("[fd00::2]:7078", signalling, "127.0.0.1:7078"),
            ("127.0.0.99:7078", signalling, "127.0.0.1:7078"),
            ("127.0.0.1:7078", signalling, "127.0.0.1:7078"),
            (
                "[::ffff:127.0.0.1]:7078",
                signalling,
                "[::ffff:127.0.0.1]:7078",
            ),
            // Without latching the SDP is taken at its word.
            ("127.0.0.99:7078", None, "127.0.0.99:7078"),
        ];
        for (sdp, latching, expected) in cases {
            assert_eq!(first_target(at(sdp), latching), at(expected), "{sdp}");
        }
    }
}
