//! sbc-sim: places real SIP calls into dialbridge the way an operator SBC, the
//! Microsoft PSTN or a softphone does — INVITE with an SDP offer of G.711, G.722 or
//! Opus, digest credentials, RTP audio, DTMF as RFC 4733 events, SIP INFO or in-band
//! tones, re-INVITEs answered, BYE — checks what it heard, and runs load with a
//! latency report; or stands at a trunk's outbound target as the phone the bridge dials
//! out to (`answer`): answers or refuses, keys, talks a tone and checks what it hears.
//!
//! The SIP parsing, transactions, calling-side invite session, SDP and digest code are
//! dialbridge's own (`dialbridge-sip`), as are the RTP, codec, resampler, tone and prompt code
//! (`dialbridge-media`); sipp stays the independent peer in the tests.

pub mod answer;
pub mod audio_check;
pub mod call;
pub mod codec;
pub mod dtmf;
mod error;
pub mod load;
pub mod outcome;
pub mod pacing;
pub mod parties;
pub mod report;
pub mod rtp;
pub mod script;
pub mod source;
pub mod ua;

pub use codec::CallCodec;
pub use error::Error;
pub use outcome::{CallOutcome, EndedBy, Expect, NegotiatedCodec};
