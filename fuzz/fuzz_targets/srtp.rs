//! SRTP and SRTCP (RFC 3711) with one fixed key: arbitrary datagrams unprotected as
//! they arrive, and arbitrary packets protected by a sender with the same key, then
//! unprotected, and tampered with. Nothing panics; what authenticates decrypts to what
//! was sent; a changed byte never authenticates.
#![no_main]

use dialbridge_media::SrtpSuite;
use dialbridge_media::srtp::{MASTER_LEN, SRTCP_TRAILER, SrtpContext, SrtpError};
use libfuzzer_sys::fuzz_target;

/// Datagrams are cut from the input as `op, len, bytes[len]`; this many at most.
const MAX_OPS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&suite, mut rest)) = data.split_first() else {
        return;
    };
    let suite = if suite & 1 == 0 {
        SrtpSuite::AesCm128HmacSha1_80
    } else {
        SrtpSuite::AesCm128HmacSha1_32
    };
    let master: [u8; MASTER_LEN] = std::array::from_fn(|i| i as u8 * 7 + 1);
    let mut tx = SrtpContext::new(suite, &master);
    let mut rx = SrtpContext::new(suite, &master);
    let tag = suite.rtp_tag_len();

    for _ in 0..MAX_OPS {
        let [op, len, tail @ ..] = rest else { break };
        let len = usize::from(*len).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let flip = usize::from(*op >> 2);
        match op & 3 {
            0 => {
                let mut buf = body.to_vec();
                if let Ok(n) = rx.unprotect_rtp(&mut buf) {
                    assert_eq!(n + tag, body.len());
                }
            }
            1 => {
                let mut buf = body.to_vec();
                buf.resize(len + tag, 0);
                let Ok(n) = tx.protect_rtp(&mut buf, len) else {
                    continue;
                };
                assert_eq!(n, len + tag);
                let mut tampered = buf.clone();
                tampered[flip % n] ^= 1 << (op >> 5);
                let forged = rx.clone().unprotect_rtp(&mut tampered);
                assert!(forged.is_err(), "tampered SRTP accepted");
                match rx.unprotect_rtp(&mut buf) {
                    Ok(m) => assert_eq!(&buf[..m], body, "SRTP round trip"),
                    // A sequence jump of over 2^15 is ambiguous (§3.3.1), and a
                    // repeated index is a replay.
                    Err(e) => assert_rejected(Err(e)),
                }
            }
            2 => {
                let mut buf = body.to_vec();
                if let Ok(n) = rx.unprotect_rtcp(&mut buf) {
                    assert_eq!(n + SRTCP_TRAILER, body.len());
                }
            }
            _ => {
                let mut buf = body.to_vec();
                buf.resize(len + SRTCP_TRAILER, 0);
                let Ok(n) = tx.protect_rtcp(&mut buf, len) else {
                    continue;
                };
                assert_eq!(n, len + SRTCP_TRAILER);
                let mut tampered = buf.clone();
                tampered[flip % n] ^= 1 << (op >> 5);
                let forged = rx.clone().unprotect_rtcp(&mut tampered);
                assert!(forged.is_err(), "tampered SRTCP accepted");
                match rx.unprotect_rtcp(&mut buf) {
                    Ok(m) => assert_eq!(&buf[..m], body, "SRTCP round trip"),
                    Err(e) => assert_rejected(Err(e)),
                }
            }
        }
    }
});

/// Our own packet was refused only for a reason the sender could cause: an index
/// seen before, or one too far from the last to place.
fn assert_rejected(result: Result<usize, SrtpError>) {
    assert!(
        matches!(
            result,
            Err(SrtpError::AuthenticationFailed | SrtpError::Replayed)
        ),
        "our packet refused: {result:?}"
    );
}
