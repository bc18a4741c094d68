//! The crate's one error type, sorted by who is at fault.

/// Everything that can go wrong in `dialbridge-conference`.
///
/// The `Info*` and `TelephoneEvent*` variants are peer faults (bytes from the network
/// we refuse); `Invalid*` are bad configuration or directory data. The state machines
/// themselves ignore out-of-place input rather than fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An RFC 4733 payload shorter than the 4-byte event header (§2.3).
    #[error("telephone-event payload too short: {0} bytes")]
    TelephoneEventTooShort(usize),
    /// A SIP INFO body larger than we accept.
    #[error("DTMF INFO body too large: {0} bytes")]
    InfoBodyTooLarge(usize),
    /// A SIP INFO with a content type that carries no DTMF we know.
    #[error("unsupported DTMF INFO content type")]
    InfoContentType,
    /// A SIP INFO body that is not UTF-8 text.
    #[error("DTMF INFO body is not text")]
    InfoNotText,
    /// An `application/dtmf-relay` body without a `Signal=` line.
    #[error("DTMF INFO body has no Signal")]
    InfoNoSignal,
    /// A signal that is not one of 0-9, *, #, A-D (or event codes 0-15).
    #[error("DTMF INFO signal is not a DTMF digit")]
    InfoBadSignal,
    /// A `Duration=` that is not a number of milliseconds we accept.
    #[error("DTMF INFO duration is invalid")]
    InfoBadDuration,
    /// A line of a `dtmf-relay` body that is not `Key=Value`.
    #[error("DTMF INFO body line is malformed")]
    InfoMalformedLine,
    /// A conference ID that is not 6 to 12 decimal digits (config or directory data).
    #[error("a conference ID is 6 to 12 digits")]
    InvalidConferenceId,
    /// A PIN that is not 4 to 12 decimal digits (the value is never shown).
    #[error("a PIN is 4 to 12 digits")]
    InvalidPin,
}
