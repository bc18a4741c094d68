//! The codecs sbc-sim speaks — G.711 PCMU and PCMA and G.722 (RFC 3551 §4.5), Opus
//! (RFC 7587) — what the SDP offer lists, and the per-call encoder and decoder the
//! media task runs.
//!
//! A call offers exactly one codec (plus RFC 4733 telephone-event, PT 101, at 8000 as
//! `dialbridge-sip` writes it), so the answer says without doubt whether the bridge
//! took it. Audio goes out at the codec's own rate, mono: 8 kHz for G.711, 16 kHz for
//! G.722, 48 kHz for Opus. What comes back is decoded and kept at the recording rate:
//! 8 kHz for G.711, 16 kHz for G.722 and Opus (Opus decodes straight to 16 kHz: a
//! conference mixes at 16 kHz at most, so nothing is lost). The codecs themselves are
//! the media crate's [`CodecState`].

use std::net::IpAddr;

use dialbridge_media::opus::{OPUS_MAX_PACKET, OpusRate};
use dialbridge_media::{AudioCodec, Codec, CodecState, SampleRate};
use dialbridge_sip::sdp::{self, LocalMedia};
use serde::Serialize;

use crate::Error;

/// The largest payload one encoded 20 ms frame takes, octets (an Opus frame at most).
pub const MAX_PAYLOAD: usize = OPUS_MAX_PACKET;
/// The most samples one packet decodes to at the recording rate: 120 ms of Opus at
/// 16 kHz, or a 1500-octet G.722 payload (two samples per octet).
pub const MAX_DECODED: usize = 3000;
/// The most samples one 20 ms frame holds at the sending rate (48 kHz).
pub const MAX_FRAME: usize = 960;

/// The codec a call offers (`--codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallCodec {
    /// G.711 µ-law, PT 0.
    #[default]
    Pcmu,
    /// G.711 A-law, PT 8.
    Pcma,
    /// G.722, PT 9, 16 kHz audio on an 8 kHz RTP clock.
    G722,
    /// Opus, `opus/48000/2` on dynamic PT 111, sent mono at 48 kHz.
    Opus,
}

impl CallCodec {
    /// Every codec, in the order `--codec` lists them.
    pub const ALL: [CallCodec; 4] = [
        CallCodec::Pcmu,
        CallCodec::Pcma,
        CallCodec::G722,
        CallCodec::Opus,
    ];

    /// The option's spelling: `pcmu`, `pcma`, `g722`, `opus`.
    pub const fn name(self) -> &'static str {
        match self {
            CallCodec::Pcmu => "pcmu",
            CallCodec::Pcma => "pcma",
            CallCodec::G722 => "g722",
            CallCodec::Opus => "opus",
        }
    }

    /// Reads the option's spelling (any case).
    pub fn parse(text: &str) -> Result<Self, Error> {
        CallCodec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| Error::invalid("codec", format!("{text:?} (pcmu, pcma, g722, opus)")))
    }

    /// The codec as the SDP offer writes it.
    pub const fn sdp(self) -> sdp::Codec {
        match self {
            CallCodec::Pcmu => sdp::Codec::PCMU,
            CallCodec::Pcma => sdp::Codec::PCMA,
            CallCodec::G722 => sdp::Codec::G722,
            CallCodec::Opus => sdp::Codec::OPUS,
        }
    }

    /// The codec with the payload type of our offer.
    pub const fn audio_codec(self) -> AudioCodec {
        match self {
            CallCodec::Pcmu => AudioCodec::G711(Codec::Pcmu),
            CallCodec::Pcma => AudioCodec::G711(Codec::Pcma),
            CallCodec::G722 => AudioCodec::G722,
            CallCodec::Opus => AudioCodec::Opus {
                payload_type: sdp::Codec::OPUS.offer_pt,
            },
        }
    }

    /// Which of ours a negotiated codec is.
    pub const fn of(codec: AudioCodec) -> CallCodec {
        match codec {
            AudioCodec::G711(Codec::Pcmu) => CallCodec::Pcmu,
            AudioCodec::G711(Codec::Pcma) => CallCodec::Pcma,
            AudioCodec::G722 => CallCodec::G722,
            AudioCodec::Opus { .. } => CallCodec::Opus,
        }
    }

    /// The rate we send audio at: the codec's own.
    pub const fn send_rate(self) -> SampleRate {
        match self {
            CallCodec::Pcmu | CallCodec::Pcma => SampleRate::Hz8000,
            CallCodec::G722 => SampleRate::Hz16000,
            CallCodec::Opus => SampleRate::Hz48000,
        }
    }

    /// The rate of what we record (and analyse).
    pub const fn record_rate(self) -> SampleRate {
        match self {
            CallCodec::Pcmu | CallCodec::Pcma => SampleRate::Hz8000,
            CallCodec::G722 | CallCodec::Opus => SampleRate::Hz16000,
        }
    }

    /// Our side of the offer: this codec alone, telephone-event when keys go as RFC
    /// 4733 events, 20 ms, sendrecv, plain RTP.
    pub fn local_media(
        self,
        address: IpAddr,
        rtp_port: u16,
        session_id: u64,
        telephone_event: bool,
    ) -> LocalMedia {
        let mut local = LocalMedia::g711(address, rtp_port, session_id);
        local.codecs = vec![self.sdp()];
        local.telephone_event = telephone_event;
        local
    }
}

/// Turns 20 ms frames at [`CallCodec::send_rate`] into RTP payloads: the media
/// crate's codec state, with Opus fed at 48 kHz as a softphone does.
#[derive(Debug)]
pub struct Encoder(CodecState);

impl Encoder {
    /// A fresh encoder (allocates: call it when media starts).
    pub fn new(codec: AudioCodec) -> Result<Self, Error> {
        Ok(Encoder(CodecState::with_opus_rate(
            codec,
            OpusRate::Fullband,
        )?))
    }

    /// The codec (and payload type) it was made for.
    pub fn codec(&self) -> AudioCodec {
        self.0.codec()
    }

    /// The PCM rate [`Encoder::encode`] takes.
    pub fn rate(&self) -> SampleRate {
        CallCodec::of(self.codec()).send_rate()
    }

    /// Encodes one frame (`rate().frame_samples()` samples) into `out` (size it
    /// [`MAX_PAYLOAD`]) and returns the payload length. Allocation-free.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        Ok(self.0.encode_frame(pcm, out)?)
    }
}

/// Turns received RTP payloads into PCM at [`CallCodec::record_rate`]: the media
/// crate's codec state at its own rates (Opus decoded straight to 16 kHz).
#[derive(Debug)]
pub struct Decoder(CodecState);

impl Decoder {
    /// A fresh decoder (allocates: call it when media starts).
    pub fn new(codec: AudioCodec) -> Result<Self, Error> {
        Ok(Decoder(CodecState::new(codec)?))
    }

    /// The codec (and payload type) it was made for.
    pub fn codec(&self) -> AudioCodec {
        self.0.codec()
    }

    /// The rate of what [`Decoder::decode`] writes.
    pub fn rate(&self) -> SampleRate {
        CallCodec::of(self.codec()).record_rate()
    }

    /// Decodes one payload into `out` (size it [`MAX_DECODED`]) and returns the
    /// samples written. Never fails: every G.711 and G.722 octet is valid and an Opus
    /// packet the decoder refuses is concealed. Allocation-free.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        self.0.decode_frame(payload, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialbridge_sip::sdp::MediaSession;

    fn offer(codec: CallCodec, telephone_event: bool) -> String {
        let local = codec.local_media("192.0.2.7".parse().unwrap(), 40000, 42, telephone_event);
        MediaSession::new(local).offer()
    }

    fn media_lines(sdp: &str) -> Vec<&str> {
        sdp.lines()
            .skip_while(|l| !l.starts_with("m="))
            .filter(|l| !l.starts_with("a=sendrecv") && !l.starts_with("a=ptime"))
            .collect()
    }

    #[test]
    fn each_codec_is_offered_alone_with_telephone_event() {
        let want: [(CallCodec, &[&str]); 4] = [
            (
                CallCodec::Pcmu,
                &[
                    "m=audio 40000 RTP/AVP 0 101",
                    "a=rtpmap:0 PCMU/8000",
                    "a=rtpmap:101 telephone-event/8000",
                    "a=fmtp:101 0-16",
                ],
            ),
            (
                CallCodec::Pcma,
                &[
                    "m=audio 40000 RTP/AVP 8 101",
                    "a=rtpmap:8 PCMA/8000",
                    "a=rtpmap:101 telephone-event/8000",
                    "a=fmtp:101 0-16",
                ],
            ),
            (
                CallCodec::G722,
                &[
                    "m=audio 40000 RTP/AVP 9 101",
                    "a=rtpmap:9 G722/8000",
                    "a=rtpmap:101 telephone-event/8000",
                    "a=fmtp:101 0-16",
                ],
            ),
            (
                CallCodec::Opus,
                &[
                    "m=audio 40000 RTP/AVP 111 101",
                    "a=rtpmap:111 opus/48000/2",
                    "a=fmtp:111 minptime=10;useinbandfec=1",
                    "a=rtpmap:101 telephone-event/8000",
                    "a=fmtp:101 0-16",
                ],
            ),
        ];
        for (codec, lines) in want {
            let sdp = offer(codec, true);
            assert_eq!(media_lines(&sdp), lines, "{codec:?}:\n{sdp}");
            assert!(sdp.contains("c=IN IP4 192.0.2.7\r\n"), "{sdp}");
            assert!(sdp.contains("a=ptime:20\r\n"), "{sdp}");
        }
        // In-band keys: no telephone-event at all.
        assert_eq!(
            media_lines(&offer(CallCodec::G722, false)),
            ["m=audio 40000 RTP/AVP 9", "a=rtpmap:9 G722/8000"]
        );
    }

    #[test]
    fn names_payload_types_and_rates() {
        for codec in CallCodec::ALL {
            assert_eq!(CallCodec::parse(codec.name()).unwrap(), codec);
            assert_eq!(CallCodec::of(codec.audio_codec()), codec);
            assert_eq!(codec.audio_codec().payload_type(), codec.sdp().offer_pt);
        }
        assert_eq!(CallCodec::parse(" OPUS ").unwrap(), CallCodec::Opus);
        assert!(CallCodec::parse("g729").is_err());
        assert_eq!(CallCodec::default(), CallCodec::Pcmu);
        assert_eq!(CallCodec::Opus.send_rate().hz(), 48_000);
        assert_eq!(CallCodec::Opus.record_rate().hz(), 16_000);
        assert_eq!(CallCodec::G722.send_rate().hz(), 16_000);
        assert_eq!(CallCodec::Pcma.record_rate().hz(), 8000);
        // A renumbered Opus (the answer's PT) is still Opus.
        assert_eq!(
            CallCodec::of(AudioCodec::Opus { payload_type: 96 }),
            CallCodec::Opus
        );
    }

    /// One second of a tone through each encoder and decoder: the decoded audio holds
    /// it at the recording rate, and 6 kHz survives the wideband codecs.
    #[test]
    fn tones_survive_encode_and_decode() {
        for (codec, hz) in [
            (CallCodec::Pcmu, 1000.0),
            (CallCodec::Pcma, 440.0),
            (CallCodec::G722, 440.0),
            (CallCodec::G722, 6000.0),
            (CallCodec::Opus, 1000.0),
            (CallCodec::Opus, 6000.0),
        ] {
            let mut enc = Encoder::new(codec.audio_codec()).unwrap();
            let mut dec = Decoder::new(codec.audio_codec()).unwrap();
            assert_eq!(enc.rate(), codec.send_rate());
            assert_eq!(dec.rate(), codec.record_rate());
            let rate = f64::from(enc.rate().hz());
            let n = enc.rate().frame_samples();
            let mut payload = [0u8; MAX_PAYLOAD];
            let mut out = [0i16; MAX_DECODED];
            let mut heard = Vec::new();
            for f in 0..50 {
                let frame: Vec<i16> = (0..n)
                    .map(|i| {
                        let t = (f * n + i) as f64 / rate;
                        (8000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16
                    })
                    .collect();
                let len = enc.encode(&frame, &mut payload).unwrap();
                assert!(len > 0 && len <= MAX_PAYLOAD);
                let got = dec.decode(&payload[..len], &mut out);
                assert_eq!(got, dec.rate().frame_samples(), "{codec:?}");
                heard.extend_from_slice(&out[..got]);
            }
            let a = crate::audio_check::analyse_at(&heard, dec.rate().hz(), Some(hz));
            assert!(a.tone_run >= 8, "{codec:?} {hz} Hz: {a:?}");
        }
    }
}
