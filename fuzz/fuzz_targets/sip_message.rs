//! Arbitrary bytes through every entry point network bytes reach in `message`: normalize,
//! parse, the URI and name-addr reader, reject_malformed and the stream framer (whole and
//! in input-derived chunkings), with the invariants the rest of the stack relies on.
#![no_main]

use dialbridge_sip::message::{self, Frame, StreamFramer, fields};
use dialbridge_sip::rsip::SipMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(normalized) = message::normalize(data) {
        // Normalising is idempotent: what rsip sees needs no second pass.
        let again = message::normalize(&normalized).expect("normalized text normalizes");
        assert_eq!(&*again, &*normalized, "normalize is not idempotent");
    }

    match message::parse(data) {
        Ok(msg) => {
            // What we print, we parse back.
            let printed = message::encode(&msg);
            let reparsed = message::parse(&printed).expect("printed message parses");
            assert_eq!(
                message::encode(&reparsed),
                printed,
                "printing is not stable"
            );
            if let SipMessage::Request(mut req) = msg {
                // Our URI reader takes every Request-URI parse let through, and prints
                // what it reads so that it reads back the same.
                let uri = message::request_uri(&req).expect("a parsed Request-URI reads");
                assert_eq!(
                    message::uri::Uri::parse(&uri.to_string()).as_ref(),
                    Ok(&uri),
                    "URI printing is not stable"
                );
                for header in req.headers.iter() {
                    use dialbridge_sip::rsip::{Header, headers::UntypedHeader};
                    let value = match header {
                        Header::From(h) => h.value(),
                        Header::To(h) => h.value(),
                        Header::Contact(h) => h.value(),
                        Header::RecordRoute(h) => h.value(),
                        _ => continue,
                    };
                    if let Ok(list) = message::uri::NameAddr::parse_list(value) {
                        for addr in list {
                            let again = message::uri::NameAddr::parse(&addr.to_string());
                            assert_eq!(again.as_ref(), Ok(&addr), "name-addr printing is not stable");
                        }
                    }
                }
                fields::set_received_rport(&mut req, "192.0.2.1:5060".parse().unwrap());
                fields::top_via(&req.headers).expect("Via still reads after received/rport");
                let resp = fields::response_for(&req, 400, Some("bad\r\nthing"), Some("t1"));
                let bytes = message::encode(&resp.into());
                message::parse(&bytes).expect("our response parses");
            }
        }
        Err(e) => {
            if let Some((status, reason)) = message::answer_for(&e) {
                if let Some(reply) = message::reject_malformed(data, status, reason) {
                    assert!(reply.starts_with(b"SIP/2.0 "));
                    assert!(reply.ends_with(b"\r\n\r\n"));
                }
            }
        }
    }

    // Framing must not depend on how the stream was cut.
    let whole = frames(data, &[usize::MAX]);
    let seed = data.iter().fold(7usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    let cuts: Vec<usize> = (0..16).map(|i| 1 + (seed >> (i * 3)) % 97).collect();
    assert_eq!(frames(data, &cuts), whole, "framing depends on chunking");
    assert_eq!(frames(data, &[1]), whole, "framing byte by byte differs");
});

/// Frames (as debug strings, errors included) from `data` pushed in chunks of `cuts`.
fn frames(data: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = cuts[i % cuts.len()].min(rest.len());
        i += 1;
        let (mut chunk, tail) = rest.split_at(n);
        rest = tail;
        while !chunk.is_empty() {
            let taken = framer.push(chunk);
            assert!(framer.buffered() <= message::MAX_MESSAGE);
            chunk = &chunk[taken..];
            while let Some(frame) = framer.next_frame() {
                out.push(match frame {
                    Ok(Frame::Message(m)) => {
                        assert!(m.len() <= message::MAX_MESSAGE);
                        format!("M{:?}", m)
                    }
                    Ok(Frame::KeepAlivePing) => "P".to_owned(),
                    Err(e) => format!("E{e}"),
                });
            }
            if taken == 0 && !chunk.is_empty() {
                // Full and nothing to frame: the framer must have failed.
                out.push("STUCK".to_owned());
                return out;
            }
        }
    }
    out
}
