//! The media task against a far end on a socket of the test's, for each codec: what
//! sbc-sim sends is its tone encoded with the answer's codec and payload type on the
//! codec's RTP clock; what it receives is decoded at the recording rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dialbridge_media::rtp::{HEADER_LEN, RtpHeader};
use dialbridge_media::{AudioCodec, Codec, RtpView};
use sbc_sim::audio_check::analyse_at;
use sbc_sim::codec::{Decoder, Encoder, MAX_DECODED, MAX_PAYLOAD};
use sbc_sim::rtp::{Media, RemoteMedia, Source};
use tokio::net::UdpSocket;

/// A sine frame at `rate`, `index` frames into the tone.
fn sine_frame(hz: f64, rate: u32, index: usize, out: &mut [i16]) {
    let n = out.len();
    for (i, s) in out.iter_mut().enumerate() {
        let t = (index * n + i) as f64 / f64::from(rate);
        *s = (8000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16;
    }
}

/// The media task against a far end on a socket of the test's: what it sends is
/// the tone, encoded with the answer's codec and payload type, on the codec's RTP
/// clock; what it receives is decoded at the recording rate (6 kHz survives the
/// wideband codecs); a payload type nobody agreed is dropped.
#[tokio::test]
async fn each_codec_round_trips_through_the_media_task() {
    for (codec, sent_hz, back_hz) in [
        (AudioCodec::G722, 6000.0, 3000.0),
        // An answer that renumbered Opus: we send with its number.
        (AudioCodec::Opus { payload_type: 96 }, 6000.0, 1000.0),
        (AudioCodec::G711(Codec::Pcma), 1000.0, 440.0),
    ] {
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ours = Media::bind("127.0.0.1".parse().unwrap()).await.unwrap();
        let ours_addr = ours.local_addr().unwrap();
        let remote = RemoteMedia {
            addr: far.local_addr().unwrap(),
            codec,
            payload_type: codec.payload_type(),
            telephone_event: Some(101),
            send: true,
        };
        let source = Source::Tone {
            hz: sent_hz,
            amplitude: 8000,
        };
        let media = Media::start(ours, remote, source, 8000 * 10).unwrap();

        let mut decoder = Decoder::new(codec).unwrap();
        let rate = decoder.rate().hz();
        let mut heard = Vec::new();
        let mut stamps = Vec::new();
        let mut buf = [0u8; 1500];
        let mut out = [0i16; MAX_DECODED];
        while stamps.len() < 40 {
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), far.recv_from(&mut buf))
                .await
                .expect("sbc-sim sends every 20 ms")
                .unwrap();
            let view = RtpView::parse(&buf[..n]).unwrap();
            assert_eq!(view.payload_type, codec.payload_type(), "{codec:?}");
            stamps.push(view.timestamp);
            let k = decoder.decode(view.payload(), &mut out);
            heard.extend_from_slice(&out[..k]);
        }
        let step = codec.timestamp_step();
        for w in stamps.windows(2) {
            let d = w[1].wrapping_sub(w[0]);
            // Ticks skipped under load keep the clock: a multiple of the step.
            assert!(d > 0 && d % step == 0, "{codec:?}: {d} after {}", w[0]);
        }
        let a = analyse_at(&heard, rate, Some(sent_hz));
        assert!(a.tone_run >= 6, "{codec:?} sent {sent_hz} Hz: {a:?}");

        // The far end talks back: one second of `back_hz`, and a stray payload type.
        let mut encoder = Encoder::new(codec).unwrap();
        let send_rate = encoder.rate();
        let mut pcm = vec![0i16; send_rate.frame_samples()];
        let mut packet = [0u8; HEADER_LEN + MAX_PAYLOAD];
        for i in 0..51u16 {
            sine_frame(back_hz, send_rate.hz(), usize::from(i), &mut pcm);
            let len = encoder.encode(&pcm, &mut packet[HEADER_LEN..]).unwrap();
            let header = RtpHeader {
                marker: i == 0,
                payload_type: if i == 50 { 13 } else { codec.payload_type() },
                sequence: i,
                timestamp: u32::from(i) * step,
                ssrc: 7,
            };
            header.write(&mut packet).unwrap();
            far.send_to(&packet[..HEADER_LEN + len], ours_addr)
                .await
                .unwrap();
            if i % 10 == 9 {
                // Let the task read: the socket buffer is not the test's subject.
                tokio::task::yield_now().await;
            }
        }
        // The task reads what is queued before it is told to stop.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report = media.finish().await;
        assert_eq!(report.heard_rate, rate, "{codec:?}");
        assert_eq!((report.received, report.dropped), (50, 1), "{codec:?}");
        assert_eq!(report.heard.len(), 50 * rate as usize / 50);
        let a = analyse_at(&report.heard, rate, Some(back_hz));
        assert!(a.tone_run >= 8, "{codec:?} heard {back_hz} Hz: {a:?}");
    }
}
