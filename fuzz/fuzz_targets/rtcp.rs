//! Arbitrary bytes as a compound RTCP packet (RFC 3550 §6) through what the media
//! engine does with one: walk it, read every SR/RR and report block, and feed them to
//! the round-trip estimator. Reports we write must read back as written.
#![no_main]

use std::time::{Duration, Instant};

use dialbridge_media::rtcp::{self, Report, RoundTrip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut round_trip = RoundTrip::default();
    let mut seen = 0usize;
    for report in rtcp::parse_compound(data) {
        seen += 1;
        // Every packet is at least 4 bytes, so the walk ends.
        assert!(
            seen <= data.len() / 4 + 1,
            "more packets than the bytes hold"
        );
        let Ok(report) = report else { break };
        if let Some(sender) = report.sender {
            round_trip.handle_sender_report(&sender, now);
        }
        let blocks: Vec<_> = report.blocks().collect();
        assert!(blocks.len() <= 31, "report count is 5 bits");
        for block in &blocks {
            assert!((-0x80_0000..0x80_0000).contains(&block.cumulative_lost));
            round_trip.handle_report_block(block, 0x0123_4567_89ab_cdef);
        }

        // The first report read, written by us and read again, is the same report.
        let cname = &data[..data.len().min(300)];
        let mine = Report {
            ssrc: report.ssrc,
            sender: report.sender,
            block: blocks.first().copied(),
            cname,
        };
        let mut out = [0u8; 1024];
        let n = rtcp::write_report(&mine, &mut out).expect("1 KiB holds a report");
        let n = rtcp::append_bye(report.ssrc, &mut out, n).expect("and a BYE");
        let back: Vec<_> = rtcp::parse_compound(&out[..n]).collect();
        assert_eq!(back.len(), 1, "one report in what we wrote");
        let back = back[0].expect("our report parses");
        assert_eq!((back.ssrc, back.sender), (report.ssrc, report.sender));
        assert_eq!(back.blocks().next(), blocks.first().copied());
    }
    let _ = round_trip.rtt();
    let _ = round_trip.lsr_dlsr(now + Duration::from_secs(1));
});
