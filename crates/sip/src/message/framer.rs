//! Content-Length framing of a SIP byte stream (TCP, TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.
//!
//! On a stream the Content-Length header is mandatory and is the only thing that says
//! where a message ends. Between messages a peer may send CRLF keepalives; a double CRLF
//! is a ping the transport answers with a single CRLF (the pong). The buffer never holds
//! more than [`MAX_MESSAGE`] bytes: a message that would need more is refused with
//! [`Error::TooLarge`] and the stream is dead (the transport closes it).

use bytes::{Bytes, BytesMut};

use super::MAX_MESSAGE;
use super::normalize::content_length;
use crate::Error;

/// What the framer found next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message: headers, blank line and exactly Content-Length body bytes.
    Message(Bytes),
    /// A CRLFCRLF keepalive ping (RFC 5626 §3.5.1): answer with one CRLF.
    KeepAlivePing,
}

/// Splits a SIP stream into messages. Push bytes in with [`push`](Self::push), take
/// frames out with [`next_frame`](Self::next_frame) until it returns `None`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    /// Bytes at the front already searched for the end of the headers.
    scanned: usize,
    /// Total length of the message at the front once its headers are in: read once, so a
    /// peer trickling the body byte by byte does not make us re-read the headers each time.
    pending: Option<usize>,
    failed: bool,
    /// The start of a message refused as too large, kept so it can be answered with 513.
    refused: Option<Bytes>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamFramer {
    /// An empty framer with the 64 KiB limit.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            pending: None,
            failed: false,
            refused: None,
        }
    }

    /// Appends as much of `data` as fits under the limit; returns how many bytes it took.
    ///
    /// When it takes fewer than `data.len()`, drain [`next_frame`](Self::next_frame)
    /// and push the rest. After an error every byte is taken and dropped.
    #[must_use = "bytes beyond the limit are not taken: push them again after next_frame"]
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.failed {
            return data.len();
        }
        let room = MAX_MESSAGE.saturating_sub(self.buf.len());
        let take = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        take
    }

    /// After [`Error::TooLarge`]: the start of the refused message (its header lines as
    /// far as they arrived), for [`super::reject_malformed`] to answer with 513.
    pub fn head(&self) -> Option<&[u8]> {
        self.refused.as_deref()
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `None` when more bytes are needed, or the error that ends the
    /// stream (`TooLarge`, or `BadMessage` for a missing or bad Content-Length).
    pub fn next_frame(&mut self) -> Option<Result<Frame, Error>> {
        if self.failed {
            return None;
        }
        match self.frame() {
            Ok(frame) => frame.map(Ok),
            Err(e) => {
                self.failed = true;
                let buf = std::mem::take(&mut self.buf);
                if matches!(e, Error::TooLarge(_)) {
                    self.refused = Some(buf.freeze());
                }
                Some(Err(e))
            }
        }
    }

    fn frame(&mut self) -> Result<Option<Frame>, Error> {
        if let Some(total) = self.pending {
            return Ok(self.take(total));
        }
        // Keepalives between messages (RFC 5626 §3.5.1, RFC 3261 §7.5).
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                let _ = self.buf.split_to(4);
                self.scanned = 0;
                return Ok(Some(Frame::KeepAlivePing));
            }
            if self.buf.starts_with(b"\r\n") {
                // A lone CRLF (a pong) unless what follows may still make it a ping.
                if self.buf.len() < 4 && self.buf.get(2).is_none_or(|b| *b == b'\r') {
                    return Ok(None);
                }
                let _ = self.buf.split_to(2);
                self.scanned = 0;
                continue;
            }
            if self.buf.starts_with(b"\n") {
                let _ = self.buf.split_to(1);
                self.scanned = 0;
                continue;
            }
            if self.buf.as_ref() == b"\r" {
                return Ok(None);
            }
            break;
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        // Search for the blank line, resuming where the last search stopped.
        let from = self.scanned.saturating_sub(3);
        let Some(end) = find(self.buf.get(from..).unwrap_or_default(), b"\r\n\r\n") else {
            self.scanned = self.buf.len();
            if self.buf.len() >= MAX_MESSAGE {
                return Err(Error::TooLarge(self.buf.len()));
            }
            return Ok(None);
        };
        let head_len = from.saturating_add(end).saturating_add(4);
        let head = self.buf.get(..head_len).unwrap_or_default();
        let body_len = content_length(head)?.ok_or(Error::BadMessage("missing Content-Length"))?;
        let total = head_len.saturating_add(body_len);
        if total > MAX_MESSAGE {
            return Err(Error::TooLarge(total));
        }
        self.pending = Some(total);
        Ok(self.take(total))
    }

    /// The message at the front once `total` bytes are in.
    fn take(&mut self, total: usize) -> Option<Frame> {
        if self.buf.len() < total {
            return None;
        }
        self.scanned = 0;
        self.pending = None;
        Some(Frame::Message(self.buf.split_to(total).freeze()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
