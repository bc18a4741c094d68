//! Arbitrary bytes as an RTP datagram (RFC 3550 §5.1) through the view the media
//! engine and the room pipeline parse every packet with: every length in bounds, and
//! what it reads written back by our header writer reads the same.
#![no_main]

use dialbridge_media::RtpHeader;
use dialbridge_media::rtp::{HEADER_LEN, RtpView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = RtpView::parse(data) else {
        return;
    };
    let csrcs = view.csrcs().len();
    assert!(csrcs <= 15);
    let ext = view.extension().map_or(0, |(_, body)| 4 + body.len());
    let header = HEADER_LEN + 4 * csrcs + ext;
    let payload = view.payload();
    assert!(
        header + payload.len() <= data.len(),
        "payload out of bounds"
    );
    // The payload is the datagram's bytes after the header, padding removed.
    assert_eq!(payload, &data[header..header + payload.len()]);
    assert_eq!(view.padding, header + payload.len() < data.len());

    // What we send carries no CSRCs, extension or padding: written back, the same
    // fields and payload read again (byte for byte when the input had none either).
    let out_header = RtpHeader {
        marker: view.marker,
        payload_type: view.payload_type,
        sequence: view.sequence,
        timestamp: view.timestamp,
        ssrc: view.ssrc,
    };
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    let n = out_header
        .write_packet(payload, &mut out)
        .expect("a read header writes");
    let again = RtpView::parse(&out[..n]).expect("our packet parses");
    assert_eq!(
        (
            again.marker,
            again.payload_type,
            again.sequence,
            again.timestamp,
            again.ssrc
        ),
        (
            view.marker,
            view.payload_type,
            view.sequence,
            view.timestamp,
            view.ssrc
        )
    );
    assert_eq!(again.payload(), payload);
    if csrcs == 0 && ext == 0 && !view.padding && data[0] & 0x3f == 0 {
        assert_eq!(&out[..n], data, "plain packet does not round-trip");
    }
});
