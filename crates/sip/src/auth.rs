//! HTTP digest authentication for SIP (RFC 2617, RFC 8760).
