//! SRTP and SRTCP (RFC 3711) with the SDES suites of RFC 4568 §6.2.1:
//! AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32 — pure, in place, no allocation.
//!
//! - §4.3.1 key derivation (key derivation rate 0, the SDES default): session
//!   encryption key, salt and authentication key for SRTP and SRTCP from the 30-byte
//!   master key || master salt that `a=crypto` carries inline.
//! - §4.1.1 AES in counter mode: IV = (k_s · 2^16) ⊕ (SSRC · 2^64) ⊕ (i · 2^16).
//! - §4.2.1 HMAC-SHA1 over the packet and the rollover counter, truncated to 80 or 32
//!   bits (SRTCP always 80).
//! - §3.3.1 / Appendix A index estimation with the rollover counter, and the §3.3.2
//!   replay list as a 64-packet sliding window (the minimum the RFC asks for).
//!
//! One [`SrtpContext`] protects one direction of one session: the engine keeps an
//! outbound context (our key) and an inbound one (the far end's key).

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Bytes of master key || master salt in an SDES inline key (RFC 4568 §6.1).
pub const MASTER_LEN: usize = 30;
/// The SRTCP trailer: E flag and 31-bit index, then an 80-bit tag (RFC 3711 §3.4).
pub const SRTCP_TRAILER: usize = 4 + 10;
/// The most bytes protection adds to an RTP packet.
pub const MAX_RTP_OVERHEAD: usize = 10;

const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
const AUTH_KEY_LEN: usize = 20;
const RTP_HEADER_LEN: usize = 12;

/// The crypto suites we offer and accept (RFC 4568 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: the mandatory one, 80-bit RTP tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 32-bit RTP tag (SRTCP keeps 80 bits).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The suite named in an `a=crypto` line, if we support it.
    pub fn from_sdp_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// The name for an `a=crypto` line.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Bytes of the RTP authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// A master key || salt that is not 30 bytes.
    #[error("SRTP master key and salt must be {MASTER_LEN} bytes, got {0}")]
    KeyLength(usize),
    /// An `inline:` key that is not base64.
    #[error("SRTP inline key is not base64")]
    KeyEncoding,
    /// A crypto suite we do not implement.
    #[error("unsupported SRTP crypto suite")]
    UnsupportedSuite,
    /// Too short for a header, its CSRCs and extension, or the tag / trailer.
    #[error("SRTP packet truncated")]
    Truncated,
    /// No room after the packet for the tag.
    #[error("SRTP buffer too small for the authentication tag")]
    BufferTooSmall,
    /// The tag does not match: forged, corrupted, or keyed differently.
    #[error("SRTP authentication failed")]
    AuthenticationFailed,
    /// An index already seen, or older than the replay window.
    #[error("SRTP replayed packet")]
    Replayed,
}

/// The keys of an SDES-keyed session: ours (we protect with it, and send it in our
/// `a=crypto`) and the far end's (from its `a=crypto`), both the decoded 30 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The negotiated suite.
    pub suite: SrtpSuite,
    /// Our master key || master salt.
    pub local_key_salt: [u8; MASTER_LEN],
    /// The far end's master key || master salt.
    pub remote_key_salt: [u8; MASTER_LEN],
}

impl SrtpKeys {
    /// Keys from the decoded inline key-params (each must be 30 bytes).
    pub fn new(suite: SrtpSuite, local: &[u8], remote: &[u8]) -> Result<Self, SrtpError> {
        let local_key_salt = local
            .try_into()
            .map_err(|_| SrtpError::KeyLength(local.len()))?;
        let remote_key_salt = remote
            .try_into()
            .map_err(|_| SrtpError::KeyLength(remote.len()))?;
        Ok(Self {
            suite,
            local_key_salt,
            remote_key_salt,
        })
    }

    /// Keys from an SDES exchange as the SDP carries it (RFC 4568 §6.1): the suite
    /// name and the base64 `inline:` key-salt of our `a=crypto` and of the far end's
    /// (padding optional). Lifetime and MKI are not supported (the caller should not
    /// accept a crypto line that carries an MKI).
    pub fn from_sdes(
        suite: &str,
        local_inline: &str,
        remote_inline: &str,
    ) -> Result<Self, SrtpError> {
        let suite = SrtpSuite::from_sdp_name(suite).ok_or(SrtpError::UnsupportedSuite)?;
        let local = decode_inline(local_inline)?;
        let remote = decode_inline(remote_inline)?;
        Ok(Self {
            suite,
            local_key_salt: local,
            remote_key_salt: remote,
        })
    }

    /// Fresh random local key material, for our answer's `a=crypto`.
    pub fn random_key_salt() -> [u8; MASTER_LEN] {
        rand::random()
    }

    /// Base64 (RFC 4648, padded) of 30 bytes of key material, for `inline:`.
    pub fn encode_inline(key_salt: &[u8; MASTER_LEN]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(key_salt)
    }
}

/// Decodes a base64 `inline:` key-salt into exactly [`MASTER_LEN`] bytes. Padding is
/// optional (30 bytes never need it, and some peers add none where others would).
fn decode_inline(text: &str) -> Result<[u8; MASTER_LEN], SrtpError> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const INLINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = INLINE.decode(text).map_err(|_| SrtpError::KeyEncoding)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| SrtpError::KeyLength(bytes.len()))
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: never in logs.
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// One direction of SRTP + SRTCP for one session.
#[derive(Clone)]
pub struct SrtpContext {
    /// Boxed: the key schedules are most of a kilobyte each, and a session keeps
    /// several contexts beside state the media threads read per packet.
    rtp: Box<SessionKeys>,
    rtcp: Box<SessionKeys>,
    rtp_tag_len: usize,
    /// Rollover counter and highest sequence (s_l) seen or sent.
    roc: u32,
    s_l: Option<u16>,
    rtp_replay: ReplayWindow,
    /// Next SRTCP index to send.
    srtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("roc", &self.roc)
            .field("s_l", &self.s_l)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context keyed by a 30-byte master key || master salt.
    pub fn new(suite: SrtpSuite, master: &[u8; MASTER_LEN]) -> Self {
        let (key, salt) = master.split_at(KEY_LEN);
        let master_cipher = Aes128::new(GenericArray::from_slice(key));
        let mut master_salt = [0u8; SALT_LEN];
        master_salt.copy_from_slice(salt);
        Self {
            rtp: Box::new(SessionKeys::derive(&master_cipher, &master_salt, 0)),
            rtcp: Box::new(SessionKeys::derive(&master_cipher, &master_salt, 3)),
            rtp_tag_len: suite.rtp_tag_len(),
            roc: 0,
            s_l: None,
            rtp_replay: ReplayWindow::default(),
            srtcp_index: 0,
            rtcp_replay: ReplayWindow::default(),
        }
    }

    /// Encrypts the RTP packet in `buf[..len]` in place and appends the tag; returns
    /// the SRTP length. `buf` needs [`SrtpSuite::rtp_tag_len`] spare bytes.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let total = len + self.rtp_tag_len;
        let buf = buf.get_mut(..total).ok_or(SrtpError::BufferTooSmall)?;
        let header = rtp_header_len(&buf[..len])?;
        let (seq, ssrc) = seq_ssrc(buf);
        // The sender's ROC steps when the sequence wraps (§3.3.1).
        if let Some(last) = self.s_l
            && seq < last
            && last - seq > 0x8000
        {
            self.roc = self.roc.wrapping_add(1);
        }
        self.s_l = Some(seq);
        let index = (u64::from(self.roc) << 16) | u64::from(seq);
        self.rtp.apply_keystream(ssrc, index, &mut buf[header..len]);
        let tag = self.rtp.tag(&buf[..len], &self.roc.to_be_bytes());
        buf[len..].copy_from_slice(&tag[..self.rtp_tag_len]);
        Ok(total)
    }

    /// Authenticates and decrypts the SRTP packet in `buf` in place; returns the RTP
    /// length. Nothing changes (no ROC step, no replay entry) unless it authenticates.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf
            .len()
            .checked_sub(self.rtp_tag_len)
            .ok_or(SrtpError::Truncated)?;
        let header = rtp_header_len(&buf[..len])?;
        let (seq, ssrc) = seq_ssrc(buf);
        let v = self.estimate_roc(seq);
        let index = (u64::from(v) << 16) | u64::from(seq);
        if !self.rtp_replay.is_fresh(index) {
            return Err(SrtpError::Replayed);
        }
        let (packet, tag) = buf.split_at_mut(len);
        let expected = self.rtp.tag(packet, &v.to_be_bytes());
        if !constant_time_eq(&expected[..self.rtp_tag_len], tag) {
            return Err(SrtpError::AuthenticationFailed);
        }
        self.rtp_replay.accept(index);
        // §3.3.1: update ROC and s_l only from an authenticated packet.
        match self.s_l {
            None => self.s_l = Some(seq),
            Some(_) if v == self.roc.wrapping_add(1) => {
                self.roc = v;
                self.s_l = Some(seq);
            }
            Some(s_l) if v == self.roc && seq > s_l => self.s_l = Some(seq),
            Some(_) => {}
        }
        self.rtp.apply_keystream(ssrc, index, &mut packet[header..]);
        Ok(len)
    }

    /// Encrypts the compound RTCP packet in `buf[..len]` and appends E‖index and the
    /// 80-bit tag (§3.4); returns the SRTCP length. Needs [`SRTCP_TRAILER`] spare bytes.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let total = len + SRTCP_TRAILER;
        let buf = buf.get_mut(..total).ok_or(SrtpError::BufferTooSmall)?;
        if len < 8 {
            return Err(SrtpError::Truncated);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let index = self.srtcp_index;
        self.srtcp_index = (self.srtcp_index + 1) & 0x7fff_ffff;
        self.rtcp
            .apply_keystream(ssrc, u64::from(index), &mut buf[8..len]);
        buf[len..len + 4].copy_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.rtcp.tag(&buf[..len + 4], &[]);
        buf[len + 4..].copy_from_slice(&tag);
        Ok(total)
    }

    /// Authenticates and decrypts an SRTCP packet in place; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf
            .len()
            .checked_sub(SRTCP_TRAILER)
            .filter(|&l| l >= 8)
            .ok_or(SrtpError::Truncated)?;
        let (authenticated, tag) = buf.split_at_mut(len + 4);
        let expected = self.rtcp.tag(authenticated, &[]);
        if !constant_time_eq(&expected, tag) {
            return Err(SrtpError::AuthenticationFailed);
        }
        let (packet, e_index) = authenticated.split_at_mut(len);
        let word = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
        let index = u64::from(word & 0x7fff_ffff);
        if !self.rtcp_replay.is_fresh(index) {
            return Err(SrtpError::Replayed);
        }
        self.rtcp_replay.accept(index);
        if word & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
            self.rtcp.apply_keystream(ssrc, index, &mut packet[8..]);
        }
        Ok(len)
    }

    /// RFC 3711 §3.3.1: the ROC the sender most likely used for `seq`.
    fn estimate_roc(&self, seq: u16) -> u32 {
        let Some(s_l) = self.s_l else {
            return self.roc;
        };
        if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 {
                self.roc.wrapping_sub(1)
            } else {
                self.roc
            }
        } else if s_l - 0x8000 > seq {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }
}

/// The session keys of one of SRTP or SRTCP (§4.3).
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; SALT_LEN],
    /// HMAC keyed once; cloned (a stack copy) per packet.
    auth: Hmac<Sha1>,
}

impl SessionKeys {
    /// §4.3.1 with kdr = 0: labels `first` (encryption), +1 (auth), +2 (salt).
    fn derive(master: &Aes128, master_salt: &[u8; SALT_LEN], first: u8) -> Self {
        let mut key = [0u8; KEY_LEN];
        derive(master, master_salt, first, &mut key);
        let mut auth_key = [0u8; AUTH_KEY_LEN];
        derive(master, master_salt, first + 1, &mut auth_key);
        let mut salt = [0u8; SALT_LEN];
        derive(master, master_salt, first + 2, &mut salt);
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps the
        // function total without a panic path.
        let auth = <Hmac<Sha1> as Mac>::new_from_slice(&auth_key)
            .unwrap_or_else(|_| <Hmac<Sha1> as Mac>::new(&Default::default()));
        Self {
            cipher: Aes128::new(GenericArray::from_slice(&key)),
            salt,
            auth,
        }
    }

    /// XORs the §4.1.1 keystream for (`ssrc`, `index`) into `data`.
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        // The 48-bit index sits in bytes 8..14 (· 2^16).
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        aes_cm(&self.cipher, &iv, data);
    }

    /// The full 80-bit tag over `packet || trailer`.
    fn tag(&self, packet: &[u8], trailer: &[u8]) -> [u8; 10] {
        let mut mac = self.auth.clone();
        mac.update(packet);
        mac.update(trailer);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 10];
        tag.copy_from_slice(&full[..10]);
        tag
    }
}

/// AES counter mode: block j of keystream is AES(iv + j); XORed into `data`.
fn aes_cm(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let base = u128::from_be_bytes(*iv);
    for (j, chunk) in data.chunks_mut(16).enumerate() {
        let counter = base.wrapping_add(j as u128);
        let mut block = GenericArray::from(counter.to_be_bytes());
        cipher.encrypt_block(&mut block);
        for (d, k) in chunk.iter_mut().zip(block.iter()) {
            *d ^= k;
        }
    }
}

/// §4.3.1: AES-CM keystream under the master key with IV = (label ⊕ salt) · 2^16.
fn derive(master: &Aes128, master_salt: &[u8; SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..SALT_LEN].copy_from_slice(master_salt);
    // key_id = label ‖ (index DIV kdr) = label ‖ 0^48, aligned to the salt's low end.
    iv[7] ^= label;
    out.fill(0);
    aes_cm(master, &iv, out);
}

/// The RTP header length (fixed part, CSRCs, extension), checked against `packet`.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::Truncated)?;
    if packet.len() < RTP_HEADER_LEN {
        return Err(SrtpError::Truncated);
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4).ok_or(SrtpError::Truncated)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Truncated);
    }
    Ok(len)
}

/// Sequence number and SSRC of a packet at least 12 bytes long.
fn seq_ssrc(p: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// Tag comparison whose time does not tell where a forged tag first differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// §3.3.2 replay list: the highest index seen and a 64-bit bitmap behind it.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    highest: Option<u64>,
    bitmap: u64,
}

impl ReplayWindow {
    fn is_fresh(&self, index: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if index > h => true,
            Some(h) => {
                let behind = h - index;
                behind < 64 && self.bitmap & (1 << behind) == 0
            }
        }
    }

    fn accept(&mut self, index: u64) {
        match self.highest {
            Some(h) if index <= h => self.bitmap |= 1 << (h - index),
            Some(h) => {
                let shift = index - h;
                self.bitmap = if shift >= 64 { 0 } else { self.bitmap << shift };
                self.bitmap |= 1;
                self.highest = Some(index);
            }
            None => {
                self.bitmap = 1;
                self.highest = Some(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let cipher = Aes128::new(GenericArray::from_slice(&hex(
            "2B7E151628AED2A6ABF7158809CF4F3C",
        )));
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
        let mut out = [0u8; 48];
        aes_cm(&cipher, &iv, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("E03EAD0935C95E80E166B16DD92B4EB4
                 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0")
        );
        // The same through the SRTP IV formula: salt F0..FD, SSRC 0, index 0.
        let keys = SessionKeys {
            cipher,
            salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
            auth: <Hmac<Sha1> as Mac>::new_from_slice(b"k").unwrap(),
        };
        let mut out2 = [0u8; 48];
        keys.apply_keystream(0, 0, &mut out2);
        assert_eq!(out, out2);
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = Aes128::new(GenericArray::from_slice(&hex(
            "E1F97A0D3E018BE0D64FA32C06DE4139",
        )));
        let salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap();
        let mut key = [0u8; 16];
        derive(&master, &salt, 0, &mut key);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut session_salt = [0u8; 14];
        derive(&master, &salt, 2, &mut session_salt);
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 94];
        derive(&master, &salt, 1, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    fn master(seed: u8) -> [u8; MASTER_LEN] {
        std::array::from_fn(|i| seed.wrapping_add(i as u8))
    }

    fn rtp(seq: u16, payload: u8) -> [u8; 12 + 160 + 10] {
        let mut p = [payload; 182];
        p[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44]);
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn rtp_round_trip_tamper_and_replay() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = SrtpContext::new(suite, &master(1));
            let mut rx = SrtpContext::new(suite, &master(1));
            let mut p = rtp(7, 0x55);
            let n = tx.protect_rtp(&mut p, 172).unwrap();
            assert_eq!(n, 172 + suite.rtp_tag_len());
            assert_ne!(&p[12..172], &[0x55; 160][..], "payload encrypted");
            assert_eq!(&p[..12], &rtp(7, 0)[..12], "header in the clear");
            let sent = p;
            let m = rx.unprotect_rtp(&mut p[..n]).unwrap();
            assert_eq!(&p[..m], &rtp(7, 0x55)[..172]);
            // Replay.
            let mut again = sent;
            assert_eq!(rx.unprotect_rtp(&mut again[..n]), Err(SrtpError::Replayed));
            // Tamper.
            let mut bad = sent;
            bad[40] ^= 1;
            let mut fresh = SrtpContext::new(suite, &master(1));
            assert_eq!(
                fresh.unprotect_rtp(&mut bad[..n]),
                Err(SrtpError::AuthenticationFailed)
            );
            // Wrong key.
            let mut other = SrtpContext::new(suite, &master(2));
            let mut copy = sent;
            assert_eq!(
                other.unprotect_rtp(&mut copy[..n]),
                Err(SrtpError::AuthenticationFailed)
            );
        }
    }

    #[test]
    fn rollover_counter_follows_wrap_and_reordering() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut tx = SrtpContext::new(suite, &master(9));
        let mut rx = SrtpContext::new(suite, &master(9));
        let mut sent = Vec::new();
        for seq in [65533u16, 65534, 65535, 0, 1, 2] {
            let mut p = rtp(seq, seq as u8);
            let n = tx.protect_rtp(&mut p, 172).unwrap();
            sent.push((seq, p, n));
        }
        assert_eq!(tx.roc, 1);
        // Deliver with 65535 arriving after 0 (reordered across the wrap).
        for i in [0usize, 1, 3, 2, 4, 5] {
            let (seq, mut p, n) = sent[i];
            let m = rx.unprotect_rtp(&mut p[..n]).unwrap();
            assert_eq!(&p[..m], &rtp(seq, seq as u8)[..172], "seq {seq}");
        }
        assert_eq!(rx.roc, 1);
    }

    #[test]
    fn rtcp_round_trip_and_errors() {
        let mut tx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_32, &master(3));
        let mut rx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_32, &master(3));
        let plain: Vec<u8> = [0x80u8, 201, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]
            .into_iter()
            .chain([0x81, 202, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, b'h', b'i'])
            .collect();
        let mut buf = [0u8; 64];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(n, plain.len() + SRTCP_TRAILER);
        assert_ne!(&buf[8..plain.len()], &plain[8..]);
        let sent = buf;
        let m = rx.unprotect_rtcp(&mut buf[..n]).unwrap();
        assert_eq!(&buf[..m], &plain[..]);
        let mut again = sent;
        assert_eq!(rx.unprotect_rtcp(&mut again[..n]), Err(SrtpError::Replayed));
        let mut bad = sent;
        bad[9] ^= 0x80;
        assert_eq!(
            rx.unprotect_rtcp(&mut bad[..n]),
            Err(SrtpError::AuthenticationFailed)
        );
        assert_eq!(rx.unprotect_rtcp(&mut [0u8; 5]), Err(SrtpError::Truncated));
        assert_eq!(
            tx.protect_rtcp(&mut [0u8; 10], 8),
            Err(SrtpError::BufferTooSmall)
        );
    }

    #[test]
    fn short_and_odd_packets_never_panic() {
        let mut rx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &master(4));
        for len in 0..40 {
            let mut b: Vec<u8> = (0..len).map(|i| (i * 13 + 0x90) as u8).collect();
            let _ = rx.unprotect_rtp(&mut b);
            let _ = rx.unprotect_rtcp(&mut b);
        }
        let mut tx = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, &master(4));
        let mut small = rtp(1, 0);
        assert_eq!(
            tx.protect_rtp(&mut small, 176),
            Err(SrtpError::BufferTooSmall)
        );
        assert!(SrtpKeys::new(SrtpSuite::AesCm128HmacSha1_80, &[0; 29], &[0; 30]).is_err());
        let keys = SrtpKeys::new(SrtpSuite::AesCm128HmacSha1_80, &[1; 30], &[2; 30]).unwrap();
        assert!(!format!("{keys:?}").contains("1, 1"));
        assert_eq!(
            SrtpSuite::from_sdp_name("AES_CM_128_HMAC_SHA1_80"),
            Some(SrtpSuite::AesCm128HmacSha1_80)
        );
    }

    #[test]
    fn sdes_inline_keys_decode_and_encode() {
        // RFC 4568 §9.1's example key.
        let keys = SrtpKeys::from_sdes(
            "AES_CM_128_HMAC_SHA1_80",
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        )
        .unwrap();
        assert_eq!(keys.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(&keys.remote_key_salt[..8], b"YS___sem");
        assert_eq!(
            SrtpKeys::encode_inline(&keys.local_key_salt),
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
        );
        let random = SrtpKeys::random_key_salt();
        let text = SrtpKeys::encode_inline(&random);
        assert_eq!(decode_inline(&text).unwrap(), random);
        assert_eq!(
            SrtpKeys::from_sdes("F8_128_HMAC_SHA1_80", &text, &text),
            Err(SrtpError::UnsupportedSuite)
        );
        assert_eq!(decode_inline("abc!"), Err(SrtpError::KeyEncoding));
        assert_eq!(decode_inline("QUJD"), Err(SrtpError::KeyLength(3)));
        assert!(decode_inline(&"QUJD".repeat(20)).is_err());
    }

    #[test]
    fn replay_window_slides() {
        let mut w = ReplayWindow::default();
        w.accept(100);
        assert!(!w.is_fresh(100));
        assert!(w.is_fresh(99));
        assert!(w.is_fresh(37));
        assert!(!w.is_fresh(36), "older than the window");
        w.accept(200);
        assert!(w.is_fresh(199) && !w.is_fresh(100) && !w.is_fresh(200));
    }
}
