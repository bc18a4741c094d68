//! The crate's one error type, sorted by who is at fault: the user (arguments, script,
//! files), the peer (what the bridge sent) or the host (sockets).

use std::net::SocketAddr;

/// Everything that can stop sbc-sim from placing a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// User fault: a script, duration or option that does not parse.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read (`script`, `duration`, ...).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// User fault: a WAV file that cannot be read or written.
    #[error("WAV: {0}")]
    Wav(#[from] hound::Error),
    /// A prompt (the `--wav` source) that the media crate refused.
    #[error("media: {0}")]
    Media(#[from] dialbridge_media::Error),
    /// Peer or local fault inside the SIP stack (a message we built or got that does
    /// not parse, an SDP answer that does not fit our offer).
    #[error("SIP: {0}")]
    Sip(#[from] dialbridge_sip::Error),
    /// Host fault: binding, connecting or sending failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Host fault: the TCP connection to the bridge could not be opened in time.
    #[error("connection to {0} timed out")]
    ConnectTimeout(SocketAddr),
    /// Too many calls registered on one signaling socket at once.
    #[error("too many calls in flight ({0})")]
    TooManyCalls(usize),
    /// The signaling socket's tasks are gone (connection closed by the bridge).
    #[error("signaling connection closed")]
    Closed,
}

impl Error {
    /// A user-input error.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
