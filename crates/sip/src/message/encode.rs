//! Messages to bytes, with the status line rsip 0.4 gets wrong.
//!
//! rsip prints a known status as its Rust variant name (`183 SessionProgress`,
//! `404 NotFound`) and passes the body through `from_utf8_lossy`. We print the RFC 3261
//! §21 reason phrase (or the one given with `StatusCode::Other`) and the body's bytes as
//! they are. Header lines use rsip's `Display`, which prints `Name: value`.

use std::io::Write;

use rsip::{SipMessage, StatusCode};

/// The message as wire bytes.
pub fn encode(msg: &SipMessage) -> bytes::Bytes {
    let mut out = Vec::with_capacity(512 + msg.body().len());
    encode_into(msg, &mut out);
    bytes::Bytes::from(out)
}

/// Appends the message's wire bytes to `out` (reuse one buffer to avoid allocating).
pub fn encode_into(msg: &SipMessage, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, so the io::Results below carry no information.
    let (headers, body) = match msg {
        SipMessage::Request(req) => {
            let _ = write!(out, "{} {} {}\r\n", req.method, req.uri, req.version);
            (&req.headers, &req.body)
        }
        SipMessage::Response(resp) => {
            let code = resp.status_code.code();
            let reason = match &resp.status_code {
                StatusCode::Other(_, reason) if !reason.is_empty() => reason.as_str(),
                _ => reason_phrase(code),
            };
            let _ = write!(out, "{} {} {}\r\n", resp.version, code, reason);
            (&resp.headers, &resp.body)
        }
    };
    for header in headers.iter() {
        let _ = write!(out, "{header}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The reason phrase RFC 3261 §21 (and later RFCs) give a status code; for a code no RFC
/// names, a phrase for its class.
pub fn reason_phrase(code: u16) -> &'static str {
    rfc_phrase(code).unwrap_or(match code {
        100..=199 => "Informational",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Global Failure",
    })
}

fn rfc_phrase(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        _ => return None,
    })
}
