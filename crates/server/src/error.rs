//! The server's one error type.

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the file and the line.
    #[error("{0}")]
    Config(String),
    /// The number plan in the configuration is invalid.
    #[error(transparent)]
    Plan(#[from] dialbridge_router::ConfigError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The SIP stack failed (TLS set-up, transports).
    #[error(transparent)]
    Sip(#[from] dialbridge_sip::Error),
    /// The media engine failed to start (prompts, ports).
    #[error(transparent)]
    Media(#[from] dialbridge_media::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A token request was refused (bad name, role or scope; no such token).
    #[error("{0}")]
    Token(String),
    /// The durable file (CDR database) failed.
    #[error(transparent)]
    Cdr(#[from] crate::cdr::CdrError),
}
