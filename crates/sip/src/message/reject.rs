//! Raw answers to requests rsip cannot parse (RFC 3261 §8.2.6, §8.2.7).
//!
//! A request that fails to parse still deserves a 400 (or 513, 505, 501) when the lines
//! a response needs can be found: every Via, From, To, Call-ID and CSeq. We copy those
//! lines as they are, unfolded, and add a To tag that is the same for every
//! retransmission of the request, as a stateless UAS must (§8.2.7).

use std::io::Write;

use super::fields::sanitize_reason;
use super::normalize::{Headers, Kind, find_byte, skip_leading_crlf, trim_lws};

/// Headers copied into a stateless answer, at most: a bound on the reply's size.
const MAX_VIAS: usize = 70;

/// Builds `SIP/2.0 <status> <reason>` for the request in `bytes`, or `None` when it cannot
/// be answered: it is a response (never answered), an ACK (§17.1.1.3: no response to ACK),
/// or one of Via, From, To, Call-ID, CSeq cannot be found.
pub fn reject_malformed(bytes: &[u8], status: u16, reason: &str) -> Option<Vec<u8>> {
    let msg = skip_leading_crlf(bytes);
    let first_nl = find_byte(msg, b'\n')?;
    let start_line = msg.get(..first_nl)?;
    if start_line.starts_with(b"SIP/") {
        return None;
    }
    let method = start_line.split(|b| *b == b' ').next()?;
    if method.is_empty() || method == b"ACK" {
        return None;
    }
    // The header block ends at the blank line, or at the end of what we were given.
    let rest = msg.get(first_nl + 1..)?;
    let block_end = find(rest, b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| find(rest, b"\n\n").map(|i| i + 1))
        .unwrap_or(rest.len());
    let block = rest.get(..block_end)?;

    let mut vias: Vec<&[u8]> = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for header in Headers::new(block).flatten() {
        let value = trim_lws(header.value);
        match header.kind {
            Kind::Via if vias.len() < MAX_VIAS => vias.push(value),
            Kind::CallId => call_id = call_id.or(Some(value)),
            Kind::CSeq => cseq = cseq.or(Some(value)),
            _ if header.name.eq_ignore_ascii_case(b"From") => from = from.or(Some(value)),
            _ if header.name.eq_ignore_ascii_case(b"To") => to = to.or(Some(value)),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() || [from, to, call_id, cseq].iter().any(|v| v.is_empty()) {
        return None;
    }

    let mut out = Vec::with_capacity(256 + block.len().min(4096));
    let status = if (100..=699).contains(&status) {
        status
    } else {
        400
    };
    let _ = write!(out, "SIP/2.0 {status} {}\r\n", sanitize_reason(reason));
    for via in vias {
        line(&mut out, b"Via", via);
    }
    line(&mut out, b"From", from);
    line(&mut out, b"To", to);
    if !has_tag(to) {
        // The same request always gets the same tag (§8.2.7): hash what identifies it.
        let tag = super::fields::fnv1a([call_id, from, cseq]);
        out.truncate(out.len().saturating_sub(2));
        let _ = write!(out, ";tag={tag:016x}\r\n");
    }
    line(&mut out, b"Call-ID", call_id);
    line(&mut out, b"CSeq", cseq);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

/// Writes `Name: value\r\n`, turning folds and other control bytes into spaces so a
/// copied value cannot start a header of its own.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend(
        value
            .iter()
            .map(|b| if b.is_ascii_control() { b' ' } else { *b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Whether a To value carries a tag parameter (outside quotes and `<...>`).
fn has_tag(to: &[u8]) -> bool {
    std::str::from_utf8(to)
        .ok()
        .and_then(|v| super::fields::header_param(v, "tag"))
        .is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
