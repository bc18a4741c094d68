//! `sbc-sim answer`: the phone at the far end of the bridge's dial-outs. It stands at a
//! trunk's outbound target (UDP), answers OPTIONS as told (200, a status such as 503, or
//! not at all), and takes INVITEs: it rings, then answers 200, refuses (486, 480, 503,
//! 603...) or never answers (and takes the CANCEL with 487); once answered it talks a
//! tone, keys digits as RFC 4733 events (after a time, or once it has heard the
//! invitation prompt and the silence after it), checks the tone it expects to hear after
//! keying, and hangs up after a hold time unless the caller does first. Each call ends
//! with one [`CallReport`].
//!
//! The call itself is [`callee::Callee`], pure, on the sip crate's `UasSession`; the
//! media is sbc-sim's own RTP task ([`crate::rtp`]); [`driver`] moves the bytes.

pub mod args;
pub mod callee;
pub mod driver;
pub mod prompt;
pub mod report;

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_sip::uas::Capabilities;

pub use args::AnswerArgs;
pub use callee::{Answer, EndedBy, KeyAt, Plan};
pub use driver::{Listening, Summary, bind};
pub use report::{CallReport, Heard};

/// What the phone says it is and speaks.
pub const PHONE: Capabilities = Capabilities {
    server: "sbc-sim",
    allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
    supported: "timer",
    accept: "application/sdp",
};

/// The answer to an OPTIONS outside a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsReply {
    /// This status; 200 carries Allow, Accept and Supported.
    Status(u16),
    /// None at all: the pinger's timeout.
    Silent,
}

impl OptionsReply {
    /// Reads a final status (200 to 699) or `none`.
    pub fn parse(text: &str) -> Result<OptionsReply, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(OptionsReply::Silent);
        }
        match text.parse::<u16>() {
            Ok(code @ 200..=699) => Ok(OptionsReply::Status(code)),
            _ => Err(format!("{text:?}: a status from 200 to 699, or none")),
        }
    }
}

/// Everything about one `sbc-sim answer` run.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerConfig {
    /// Where we take SIP (UDP); RTP goes from and to ports of the same address.
    pub listen: SocketAddr,
    /// Calls to take; the run ends once they are over. Zero: none is expected, and
    /// the run answers OPTIONS until its time is up.
    pub calls: usize,
    /// The longest the run lasts; calls still in progress then fail.
    pub timeout: Duration,
    /// The answer to OPTIONS.
    pub options: OptionsReply,
    /// How each call goes.
    pub plan: Plan,
    /// The tone we talk once answered, Hz (`None`: silence).
    pub tone_hz: Option<f64>,
    /// The quiet that ends the invitation prompt (for [`KeyAt::AfterPrompt`]).
    pub prompt_silence: Duration,
    /// The tone we expect to hear after keying (after the answer, without keys).
    pub expect_tone: Option<f64>,
}
