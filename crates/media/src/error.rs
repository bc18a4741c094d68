//! The one error type of dialbridge-media, sorted by who is at fault: the peer
//! (malformed RTP), the local files (prompts), or the host (sockets, ports).

use std::path::PathBuf;

/// Every failure the media crate reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- Peer faults: bytes from the network (RFC 3550 §5.1). Never panics, only these. ---
    /// Fewer bytes than the fixed 12-byte RTP header, or than the CSRC list / header
    /// extension the first bytes announce.
    #[error("RTP packet truncated: {len} bytes, header needs {needed}")]
    RtpTruncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header announces.
        needed: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} (only version 2 exists)")]
    RtpVersion(u8),
    /// The padding bit is set but the padding count is zero or longer than the payload.
    #[error("RTP padding count {count} invalid for {available} bytes after the header")]
    RtpPadding {
        /// The last octet of the packet.
        count: u8,
        /// Bytes between the header and the end of the packet.
        available: usize,
    },

    // --- Caller faults: API misuse. ---
    /// An output buffer cannot hold what was asked to be written.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A payload type outside 0..=127.
    #[error("RTP payload type {0} out of range 0..=127")]
    PayloadType(u8),
    /// An RTP port range that holds no even port, or whose RTCP port would overflow.
    #[error("RTP port range {low}..={high} holds no usable even port pair")]
    PortRange {
        /// Lower bound.
        low: u16,
        /// Upper bound.
        high: u16,
    },

    /// No room with that id (closed, or never created).
    #[error("no such room")]
    NoSuchRoom,
    /// The room has as many members as it was created for.
    #[error("room full")]
    RoomFull,
    /// The room is already being recorded (one recording per room at a time).
    #[error("the room is already being recorded")]
    AlreadyRecording,

    // --- Local files: prompts. ---
    /// hound could not read the WAV file.
    #[error("cannot read WAV {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's error.
        source: hound::Error,
    },
    /// The WAV is not 16-bit integer PCM, or has no channels / no sample rate.
    #[error("unsupported WAV {path}: {reason}")]
    WavFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    // --- Host faults: sockets and ports. ---
    /// Every even port of the range is in use (by us or by another process).
    #[error("no free RTP port pair in {low}..={high}")]
    NoFreePort {
        /// Lower bound.
        low: u16,
        /// Upper bound.
        high: u16,
    },
    /// A socket operation failed.
    #[error("media socket: {0}")]
    Io(#[from] std::io::Error),
    /// The engine was created outside a tokio runtime.
    #[error("the media engine needs a running tokio runtime")]
    NoRuntime,
}
