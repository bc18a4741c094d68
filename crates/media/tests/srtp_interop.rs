//! Our SRTP (RFC 3711, `crate::srtp`) against an implementation we did not write:
//! webrtc-rs's `webrtc-srtp`. Packets we protect, it decrypts to the same bytes; packets
//! it encrypts, we unprotect; for RTP and RTCP, with both SDES suites (80- and 32-bit
//! RTP tags). A context tested only against itself could share a mistake with itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dialbridge_media::rtp::RtpHeader;
use dialbridge_media::srtp::{MASTER_LEN, SrtpContext, SrtpSuite};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

const MASTER: [u8; MASTER_LEN] = [
    0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0, 0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39,
    0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE, 0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6,
];

fn theirs(profile: ProtectionProfile) -> Context {
    let (key, salt) = MASTER.split_at(16);
    Context::new(key, salt, profile, None, None).unwrap()
}

fn suites() -> [(SrtpSuite, ProtectionProfile); 2] {
    [
        (
            SrtpSuite::AesCm128HmacSha1_80,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
        (
            SrtpSuite::AesCm128HmacSha1_32,
            ProtectionProfile::Aes128CmHmacSha1_32,
        ),
    ]
}

/// An RTP packet of PCMU-sized payload whose bytes depend on `sequence`.
fn rtp(sequence: u16) -> Vec<u8> {
    let header = RtpHeader {
        marker: sequence == 1,
        payload_type: 0,
        sequence,
        timestamp: 160 * u32::from(sequence),
        ssrc: 0x1234_5678,
    };
    let payload: Vec<u8> = (0..160).map(|i| (i as u16 ^ sequence) as u8).collect();
    let mut out = vec![0u8; 172];
    let n = header.write_packet(&payload, &mut out).unwrap();
    out.truncate(n);
    out
}

/// A receiver report (RFC 3550 §6.4.2) with one report block, numbered by `n`.
fn rtcp(n: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0x12, 0x34, 0x56, 0x78];
    p.extend_from_slice(&[
        0x9A, 0xBC, 0xDE, 0xF0, n, 0, 0, 1, 0, 0, 0x10, n, 0, 0, 0, 9,
    ]);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    p
}

#[test]
fn what_we_protect_webrtc_srtp_decrypts() {
    for (suite, profile) in suites() {
        let mut ours = SrtpContext::new(suite, &MASTER);
        let mut them = theirs(profile);
        for sequence in 1..=200u16 {
            let plain = rtp(sequence);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 16, 0);
            let len = ours.protect_rtp(&mut buf, plain.len()).unwrap();
            let decrypted = them.decrypt_rtp(&buf[..len]).unwrap();
            assert_eq!(&decrypted[..], &plain[..], "{suite:?} RTP {sequence}");
        }
        for n in 1..=20u8 {
            let plain = rtcp(n);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let len = ours.protect_rtcp(&mut buf, plain.len()).unwrap();
            let decrypted = them.decrypt_rtcp(&buf[..len]).unwrap();
            assert_eq!(&decrypted[..], &plain[..], "{suite:?} RTCP {n}");
        }
    }
}

#[test]
fn what_webrtc_srtp_encrypts_we_unprotect() {
    for (suite, profile) in suites() {
        let mut ours = SrtpContext::new(suite, &MASTER);
        let mut them = theirs(profile);
        for sequence in 1..=200u16 {
            let plain = rtp(sequence);
            let mut buf = them.encrypt_rtp(&plain).unwrap().to_vec();
            let len = ours.unprotect_rtp(&mut buf).unwrap();
            assert_eq!(&buf[..len], &plain[..], "{suite:?} RTP {sequence}");
        }
        for n in 1..=20u8 {
            let plain = rtcp(n);
            let mut buf = them.encrypt_rtcp(&plain).unwrap().to_vec();
            let len = ours.unprotect_rtcp(&mut buf).unwrap();
            assert_eq!(&buf[..len], &plain[..], "{suite:?} RTCP {n}");
        }
        // A flipped bit in their packet fails our authentication.
        let mut forged = them.encrypt_rtp(&rtp(500)).unwrap().to_vec();
        forged[20] ^= 1;
        assert!(ours.unprotect_rtp(&mut forged).is_err(), "{suite:?}");
    }
}
