//! RTCP (RFC 3550 §6): sender and receiver reports, per-source reception statistics
//! and the quality figures derived from them — pure, time passed in.
//!
//! - [`ReceptionStats`]: RFC 3550 Appendix A.1 (sequence tracking with probation and
//!   re-synchronisation), A.3 (expected / lost / fraction lost) and A.8 (interarrival
//!   jitter), fed one packet at a time with its arrival `Instant`.
//! - [`write_report`]: a compound packet SR or RR + SDES CNAME (§6.1: every compound
//!   packet carries a CNAME), written into a caller buffer without allocating.
//! - [`parse_compound`]: walks a compound packet and hands out SR/RR views; anything
//!   else (SDES, BYE, APP, feedback) is skipped. Never panics on any input.
//! - [`RoundTrip`]: §6.4.1 round-trip time from LSR/DLSR, and the LSR/DLSR we put in
//!   our own report blocks.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RFC 3550 §6.4.1 packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RFC 3550 §6.4.2 packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RFC 3550 §6.5 packet type of source description.
pub const PT_SDES: u8 = 202;
/// RFC 3550 §6.6 packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Bytes of one report block (§6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Bytes of the sender info section of an SR (§6.4.1).
const SENDER_INFO_LEN: usize = 20;
/// RFC 3550 A.1: a source is valid after this many sequential packets.
const MIN_SEQUENTIAL: u16 = 2;
/// RFC 3550 A.1: larger forward jumps count as a restart candidate.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: larger backward jumps count as a restart candidate.
const MAX_MISORDER: u16 = 100;
/// RFC 3550 A.1: the sequence space.
const RTP_SEQ_MOD: u32 = 1 << 16;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A malformed RTCP packet (peer fault; the packet is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a header, than its length field says, or than its report count.
    #[error("RTCP packet truncated")]
    Truncated,
    /// The version field is not 2.
    #[error("RTCP version {0} (only version 2 exists)")]
    Version(u8),
    /// The output buffer cannot hold the report.
    #[error("RTCP buffer too small: need {0} bytes")]
    BufferTooSmall(usize),
}

/// One report block (§6.4.1): what the reporter knows about one source it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | max seq).
    pub highest_sequence: u32,
    /// Interarrival jitter, RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR from that source, or 0.
    pub last_sr: u32,
    /// Delay since that SR, 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

/// The sender info of an SR (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP wallclock timestamp.
    pub ntp: u64,
    /// The RTP timestamp matching `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
}

/// A report to write: SR when `sender` is set, RR otherwise, plus SDES CNAME.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// Our SSRC.
    pub ssrc: u32,
    /// Present when we sent RTP since the last report (§6.4: then SR, else RR).
    pub sender: Option<SenderInfo>,
    /// At most one block here: a participant receives one source. (§6.4.2 allows 31.)
    pub block: Option<ReportBlock>,
    /// The canonical name (§6.5.1), at most 255 bytes (longer is cut).
    pub cname: &'a [u8],
}

/// Writes `report` as a compound RTCP packet into `out`; returns its length.
pub fn write_report(report: &Report<'_>, out: &mut [u8]) -> Result<usize, RtcpError> {
    let blocks = usize::from(report.block.is_some());
    let sender_len = if report.sender.is_some() {
        SENDER_INFO_LEN
    } else {
        0
    };
    let first_len = 8 + sender_len + blocks * REPORT_BLOCK_LEN;
    let cname = report.cname.get(..255).unwrap_or(report.cname);
    // SDES: header, SSRC, item type, length, text, then a null item and padding to 32 bits.
    let sdes_len = (8 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let total = first_len + sdes_len;
    let out = out
        .get_mut(..total)
        .ok_or(RtcpError::BufferTooSmall(total))?;
    out.fill(0);
    let pt = if report.sender.is_some() {
        PT_SR
    } else {
        PT_RR
    };
    write_header(out, blocks as u8, pt, first_len);
    put_u32(out, 4, report.ssrc);
    let mut at = 8;
    if let Some(s) = report.sender {
        put_u32(out, at, (s.ntp >> 32) as u32);
        put_u32(out, at + 4, s.ntp as u32);
        put_u32(out, at + 8, s.rtp_timestamp);
        put_u32(out, at + 12, s.packet_count);
        put_u32(out, at + 16, s.octet_count);
        at += SENDER_INFO_LEN;
    }
    if let Some(b) = report.block {
        put_u32(out, at, b.ssrc);
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        put_u32(out, at + 4, (u32::from(b.fraction_lost) << 24) | lost);
        put_u32(out, at + 8, b.highest_sequence);
        put_u32(out, at + 12, b.jitter);
        put_u32(out, at + 16, b.last_sr);
        put_u32(out, at + 20, b.delay_since_last_sr);
        at += REPORT_BLOCK_LEN;
    }
    let sdes = &mut out[at..];
    write_header(sdes, 1, PT_SDES, sdes_len);
    put_u32(sdes, 4, report.ssrc);
    sdes[8] = 1; // CNAME
    sdes[9] = cname.len() as u8;
    sdes[10..10 + cname.len()].copy_from_slice(cname);
    // The rest is already zero: the end-of-list item and the padding.
    Ok(total)
}

/// Appends a BYE (§6.6) for `ssrc` after the report already in `out[..len]` (a
/// compound packet must start with SR or RR, §6.1); returns the new length.
pub fn append_bye(ssrc: u32, out: &mut [u8], len: usize) -> Result<usize, RtcpError> {
    let total = len + 8;
    let bye = out
        .get_mut(len..total)
        .ok_or(RtcpError::BufferTooSmall(total))?;
    write_header(bye, 1, PT_BYE, 8);
    put_u32(bye, 4, ssrc);
    Ok(total)
}

/// An SR or RR found in a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportView<'a> {
    /// The reporter's SSRC.
    pub ssrc: u32,
    /// Present in an SR.
    pub sender: Option<SenderInfo>,
    blocks: &'a [u8],
}

impl<'a> ReportView<'a> {
    /// The report blocks.
    pub fn blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        self.blocks
            .chunks_exact(REPORT_BLOCK_LEN)
            .map(|b| ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: (be32(b, 4) >> 24) as u8,
                // Sign-extend the 24-bit field.
                cumulative_lost: ((be32(b, 4) << 8) as i32) >> 8,
                highest_sequence: be32(b, 8),
                jitter: be32(b, 12),
                last_sr: be32(b, 16),
                delay_since_last_sr: be32(b, 20),
            })
    }
}

/// Walks a compound RTCP packet (§6.1), yielding each SR and RR; other packet types
/// are skipped. Stops at the first malformed packet, yielding its error.
pub fn parse_compound(packet: &[u8]) -> impl Iterator<Item = Result<ReportView<'_>, RtcpError>> {
    let mut rest = packet;
    let mut failed = false;
    std::iter::from_fn(move || {
        while !failed && !rest.is_empty() {
            match split_one(rest) {
                Ok((one, tail)) => {
                    rest = tail;
                    match parse_report(one) {
                        Ok(Some(view)) => return Some(Ok(view)),
                        Ok(None) => continue,
                        Err(e) => {
                            failed = true;
                            return Some(Err(e));
                        }
                    }
                }
                Err(e) => {
                    failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    })
}

/// Splits the first packet (header length field) off a compound packet.
fn split_one(packet: &[u8]) -> Result<(&[u8], &[u8]), RtcpError> {
    let header = packet.get(..4).ok_or(RtcpError::Truncated)?;
    let version = header[0] >> 6;
    if version != 2 {
        return Err(RtcpError::Version(version));
    }
    let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
    if packet.len() < len {
        return Err(RtcpError::Truncated);
    }
    Ok(packet.split_at(len))
}

/// An SR or RR view of one packet, `None` for other types.
fn parse_report(one: &[u8]) -> Result<Option<ReportView<'_>>, RtcpError> {
    // `split_one` returned at least the 4 header bytes ((length + 1) * 4 >= 4).
    let count = usize::from(one[0] & 0x1f);
    let pt = one[1];
    let (sender_len, is_sr) = match pt {
        PT_SR => (SENDER_INFO_LEN, true),
        PT_RR => (0, false),
        _ => return Ok(None),
    };
    let blocks_at = 8 + sender_len;
    let blocks_end = blocks_at + count * REPORT_BLOCK_LEN;
    if one.len() < blocks_end {
        return Err(RtcpError::Truncated);
    }
    let sender = is_sr.then(|| SenderInfo {
        ntp: (u64::from(be32(one, 8)) << 32) | u64::from(be32(one, 12)),
        rtp_timestamp: be32(one, 16),
        packet_count: be32(one, 20),
        octet_count: be32(one, 24),
    });
    Ok(Some(ReportView {
        ssrc: be32(one, 4),
        sender,
        blocks: &one[blocks_at..blocks_end],
    }))
}

/// Reception statistics of one source: RFC 3550 A.1, A.3 and A.8.
#[derive(Debug, Clone, Default)]
pub struct ReceptionStats {
    ssrc: u32,
    clock_rate: u32,
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Arrival-time origin, so arrivals become RTP timestamp units (A.8).
    origin: Option<Instant>,
    transit: Option<i64>,
    /// Jitter in timestamp units, as the floating-point A.8 estimator.
    jitter: f64,
}

impl ReceptionStats {
    /// Statistics for a stream whose RTP clock ticks `clock_rate` times a second.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            ..Self::default()
        }
    }

    /// Records one packet (sequence, RTP timestamp, SSRC) that arrived at `now`.
    /// Returns false while the source is on probation or the packet was a bad jump.
    pub fn handle_packet(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        now: Instant,
    ) -> bool {
        if !self.started || ssrc != self.ssrc {
            // A new source (or the far end restarted): A.1 init with probation.
            *self = Self::new(self.clock_rate);
            self.started = true;
            self.ssrc = ssrc;
            self.init_seq(sequence);
            self.max_seq = sequence.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        if !self.update_seq(sequence) {
            return false;
        }
        self.update_jitter(timestamp, now);
        true
    }

    /// The source these statistics describe.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets received (A.1 `received`).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Extended highest sequence number (A.1).
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected so far (A.3).
    pub fn expected(&self) -> u32 {
        if !self.started {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (A.3), clamped to the 24-bit signed field.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter in timestamp units (A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// The report block for the next report, and the interval counters reset (A.3):
    /// the fraction lost covers the packets since the previous call.
    pub fn report_block(&mut self, round_trip: &RoundTrip, now: Instant) -> Option<ReportBlock> {
        if !self.started || self.probation > 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let fraction_lost = fraction_lost(expected_interval, received_interval);
        let (last_sr, delay_since_last_sr) = round_trip.lsr_dlsr(now);
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            highest_sequence: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }

    fn init_seq(&mut self, sequence: u16) {
        self.base_seq = u32::from(sequence);
        self.max_seq = sequence;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.1 `update_seq`.
    fn update_seq(&mut self, sequence: u16) -> bool {
        let udelta = sequence.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if sequence == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = sequence;
                if self.probation == 0 {
                    self.init_seq(sequence);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = sequence;
            }
            return false;
        }
        if udelta < MAX_DROPOUT {
            if sequence < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = sequence;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(sequence) == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(sequence);
            } else {
                self.bad_seq = (u32::from(sequence) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: a duplicate or reordered packet, counted below.
        self.received += 1;
        true
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16 over the relative transit time.
    fn update_jitter(&mut self, timestamp: u32, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let arrival = now.saturating_duration_since(origin).as_nanos()
            * u128::from(self.clock_rate)
            / 1_000_000_000;
        // Both sides wrap modulo 2^32 in the RFC; i64 differences of the truncated
        // values keep the same arithmetic.
        let transit = i64::from((arrival as u32).wrapping_sub(timestamp) as i32);
        if let Some(last) = self.transit {
            let d = transit.wrapping_sub(last).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }
}

/// RFC 3550 A.3: the fraction lost in an interval, in 1/256 (0 when none or more came).
pub fn fraction_lost(expected_interval: u32, received_interval: u32) -> u8 {
    let lost = i64::from(expected_interval) - i64::from(received_interval);
    if expected_interval == 0 || lost <= 0 {
        0
    } else {
        ((lost << 8) / i64::from(expected_interval)).min(255) as u8
    }
}

/// Round-trip bookkeeping (§6.4.1): the last SR we received (for the LSR/DLSR of our
/// blocks) and the last round-trip time computed from a block about us.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundTrip {
    last_sr: Option<(u32, Instant)>,
    rtt: Option<Duration>,
}

impl RoundTrip {
    /// Remembers an SR from the far end that arrived at `now`.
    pub fn handle_sender_report(&mut self, sender: &SenderInfo, now: Instant) {
        self.last_sr = Some((ntp_middle(sender.ntp), now));
    }

    /// Computes the round trip from a block about our stream that arrived at `ntp_now`
    /// (our wallclock as NTP): A - LSR - DLSR. Ignored when the block carries no LSR.
    pub fn handle_report_block(&mut self, block: &ReportBlock, ntp_now: u64) {
        if block.last_sr == 0 {
            return;
        }
        let a = ntp_middle(ntp_now);
        let rtt = a
            .wrapping_sub(block.last_sr)
            .wrapping_sub(block.delay_since_last_sr);
        // A negative result (clock skew, bogus block) wraps to a huge value: discard
        // anything over a minute.
        if rtt < 60 << 16 {
            self.rtt = Some(Duration::from_micros((u64::from(rtt) * 1_000_000) >> 16));
        }
    }

    /// The LSR and DLSR fields for our next report block.
    pub fn lsr_dlsr(&self, now: Instant) -> (u32, u32) {
        match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                let dlsr = (delay.as_micros() << 16) / 1_000_000;
                (lsr, u32::try_from(dlsr).unwrap_or(u32::MAX))
            }
            None => (0, 0),
        }
    }

    /// The last measured round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }
}

/// The 64-bit NTP timestamp of a wallclock time (§4).
pub fn ntp_timestamp(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let fraction = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// The middle 32 bits of an NTP timestamp (LSR, §6.4.1).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn write_header(out: &mut [u8], count: u8, pt: u8, len: usize) {
    out[0] = 0x80 | (count & 0x1f);
    out[1] = pt;
    let words = (len / 4 - 1) as u16;
    out[2..4].copy_from_slice(&words.to_be_bytes());
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A big-endian u32 at `at`; callers checked the length.
fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn feed(stats: &mut ReceptionStats, seqs: &[(u16, u32, u64)], t0: Instant) {
        for &(seq, ts, ms) in seqs {
            stats.handle_packet(7, seq, ts, t0 + Duration::from_millis(ms));
        }
    }

    #[test]
    fn jitter_worked_example() {
        // 20 ms G.711 packets (160 units). Packet 3 is 10 ms (80 units) late, packet 4
        // on time again: D = +80 then -80.
        // J1 = 0 + (80 - 0)/16 = 5; J2 = 5 + (80 - 5)/16 = 9.6875.
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(8000);
        feed(&mut s, &[(1, 0, 0), (2, 160, 20), (3, 320, 40)], t0);
        assert_eq!(s.jitter, 0.0);
        feed(&mut s, &[(4, 480, 70)], t0);
        assert!((s.jitter - 5.0).abs() < 1e-9, "{}", s.jitter);
        feed(&mut s, &[(5, 640, 80)], t0);
        assert!((s.jitter - 9.6875).abs() < 1e-9, "{}", s.jitter);
        assert_eq!(s.jitter(), 9);
        assert!((s.jitter_ms() - 9.6875 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn loss_fraction_and_cumulative() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(8000);
        let rt = RoundTrip::default();
        // 1..=10 then 15..=20: 11..=14 lost.
        for seq in (1u16..=10).chain(15..=20) {
            s.handle_packet(9, seq, u32::from(seq) * 160, t0);
        }
        // A.1 probation: the first packet only validates the source, so the base is 2.
        assert_eq!(s.expected(), 19);
        assert_eq!(s.received(), 15);
        assert_eq!(s.cumulative_lost(), 4);
        let b = s.report_block(&rt, t0).unwrap();
        assert_eq!(b.fraction_lost, (4 * 256 / 19) as u8); // 53
        assert_eq!(b.cumulative_lost, 4);
        assert_eq!(b.highest_sequence, 20);
        // Next interval: nothing lost.
        for seq in 21u16..=30 {
            s.handle_packet(9, seq, u32::from(seq) * 160, t0);
        }
        let b = s.report_block(&rt, t0).unwrap();
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 4);
        assert_eq!(fraction_lost(4, 1), 192);
        assert_eq!(fraction_lost(0, 0), 0);
        assert_eq!(fraction_lost(4, 6), 0);
    }

    #[test]
    fn sequence_wrap_counts_cycles_and_restart_resyncs() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(8000);
        for seq in [65533u16, 65534, 65535, 0, 1] {
            s.handle_packet(1, seq, 0, t0);
        }
        assert_eq!(s.extended_max(), 65536 + 1);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.cumulative_lost(), 0);
        // A big jump is ignored once, accepted as a restart when the next follows it.
        assert!(!s.handle_packet(1, 30000, 0, t0));
        assert!(s.handle_packet(1, 30001, 0, t0));
        assert_eq!(s.expected(), 1);
        // A new SSRC starts over with probation.
        assert!(!s.handle_packet(2, 5, 0, t0));
        assert!(s.handle_packet(2, 6, 0, t0));
        assert_eq!(s.ssrc(), 2);
    }

    #[test]
    fn sr_and_rr_round_trip_through_parse() {
        let block = ReportBlock {
            ssrc: 0xdead_beef,
            fraction_lost: 51,
            cumulative_lost: -3,
            highest_sequence: 70_000,
            jitter: 9,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0001_8000,
        };
        let sender = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packet_count: 250,
            octet_count: 40_000,
        };
        let mut buf = [0u8; 128];
        let n = write_report(
            &Report {
                ssrc: 42,
                sender: Some(sender),
                block: Some(block),
                cname: b"dialbridge@127.0.0.1",
            },
            &mut buf,
        )
        .unwrap();
        // SR: 8 + 20 + 24 = 52; SDES: 8 + 2 + 20 + 1 -> 32.
        assert_eq!(n, 52 + 32);
        assert_eq!(buf[0], 0x81);
        assert_eq!(buf[1], PT_SR);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 12);
        assert_eq!(buf[53], PT_SDES);
        let reports: Vec<_> = parse_compound(&buf[..n]).collect();
        assert_eq!(reports.len(), 1);
        let view = reports[0].unwrap();
        assert_eq!(view.ssrc, 42);
        assert_eq!(view.sender, Some(sender));
        assert_eq!(view.blocks().collect::<Vec<_>>(), vec![block]);

        let n = write_report(
            &Report {
                ssrc: 43,
                sender: None,
                block: None,
                cname: b"x",
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(n, 8 + 12);
        let view = parse_compound(&buf[..n]).next().unwrap().unwrap();
        assert_eq!(
            (view.ssrc, view.sender, view.blocks().count()),
            (43, None, 0)
        );
    }

    #[test]
    fn bye_follows_the_report() {
        let mut buf = [0u8; 64];
        let report = Report {
            ssrc: 5,
            sender: None,
            block: None,
            cname: b"c",
        };
        let n = write_report(&report, &mut buf).unwrap();
        let m = append_bye(5, &mut buf, n).unwrap();
        assert_eq!(m, n + 8);
        assert_eq!(&buf[n..m], &[0x81, PT_BYE, 0, 1, 0, 0, 0, 5]);
        // The RR is still found; the BYE is skipped without error.
        let views: Vec<_> = parse_compound(&buf[..m]).collect();
        assert_eq!(views.len(), 1);
        assert!(views[0].is_ok());
        assert!(append_bye(5, &mut buf[..m + 4], m).is_err());
    }

    #[test]
    fn malformed_never_panics_and_stops() {
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]).next(),
            Some(Err(RtcpError::Version(1)))
        );
        // Length says 2 words, only 1 present.
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 2, 0, 0, 0, 0]).next(),
            Some(Err(RtcpError::Truncated))
        );
        // RR claiming one block without room for it.
        assert_eq!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 0]).next(),
            Some(Err(RtcpError::Truncated))
        );
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 0x80) as u8).collect();
            let _ = parse_compound(&bytes).count();
        }
        let mut small = [0u8; 10];
        assert!(matches!(
            write_report(
                &Report {
                    ssrc: 1,
                    sender: None,
                    block: None,
                    cname: b"abc"
                },
                &mut small
            ),
            Err(RtcpError::BufferTooSmall(_))
        ));
    }

    #[test]
    fn round_trip_time_from_lsr_dlsr() {
        // RFC 3550 §6.4.1 figure: A = 0xb710_8000 (46864.500 s), LSR = 0xb705_2000
        // (46853.125 s), DLSR = 0x0005_4000 (5.250 s): RTT = 6.125 s.
        let mut rt = RoundTrip::default();
        let block = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..ReportBlock::default()
        };
        rt.handle_report_block(&block, 0xb710_8000u64 << 16);
        assert_eq!(rt.rtt(), Some(Duration::from_millis(6125)));
        // No LSR: nothing measured; bogus (negative) ignored.
        let mut rt = RoundTrip::default();
        rt.handle_report_block(&ReportBlock::default(), 1 << 40);
        assert_eq!(rt.rtt(), None);
        rt.handle_report_block(&block, 0xb705_0000u64 << 16);
        assert_eq!(rt.rtt(), None);
        // LSR/DLSR we write: 1.5 s after an SR.
        let t0 = Instant::now();
        rt.handle_sender_report(
            &SenderInfo {
                ntp: 0x0000_1234_5678_0000,
                ..SenderInfo::default()
            },
            t0,
        );
        assert_eq!(
            rt.lsr_dlsr(t0 + Duration::from_millis(1500)),
            (0x1234_5678, 0x0001_8000)
        );
    }

    #[test]
    fn ntp_of_unix_epoch() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + Duration::from_millis(500);
        assert_eq!(ntp_timestamp(half) & 0xffff_ffff, 1 << 31);
    }
}
