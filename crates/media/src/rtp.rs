//! RTP fixed header (RFC 3550 §5.1): a zero-copy, bounds-checked view for parsing, a
//! writer into a caller-owned buffer, and the sender state of §5.1/§8 (random SSRC,
//! random initial sequence number and timestamp, marker on the first packet).
//!
//! Why not the `rtp` crate (webrtc-rs) here: its `Packet` owns a `Bytes` payload and a
//! `Vec` of CSRCs and extensions, so unmarshalling allocates per packet. At 50 packets a
//! second per participant and thousands of participants that is hundreds of thousands
//! of allocations a second on the hot path. [`RtpView`] borrows the datagram instead
//! and copies nothing; it never panics on any input (a proptest feeds it arbitrary
//! bytes), and every failure is a typed [`Error`].

use crate::Error;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const HEADER_LEN: usize = 12;
/// The only RTP version (RFC 3550 §5.1).
pub const VERSION: u8 = 2;

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// P: the packet carried padding (already stripped from `payload`).
    pub padding: bool,
    /// M: the marker bit (start of a talkspurt, end of an RFC 4733 event...).
    pub marker: bool,
    /// PT: the payload type, 0..=127.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    csrc: &'a [u8],
    extension: Option<(u16, &'a [u8])>,
    payload: &'a [u8],
}

impl<'a> RtpView<'a> {
    /// Parses `packet`, checking every length against the buffer.
    pub fn parse(packet: &'a [u8]) -> Result<Self, Error> {
        let truncated = |needed| Error::RtpTruncated {
            len: packet.len(),
            needed,
        };
        // Arrays, not slices: the constant indices below are checked at compile time.
        let fixed: &[u8; HEADER_LEN] = packet
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(truncated(HEADER_LEN))?;
        let b0 = fixed[0];
        let b1 = fixed[1];
        let version = b0 >> 6;
        if version != VERSION {
            return Err(Error::RtpVersion(version));
        }
        let padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0F);

        let mut offset = HEADER_LEN + 4 * csrc_count;
        let csrc = packet.get(HEADER_LEN..offset).ok_or(truncated(offset))?;

        let extension = if has_extension {
            // §5.3.1: 16-bit profile-defined field, 16-bit length in 32-bit words.
            let ext_head: &[u8; 4] = packet
                .get(offset..offset + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or(truncated(offset + 4))?;
            let profile = u16::from_be_bytes([ext_head[0], ext_head[1]]);
            let words = usize::from(u16::from_be_bytes([ext_head[2], ext_head[3]]));
            let start = offset + 4;
            offset = start + 4 * words;
            let body = packet.get(start..offset).ok_or(truncated(offset))?;
            Some((profile, body))
        } else {
            None
        };

        let rest = packet.get(offset..).ok_or(truncated(offset))?;
        let payload = if padding {
            // §5.1: the last octet counts the padding octets, itself included.
            let count = rest.last().copied().unwrap_or(0);
            let available = rest.len();
            if count == 0 || usize::from(count) > available {
                return Err(Error::RtpPadding { count, available });
            }
            rest.get(..available - usize::from(count))
                .unwrap_or_default()
        } else {
            rest
        };

        Ok(Self {
            padding,
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            csrc,
            extension,
            payload,
        })
    }

    /// The contributing sources (CSRC list), in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension (§5.3.1): the profile-defined 16 bits and the body.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        self.extension
    }

    /// The payload, padding removed.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// The fields of an outgoing fixed header (no CSRCs, no extension: a bridge that
/// mixes is itself the synchronisation source and lists no contributors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// M bit.
    pub marker: bool,
    /// PT, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header at the start of `out` and returns [`HEADER_LEN`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        if self.payload_type > 127 {
            return Err(Error::PayloadType(self.payload_type));
        }
        let available = out.len();
        let dst = out.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall {
            needed: HEADER_LEN,
            available,
        })?;
        dst[0] = VERSION << 6;
        dst[1] = (u8::from(self.marker) << 7) | self.payload_type;
        dst[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        dst[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        dst[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(HEADER_LEN)
    }

    /// Writes header and `payload` into `out` and returns the packet length.
    pub fn write_packet(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let needed = HEADER_LEN + payload.len();
        let available = out.len();
        let dst = out
            .get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed, available })?;
        self.write(dst)?;
        dst[HEADER_LEN..].copy_from_slice(payload);
        Ok(needed)
    }
}

/// The state of one RTP sender: SSRC, next sequence number and timestamp.
///
/// RFC 3550 §5.1 wants the initial sequence number and timestamp random (to make
/// known-plaintext attacks on SRTP harder) and §8 a random SSRC.
#[derive(Debug, Clone)]
pub struct RtpSender {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker_pending: bool,
}

impl RtpSender {
    /// A sender with random SSRC, sequence number and timestamp.
    pub fn new(payload_type: u8) -> Result<Self, Error> {
        Self::with_state(payload_type, rand::random(), rand::random(), rand::random())
    }

    /// A sender with the given initial state (tests, or a resumed stream).
    pub fn with_state(
        payload_type: u8,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
    ) -> Result<Self, Error> {
        if payload_type > 127 {
            return Err(Error::PayloadType(payload_type));
        }
        Ok(Self {
            payload_type,
            ssrc,
            sequence,
            timestamp,
            marker_pending: true,
        })
    }

    /// The SSRC this sender uses.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type this sender uses.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Sets the marker on the next packet (start of a new talkspurt).
    pub fn mark_next(&mut self) {
        self.marker_pending = true;
    }

    /// The header of the next packet, carrying `samples` samples of media; then
    /// advances the sequence number by one and the timestamp by `samples` (both wrap).
    pub fn next_header(&mut self, samples: u32) -> RtpHeader {
        let header = RtpHeader {
            marker: std::mem::take(&mut self.marker_pending),
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        header
    }

    /// Advances the timestamp without sending (time passed with nothing sent, e.g.
    /// ticks skipped under load), so that timestamps keep following the clock.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker_pending = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_packet() -> Vec<u8> {
        let header = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xFFFF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        };
        let mut out = vec![0u8; 64];
        let n = header.write_packet(&[1, 2, 3, 4, 5], &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn write_then_parse() {
        let packet = sample_packet();
        assert_eq!(packet.len(), 17);
        assert_eq!(packet[0], 0x80);
        assert_eq!(packet[1], 0x88);
        let view = RtpView::parse(&packet).unwrap();
        assert!(view.marker);
        assert!(!view.padding);
        assert_eq!(view.payload_type, 8);
        assert_eq!(view.sequence, 0xFFFF);
        assert_eq!(view.timestamp, 0xDEAD_BEEF);
        assert_eq!(view.ssrc, 0x0102_0304);
        assert_eq!(view.payload(), &[1, 2, 3, 4, 5]);
        assert_eq!(view.csrcs().len(), 0);
        assert_eq!(view.extension(), None);
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 2, 101, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 9]); // two CSRCs
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD]); // extension, 1 word
        p.extend_from_slice(&[0x05, 0x8A, 0x03, 0x20]); // an RFC 4733 event
        p.extend_from_slice(&[0, 0, 3]); // 3 octets of padding
        let view = RtpView::parse(&p).unwrap();
        assert!(view.padding);
        assert_eq!(view.payload_type, 101);
        assert_eq!(view.csrcs().collect::<Vec<_>>(), vec![7, 9]);
        assert_eq!(
            view.extension(),
            Some((0xBEDE, &[0xAA, 0xBB, 0xCC, 0xDD][..]))
        );
        assert_eq!(view.payload(), &[0x05, 0x8A, 0x03, 0x20]);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            RtpView::parse(&[0x80; 11]),
            Err(Error::RtpTruncated {
                len: 11,
                needed: 12
            })
        ));
        let mut p = sample_packet();
        p[0] = 0x40;
        assert!(matches!(RtpView::parse(&p), Err(Error::RtpVersion(1))));
        // CSRC count 15 but no CSRCs.
        let mut p = sample_packet();
        p[0] = 0x8F;
        assert!(matches!(
            RtpView::parse(&p),
            Err(Error::RtpTruncated { needed: 72, .. })
        ));
        // Extension announced, absent.
        let mut p = sample_packet()[..12].to_vec();
        p[0] = 0x90;
        assert!(matches!(
            RtpView::parse(&p),
            Err(Error::RtpTruncated { needed: 16, .. })
        ));
        // Padding count zero, and longer than the payload.
        let mut p = sample_packet();
        p[0] = 0xA0;
        *p.last_mut().unwrap() = 0;
        assert!(matches!(
            RtpView::parse(&p),
            Err(Error::RtpPadding { count: 0, .. })
        ));
        *p.last_mut().unwrap() = 6;
        assert!(matches!(
            RtpView::parse(&p),
            Err(Error::RtpPadding {
                count: 6,
                available: 5
            })
        ));
        // Padding that eats the whole payload is fine.
        *p.last_mut().unwrap() = 5;
        assert_eq!(RtpView::parse(&p).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn writer_checks_buffer_and_payload_type() {
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 2,
            ssrc: 3,
        };
        assert!(matches!(
            h.write(&mut [0u8; 11]),
            Err(Error::BufferTooSmall {
                needed: 12,
                available: 11
            })
        ));
        assert!(matches!(
            h.write_packet(&[0; 160], &mut [0u8; 171]),
            Err(Error::BufferTooSmall { needed: 172, .. })
        ));
        let bad = RtpHeader {
            payload_type: 128,
            ..h
        };
        assert!(matches!(
            bad.write(&mut [0u8; 12]),
            Err(Error::PayloadType(128))
        ));
        assert!(RtpSender::with_state(200, 0, 0, 0).is_err());
    }

    #[test]
    fn sender_advances_and_wraps() {
        let mut s = RtpSender::with_state(0, 42, u16::MAX, u32::MAX - 100).unwrap();
        let a = s.next_header(160);
        let b = s.next_header(160);
        assert!(a.marker);
        assert!(!b.marker);
        assert_eq!((a.sequence, b.sequence), (u16::MAX, 0));
        assert_eq!(a.timestamp, u32::MAX - 100);
        assert_eq!(b.timestamp, 59);
        assert_eq!(b.ssrc, 42);
        s.skip(320);
        let c = s.next_header(160);
        assert!(c.marker);
        assert_eq!(c.sequence, 1);
        assert_eq!(c.timestamp, 59 + 160 + 320);
    }

    #[test]
    fn random_senders_differ() {
        let a = RtpSender::new(0).unwrap();
        let b = RtpSender::new(0).unwrap();
        // 2^-32 chance of a false failure.
        assert_ne!(a.ssrc(), b.ssrc());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(view) = RtpView::parse(&bytes) {
                prop_assert!(view.payload().len() <= bytes.len());
                prop_assert_eq!(bytes[0] >> 6, 2);
                let _ = view.csrcs().count();
            }
        }

        #[test]
        fn parse_inverts_write(marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32,
                               payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let mut out = vec![0u8; 12 + payload.len()];
            let n = h.write_packet(&payload, &mut out).unwrap();
            let v = RtpView::parse(&out[..n]).unwrap();
            prop_assert_eq!((v.marker, v.payload_type, v.sequence, v.timestamp, v.ssrc), (marker, pt, seq, ts, ssrc));
            prop_assert_eq!(v.payload(), &payload[..]);
        }
    }
}
