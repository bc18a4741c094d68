//! RFC 4733 telephone-event decoding for one RTP stream (one SSRC): one digit per
//! event, however many updates and retransmitted end packets arrive.
//!
//! Identity and order come from different header fields: the RTP timestamp names the
//! event (§2.3.1: every packet of an event carries the event's start timestamp), the
//! sequence number orders packets (RFC 3550 §5.1), and the marker bit flags the first
//! packet of an event, which lets us tell a new press from the next segment of a very
//! long one (§2.5.1.3: segments after the first carry no marker).

use std::time::{Duration, Instant};

use super::Digit;
use crate::Error;

/// How long an event may go without a packet before we consider it ended (its end
/// packets lost). Senders update every 50 ms (§2.5.1.2); this allows several losses.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_millis(250);

/// A segment this long (in timestamp units) may be followed by a continuation
/// segment (§2.5.1.3: the duration field saturates at 0xFFFF).
const LONG_SEGMENT_MIN: u16 = 0xFF00;

/// RFC 3550 A.1: how far behind the highest sequence number a packet is late
/// rather than a sign that the sender restarted.
const MAX_MISORDER: u16 = 100;

/// Decodes the telephone-event payloads of one RTP stream into digits.
///
/// Each digit is reported once, on the **first packet seen** of its event, not at its
/// end: the IVR stops a prompt on the digit (barge-in), and waiting for the E bit
/// would add the whole key press (100+ ms) to that, and would delay the digit
/// further (to the timeout) whenever all three end packets are lost. The price is
/// that we cannot filter on the final duration; RFC 4733 senders only emit events
/// for real key presses, so there is nothing to filter.
#[derive(Debug)]
pub struct TelephoneEventDecoder {
    timeout: Duration,
    current: Option<Event>,
    /// Highest RTP sequence number seen, to drop late (reordered) packets of events
    /// that have already been superseded.
    highest_seq: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    timestamp: u32,
    code: u8,
    duration: u16,
    /// An end packet (E bit) arrived.
    end_seen: bool,
    /// Ended by the E bit or by the timeout.
    ended: bool,
    last_packet: Instant,
}

impl Default for TelephoneEventDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_EVENT_TIMEOUT)
    }
}

impl TelephoneEventDecoder {
    /// A decoder whose events end after `timeout` without a packet.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            current: None,
            highest_seq: None,
        }
    }

    /// Feeds one telephone-event RTP payload (header already stripped) with the RTP
    /// header's timestamp, sequence number and marker bit. Returns the digit when the
    /// packet starts a new DTMF event; events 16 and up (flash, fax tones) are
    /// tracked, so their retransmissions are recognised, but never reported.
    ///
    /// Only the first 4 bytes are read: several events in one packet come in
    /// RFC 2198 redundancy, which the RTP layer unwraps before us.
    pub fn handle_packet(
        &mut self,
        payload: &[u8],
        timestamp: u32,
        seq: u16,
        marker: bool,
        now: Instant,
    ) -> Result<Option<Digit>, Error> {
        let [code, flags, d0, d1, ..] = *payload else {
            return Err(Error::TelephoneEventTooShort(payload.len()));
        };
        let end = flags & 0x80 != 0;
        let duration = u16::from_be_bytes([d0, d1]);
        let newest = self.note_seq(seq);

        if let Some(cur) = self.current.as_mut() {
            if cur.timestamp == timestamp && cur.code == code {
                // An update or a retransmission of the event we already reported.
                cur.last_packet = now;
                cur.duration = cur.duration.max(duration);
                if end {
                    cur.end_seen = true;
                    cur.ended = true;
                }
                return Ok(None);
            }
            if !newest {
                // Sent before the newest packet we have: a late packet of an event
                // that is already over (reported, or lost and superseded). Reporting
                // it now would put digits out of order.
                return Ok(None);
            }
            if !marker && code == cur.code && !cur.end_seen && cur.duration >= LONG_SEGMENT_MIN {
                // §2.5.1.3: the next segment of a press longer than 0xFFFF units.
                *cur = Event {
                    timestamp,
                    duration,
                    ended: end,
                    end_seen: end,
                    last_packet: now,
                    ..*cur
                };
                return Ok(None);
            }
        }
        // A new timestamp ends the previous event even if its end packets were lost.
        self.current = Some(Event {
            timestamp,
            code,
            duration,
            end_seen: end,
            ended: end,
            last_packet: now,
        });
        Ok(Digit::from_event(code))
    }

    /// When the current event times out, if one is in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .filter(|e| !e.ended)
            .map(|e| e.last_packet + self.timeout)
    }

    /// Ends the current event if its timeout has passed (its end packets were lost).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(e) = self.current.as_mut()
            && !e.ended
            && now >= e.last_packet + self.timeout
        {
            e.ended = true;
        }
    }

    /// The digit whose key is held right now, if any.
    pub fn active(&self) -> Option<Digit> {
        self.current
            .filter(|e| !e.ended)
            .and_then(|e| Digit::from_event(e.code))
    }

    /// Records `seq`; true when it is the newest packet so far. As in RFC 3550 A.1,
    /// a packet up to `MAX_MISORDER` behind is late; one further behind means the
    /// sender restarted its sequence, and starts over from it.
    fn note_seq(&mut self, seq: u16) -> bool {
        if let Some(high) = self.highest_seq
            && high.wrapping_sub(seq) <= MAX_MISORDER
        {
            return false;
        }
        self.highest_seq = Some(seq);
        true
    }
}

/// Builds a telephone-event payload; used by tests and benches.
pub fn encode(code: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let [d0, d1] = duration.to_be_bytes();
    [code, (u8::from(end) << 7) | (volume & 0x3f), d0, d1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender in the RFC 4733 §5 style: start packet with the marker, updates
    /// every 50 ms (400 units at 8 kHz), three end packets.
    struct Sender {
        seq: u16,
        now: Instant,
    }

    struct Pkt {
        payload: [u8; 4],
        ts: u32,
        seq: u16,
        marker: bool,
        at: Instant,
    }

    impl Sender {
        fn new(now: Instant) -> Self {
            Self { seq: 1000, now }
        }

        fn press(&mut self, code: u8, ts: u32, updates: u16) -> Vec<Pkt> {
            let mut out = Vec::new();
            for i in 0..=updates {
                out.push(self.pkt(encode(code, false, 10, 400 * i), ts, i == 0));
            }
            for _ in 0..3 {
                out.push(self.pkt(encode(code, true, 10, 400 * (updates + 1)), ts, false));
            }
            out
        }

        fn pkt(&mut self, payload: [u8; 4], ts: u32, marker: bool) -> Pkt {
            self.seq = self.seq.wrapping_add(1);
            self.now += Duration::from_millis(50);
            Pkt {
                payload,
                ts,
                seq: self.seq,
                marker,
                at: self.now,
            }
        }
    }

    fn feed(dec: &mut TelephoneEventDecoder, pkts: &[Pkt]) -> Vec<Digit> {
        pkts.iter()
            .filter_map(|p| {
                dec.handle_packet(&p.payload, p.ts, p.seq, p.marker, p.at)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn one_digit_per_event_despite_retransmitted_end_packets() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let pkts = s.press(5, 8000, 3);
        assert_eq!(feed(&mut dec, &pkts), vec![Digit::Five]);
        assert_eq!(dec.active(), None, "end packet ends the event");
    }

    #[test]
    fn digit_reported_on_the_first_packet() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let pkts = s.press(11, 8000, 3);
        let first = &pkts[0];
        let got = dec
            .handle_packet(&first.payload, first.ts, first.seq, first.marker, first.at)
            .unwrap();
        assert_eq!(got, Some(Digit::Pound));
        assert_eq!(dec.active(), Some(Digit::Pound));
    }

    #[test]
    fn long_press_is_one_digit() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        // 3 seconds of updates.
        let pkts = s.press(10, 1234, 60);
        assert_eq!(feed(&mut dec, &pkts), vec![Digit::Star]);
    }

    #[test]
    fn press_longer_than_one_segment_is_one_digit() {
        let t0 = Instant::now();
        let mut dec = TelephoneEventDecoder::default();
        let mut seq = 1u16;
        let mut at = t0;
        let mut send = |dec: &mut TelephoneEventDecoder, p: [u8; 4], ts: u32, m: bool| {
            seq += 1;
            at += Duration::from_millis(50);
            dec.handle_packet(&p, ts, seq, m, at).unwrap()
        };
        assert_eq!(
            send(&mut dec, encode(1, false, 10, 0), 0, true),
            Some(Digit::One)
        );
        assert_eq!(send(&mut dec, encode(1, false, 10, 0xFFFF), 0, false), None);
        // §2.5.1.3: the next segment has a new timestamp and no marker.
        assert_eq!(
            send(&mut dec, encode(1, false, 10, 400), 0xFFFF, false),
            None
        );
        assert_eq!(
            send(&mut dec, encode(1, true, 10, 800), 0xFFFF, false),
            None
        );
        assert_eq!(dec.active(), None);
    }

    #[test]
    fn several_events_and_back_to_back_same_digit_are_distinct() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let mut pkts = s.press(1, 8000, 2);
        pkts.extend(s.press(1, 10_000, 2));
        pkts.extend(s.press(2, 12_000, 2));
        pkts.extend(s.press(1, 14_000, 2));
        assert_eq!(
            feed(&mut dec, &pkts),
            vec![Digit::One, Digit::One, Digit::Two, Digit::One]
        );
    }

    #[test]
    fn lost_start_packets_still_report_on_first_packet_seen() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let pkts = s.press(7, 8000, 4);
        // Lose the marker packet and the first two updates.
        assert_eq!(feed(&mut dec, &pkts[3..]), vec![Digit::Seven]);
        // Only an end packet survives of the next press.
        let pkts = s.press(7, 16_000, 4);
        assert_eq!(feed(&mut dec, &pkts[6..]), vec![Digit::Seven]);
    }

    #[test]
    fn lost_end_packets_end_by_new_timestamp_or_timeout() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let pkts = s.press(3, 8000, 3);
        assert_eq!(feed(&mut dec, &pkts[..4]), vec![Digit::Three]);
        assert_eq!(dec.active(), Some(Digit::Three));
        let last = pkts[3].at;
        assert_eq!(dec.poll_timeout(), Some(last + DEFAULT_EVENT_TIMEOUT));
        dec.handle_timeout(last + DEFAULT_EVENT_TIMEOUT - Duration::from_millis(1));
        assert_eq!(dec.active(), Some(Digit::Three));
        dec.handle_timeout(last + DEFAULT_EVENT_TIMEOUT);
        assert_eq!(dec.active(), None);
        assert_eq!(dec.poll_timeout(), None);

        // Same digit again, end packets of the first press lost: the new timestamp
        // (with its marker) is a second press.
        let a = s.press(3, 20_000, 2);
        let b = s.press(3, 22_000, 2);
        let mut pkts: Vec<Pkt> = a.into_iter().take(3).collect();
        pkts.extend(b);
        assert_eq!(feed(&mut dec, &pkts), vec![Digit::Three, Digit::Three]);
    }

    #[test]
    fn late_end_packet_of_previous_event_is_ignored() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let a = s.press(4, 8000, 2);
        let b = s.press(6, 10_000, 2);
        let mut pkts: Vec<Pkt> = a.into_iter().collect();
        // Reorder: the last end packet of `4` arrives after `6` started.
        let late = pkts.pop().unwrap();
        pkts.extend(b.into_iter().take(2));
        pkts.push(late);
        assert_eq!(feed(&mut dec, &pkts), vec![Digit::Four, Digit::Six]);
        assert_eq!(dec.active(), Some(Digit::Six));
    }

    #[test]
    fn sequence_wrap_is_handled() {
        let t0 = Instant::now();
        let mut dec = TelephoneEventDecoder::default();
        let ms = |n| t0 + Duration::from_millis(n);
        let e = |c, end| encode(c, end, 10, 400);
        assert_eq!(
            dec.handle_packet(&e(8, false), 100, 65534, true, ms(0))
                .unwrap(),
            Some(Digit::Eight)
        );
        assert_eq!(
            dec.handle_packet(&e(8, true), 100, 65535, false, ms(50))
                .unwrap(),
            None
        );
        assert_eq!(
            dec.handle_packet(&e(9, false), 900, 0, true, ms(200))
                .unwrap(),
            Some(Digit::Nine)
        );
        // A retransmitted end of `8` from before the wrap is late.
        assert_eq!(
            dec.handle_packet(&e(8, true), 100, 65535, false, ms(210))
                .unwrap(),
            None
        );
    }

    #[test]
    fn sequence_restart_is_followed() {
        let t0 = Instant::now();
        let mut dec = TelephoneEventDecoder::default();
        let ms = |n| t0 + Duration::from_millis(n);
        let e = encode(2, false, 10, 0);
        assert_eq!(
            dec.handle_packet(&e, 100, 30_000, true, ms(0)).unwrap(),
            Some(Digit::Two)
        );
        // 50 behind: a late packet. 5000 behind: the sender restarted.
        let e = encode(3, false, 10, 0);
        assert_eq!(
            dec.handle_packet(&e, 900, 29_950, true, ms(100)).unwrap(),
            None
        );
        assert_eq!(
            dec.handle_packet(&e, 900, 25_000, true, ms(200)).unwrap(),
            Some(Digit::Three)
        );
        let e = encode(4, false, 10, 0);
        assert_eq!(
            dec.handle_packet(&e, 1800, 25_001, true, ms(300)).unwrap(),
            Some(Digit::Four)
        );
    }

    #[test]
    fn all_sixteen_events_and_non_dtmf_events() {
        let mut s = Sender::new(Instant::now());
        let mut dec = TelephoneEventDecoder::default();
        let mut want = Vec::new();
        for code in 0..=16u8 {
            let pkts = s.press(code, 8000 + u32::from(code) * 4000, 1);
            let got = feed(&mut dec, &pkts);
            if let Some(d) = Digit::from_event(code) {
                want.push(d);
            }
            assert!(got.len() <= 1);
        }
        // Event 16 (flash) is tracked but not a digit; rerun to collect all.
        let mut dec = TelephoneEventDecoder::default();
        let mut all = Vec::new();
        for code in 0..=16u8 {
            all.extend(feed(
                &mut dec,
                &s.press(code, 200_000 + u32::from(code) * 4000, 1),
            ));
        }
        assert_eq!(all, want);
        assert_eq!(all.len(), 16);
    }

    #[test]
    fn short_payload_is_an_error() {
        let mut dec = TelephoneEventDecoder::default();
        assert_eq!(
            dec.handle_packet(&[1, 2, 3], 0, 0, true, Instant::now()),
            Err(Error::TelephoneEventTooShort(3))
        );
    }
}
