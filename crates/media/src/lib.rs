//! dialbridge media: RTP/RTCP, codecs, jitter buffer, the N-1 mixer kernel, prompts,
//! tones and recording. Sockets and the clocked tick task live behind `tokio`.
//!
//! Everything outside the `tokio` feature is pure and allocation-free per packet and
//! per tick: the sockets and the one clock that drives every session sit on top.

pub mod codec;
#[cfg(feature = "tokio")]
pub mod engine;
mod error;
pub mod jitter;
pub mod mixer;
pub mod ports;
pub mod prompt;
mod resample;
pub mod rtp;
pub mod tone;

pub use codec::Codec;
#[cfg(feature = "tokio")]
pub use engine::{InboundRtp, MediaEngine, PlayDone, PlayEnd, RoomId, RtpSession, SessionStats};
pub use error::Error;
pub use jitter::{Concealer, JitterBuffer, JitterConfig, Playout};
pub use mixer::{Frame, Heard, Mixer, MixerSlot, mix_minus};
pub use ports::PortAllocator;
pub use prompt::{Playback, Prompt};
pub use rtp::{RtpHeader, RtpSender, RtpView};
pub use tone::Tone;

/// The audio sample rate of every internal frame, Hz (narrowband telephony).
pub const SAMPLE_RATE: u32 = 8000;
/// The packetisation interval, milliseconds (RFC 3551 §4.5: 20 ms default for G.711).
pub const FRAME_MS: u32 = 20;
/// Samples in one frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE * FRAME_MS / 1000) as usize;
