//! Bytes to SIP messages: normalisation before rsip, Content-Length framing, parsing.
