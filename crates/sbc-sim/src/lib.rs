//! sbc-sim: places real SIP calls into dialbridge the way an operator SBC, the
//! Microsoft PSTN or a softphone does — INVITE with G.711 SDP, digest credentials,
//! RTP audio, DTMF as RFC 4733 events or SIP INFO, re-INVITEs answered, BYE — checks
//! what it heard, and runs load with a latency report.
//!
//! The SIP parsing, transactions, SDP and digest code are dialbridge's own
//! (`dialbridge-sip`), as are the RTP, G.711, tone and prompt code
//! (`dialbridge-media`); sipp stays the independent peer in the tests.

pub mod audio_check;
pub mod call;
pub mod dialog;
pub mod dtmf;
mod error;
pub mod load;
pub mod outcome;
pub mod report;
pub mod rtp;
pub mod script;
pub mod ua;

pub use error::Error;
pub use outcome::{CallOutcome, EndedBy, Expect};
