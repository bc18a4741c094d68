//! SIP digest authentication (RFC 3261 §22.4 on RFC 2617, with SHA-256 from
//! RFC 7616 as RFC 8760 brings it to SIP): the server side for softphones
//! ([`Authenticator`]: expiring MAC'd nonces, [`Verdict`]s; what it remembers — nonce
//! counts, failures, lock-outs, the nonce secret — behind [`AuthState`]) and the client
//! side for sbc-sim and tests ([`respond`]).
//!
//! Passwords are turned into HA1 when an account is added and never kept, and no
//! password, HA1, digest response, nonce secret or SDES key ever reaches a log or a
//! `Debug` output.

mod client;
mod params;
mod server;
mod state;

pub use client::respond;
pub use server::{Attempt, Authenticator, Failure, StaleNonce, Verdict};
pub use state::{AuthPolicy, AuthState, Lockout, MemoryAuthState, NonceUse, Subject};

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Longest `Authorization` / `WWW-Authenticate` value we parse (bytes).
pub const MAX_HEADER_LEN: usize = 4096;
/// Most parameters in one such header value.
pub const MAX_PARAMS: usize = 32;

/// Errors of the client side ([`respond`]) and of an [`AuthState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The challenge does not parse.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    /// The challenge asks for an algorithm we do not implement (`MD5-sess`, ...).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// The challenge offers qop values but not `auth`.
    #[error("unsupported qop (only auth)")]
    UnsupportedQop,
    /// An [`AuthState`] could not give the nonce secret.
    #[error("authentication state: {0}")]
    State(String),
}

/// Digest hash algorithm (RFC 7616 §3.3; RFC 8760 §2.1 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the default when the parameter is absent.
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive); `*-sess` is not supported.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// As written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lowercase hex of H(p1 ":" p2 ":" ...), without building the joined string.
    pub fn hash_hex(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 => run(Md5::new(), parts),
            Algorithm::Sha256 => run(Sha256::new(), parts),
        }
    }

    /// HA1 = H(username ":" realm ":" password) (RFC 2617 §3.2.2.2).
    pub fn ha1(self, user: &str, realm: &str, password: &str) -> String {
        self.hash_hex(&[user, realm, password])
    }
}

/// The request-digest of RFC 2617 §3.2.2.1: with `qop=auth`,
/// H(HA1:nonce:nc:cnonce:qop:HA2), and without qop (RFC 2069), H(HA1:nonce:HA2),
/// where HA2 = H(method:uri).
pub(crate) fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash_hex(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => algorithm.hash_hex(&[ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => algorithm.hash_hex(&[ha1, nonce, &ha2]),
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ
/// (`subtle`, so the optimiser cannot turn it back into an early exit).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests;
