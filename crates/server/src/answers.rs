//! What the bridge speaks: the methods, extensions and bodies every answer it gives
//! before a call (RFC 3261 §8.2) follows from. The answers themselves are the SIP
//! crate's ([`Capabilities`]).

use dialbridge_sip::uas::Capabilities;

/// The bridge's capabilities.
pub const BRIDGE: Capabilities = Capabilities {
    // What answers, never which version.
    server: "dialbridge",
    allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
    // RFC 4028 session timers.
    supported: "timer",
    accept: "application/sdp, application/dtmf-relay, application/dtmf",
};
