//! Leader PINs as salted Argon2id hashes in PHC string format (RFC 9106 parameters
//! chosen for a verification of roughly 30 ms, see [`PIN_HASH_PARAMS`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use super::DirectoryError;
use crate::ivr::Pin;

/// Argon2id with 16 MiB of memory, 2 passes, 1 lane.
///
/// Measured on the 2-core build machine (release, under load from other builds):
/// m=16 MiB/t=2 about 28 ms per verification, OWASP's m=19 MiB/t=2 about 90 ms,
/// m=8 MiB/t=2 about 21 ms. A PIN has only 10^4..10^12 values, so the hash cannot
/// make a short PIN safe against someone holding the database file; it makes every
/// offline guess cost memory and time, and the salt makes each organiser's table
/// separate. Online guessing is the IVR's attempt limit's job. Verification uses the
/// parameters stored in each PHC string, so changing these later keeps old hashes valid.
pub const PIN_HASH_PARAMS: (u32, u32, u32) = (16 * 1024, 2, 1);

/// Salt length in bytes (RFC 9106 §3.1 recommends 16).
const SALT_LEN: usize = 16;

/// Hashes a PIN with a fresh random salt into a `$argon2id$v=19$m=...` PHC string.
pub(super) fn hash(pin: &Pin) -> Result<String, DirectoryError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    let hash = hasher()?.hash_password(pin.expose().as_bytes(), &salt)?;
    Ok(hash.to_string())
}

/// Checks a PIN against a stored PHC string. The comparison of the derived key is
/// constant-time (argon2's `verify_password`), and it always runs the full hash.
pub(super) fn verify(pin: &Pin, phc: &str) -> Result<bool, DirectoryError> {
    let parsed = PasswordHash::new(phc)?;
    match hasher()?.verify_password(pin.expose().as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn hasher() -> Result<Argon2<'static>, DirectoryError> {
    let (m, t, p) = PIN_HASH_PARAMS;
    let params = Params::new(m, t, p, None).map_err(argon2::password_hash::Error::from)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_salted_phc_and_verifies() {
        let pin = Pin::parse("13579").unwrap();
        let a = hash(&pin).unwrap();
        let b = hash(&pin).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=16384,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("13579"));
        assert!(verify(&pin, &a).unwrap());
        assert!(verify(&pin, &b).unwrap());
        assert!(!verify(&Pin::parse("13578").unwrap(), &a).unwrap());
        assert!(verify(&pin, "not a phc string").is_err());
    }
}
