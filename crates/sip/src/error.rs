//! The crate's one error type, sorted by who is at fault.

/// Everything that can go wrong in `dialbridge-sip`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that are not a SIP message we can parse.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message larger than the limit (64 KiB).
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    /// An I/O error from a transport.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
}
