//! dialbridge media: RTP, G.711, G.722 and Opus, the jitter buffer, the N-1 mixer
//! kernel (rooms mix at 16 kHz, [`MIX_RATE`]), comfort noise, recording, prompts and
//! tones. Sockets and the clocked tick task live behind `tokio`.
//!
//! Everything outside the `tokio` feature is pure and allocation-free per packet and
//! per tick: [`codec`], [`rtp`] (zero-copy RFC 3550 header view and writer),
//! [`jitter`], [`mixer`], [`halfband`], [`prompt`], [`tone`], [`ports`], [`latch`], and
//! [`pipeline`], a room's whole per-tick media work as one value ([`RoomPipeline`]).
//! With `tokio`, [`engine`] puts them to work: one UDP socket pair per participant and
//! a clock per shard (one per core), each running the pipeline's code over its rooms.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dialbridge_media::Error> {
//! use std::sync::Arc;
//! use dialbridge_media::{Codec, MediaEngine, Prompt, Tone};
//!
//! let engine = MediaEngine::new("127.0.0.1".parse().unwrap(), 20000..=39998)?;
//! let remote = "127.0.0.20:40000".parse().unwrap(); // from the SDP offer
//! let mut caller = engine.open(remote, Codec::Pcmu, Some(101))?;
//! let _port = caller.local_port(); // for the SDP answer
//! let welcome = Arc::new(Prompt::load("fixtures/prompts/welcome.wav")?);
//! let done = caller.play(welcome, false);
//! while let Some(packet) = caller.recv().await {
//!     // RFC 4733 events: packet.payload_type == 101, packet.payload, ...
//! #   break;
//! }
//! done.await;
//! let room = engine.create_room(100);
//! caller.join_room(room)?;
//! engine.play_to_room(room, Arc::new(Tone::join_beep()));
//! caller.set_muted(true);
//! caller.close().await; // or drop it
//! # Ok(()) }
//! ```

pub mod announce;
pub mod audio_codec;
pub mod codec;
pub mod comfort_noise;
pub mod dtmf_squelch;
#[cfg(feature = "tokio")]
pub mod engine;
mod error;
pub mod g722;
pub mod halfband;
pub mod jitter;
pub mod latch;
pub mod mixer;
pub mod opus;
pub mod pipeline;
pub mod ports;
pub mod prompt;
pub mod recording;
mod resample;
pub mod resampler;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod tone;

pub use announce::CountAnnouncer;
pub use audio_codec::{AudioCodec, CodecState, Transcoder};
pub use codec::Codec;
pub use comfort_noise::{ComfortNoise, NoiseGenerator};
pub use dtmf_squelch::DtmfSquelch;
#[cfg(feature = "tokio")]
pub use engine::{
    Activity, EngineOptions, EngineStats, InboundRtp, LatencySummary, MediaEngine, MediaPort,
    PlayDone, PlayEnd, Quality, RoomId, RtpSession, SessionStats, ShardStats,
};
pub use error::Error;
pub use g722::{G722Decoder, G722Encoder};
pub use halfband::{Downsampler2, Upsampler2};
pub use jitter::{Concealer, JitterBuffer, JitterConfig, Playout};
pub use latch::{Latch, PayloadTypes};
pub use mixer::{Frame, Heard, MIX_SAMPLES, MixFrame, Mixer, MixerSlot, mix_minus};
pub use opus::{OpusDecoder, OpusEncoder, OpusRate};
pub use pipeline::{Datagrams, InBandListener, MemberId, RoomPipeline};
pub use ports::PortAllocator;
pub use prompt::{Playback, Prompt};
pub use recording::{ConferenceRecorder, Recorded, RecorderConfig, RecordingSummary, RecordingTap};
pub use resampler::{Resampler, SampleRate};
pub use rtp::{RtpHeader, RtpSender, RtpView};
pub use srtp::{SrtpKeys, SrtpSuite};
pub use tone::Tone;

/// The narrowband sample rate, Hz: G.711, prompts, tones and in-band DTMF work at it;
/// rooms mix at [`MIX_RATE`].
pub const SAMPLE_RATE: u32 = 8000;
/// The packetisation interval, milliseconds (RFC 3551 §4.5: 20 ms default for G.711).
pub const FRAME_MS: u32 = 20;
/// Samples in one frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE * FRAME_MS / 1000) as usize;
/// The rate conference rooms mix at, Hz (wideband: G.722 and Opus keep their band,
/// G.711 is converted 2× with [`halfband`]).
pub const MIX_RATE: u32 = 16_000;
