//! The registrar/proxy side: challenges with stateless expiring nonces and checks
//! `Authorization` values (RFC 2617 §3.2, RFC 7616 §3.4, RFC 8760).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::params::{DigestParams, push_quoted};
use super::{Algorithm, constant_time_eq, request_digest};

/// A nonce may claim to be this much younger than our clock (another node's clock).
const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Bytes of HMAC-SHA-256 kept in a nonce: 128 bits are ample for a 5-minute token.
const NONCE_MAC_LEN: usize = 16;
/// Nonce text: 16 hex digits of microseconds since the epoch, then the MAC in hex.
const NONCE_LEN: usize = 16 + 2 * NONCE_MAC_LEN;

/// The outcome of [`Authenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right and the nonce is ours and fresh.
    Authenticated {
        /// The account.
        user: String,
    },
    /// The credentials are right but the nonce expired or is not one we issued
    /// (e.g. issued before a restart with another secret): challenge again with
    /// `stale=true` (RFC 2617 §3.2.1) so the client retries without asking its user.
    Stale {
        /// The account, to pick the algorithm of the new challenge.
        user: String,
    },
    /// Wrong password, unknown user or wrong realm: answer 403.
    Forbidden {
        /// Why, for logs (never contains a secret).
        reason: &'static str,
    },
    /// The header does not parse or asks for what we do not do: answer 400, or
    /// challenge again.
    Malformed {
        /// Why, for logs.
        reason: &'static str,
    },
}

/// HA1 values of one account: one per algorithm, since HA1 depends on it.
#[derive(Clone, Default)]
struct Account {
    ha1_md5: Option<String>,
    ha1_sha256: Option<String>,
    prefer_sha256: bool,
}

/// Digest authentication for one realm.
///
/// Nonces carry their issue time and an HMAC of it under `nonce_secret`, so no
/// state is kept per challenge and any node sharing the secret accepts them. The
/// cost of that: within its lifetime a captured `Authorization` can be replayed
/// (no nonce-count tracking); TLS is the answer to eavesdroppers.
#[derive(Clone)]
pub struct Authenticator {
    realm: String,
    accounts: HashMap<String, Account>,
    nonce_key: Vec<u8>,
    nonce_lifetime: Duration,
    opaque: String,
}

impl std::fmt::Debug for Authenticator {
    // Accounts are listed by name only: HA1s and the nonce secret stay out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("users", &users)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `realm` with no accounts. `nonce_secret` keys the nonce
    /// MAC (share it between nodes behind one load balancer).
    pub fn new(realm: impl Into<String>, nonce_secret: &[u8], nonce_lifetime: Duration) -> Self {
        let realm = realm.into();
        // The opaque value carries no state here (the nonce does); it is constant per
        // realm so a restart never turns a client's echo of it into a mismatch.
        let opaque = Algorithm::Md5.hash_hex(&["dialbridge-opaque", &realm]);
        Authenticator {
            realm,
            accounts: HashMap::new(),
            nonce_key: nonce_secret.to_vec(),
            nonce_lifetime,
            opaque,
        }
    }

    /// Adds (or replaces) an account by password. Only the MD5 and SHA-256 HA1
    /// values are kept; the password itself is dropped here.
    pub fn add_password(&mut self, user: &str, password: &str, prefer_sha256: bool) {
        let account = Account {
            ha1_md5: Some(Algorithm::Md5.ha1(user, &self.realm, password)),
            ha1_sha256: Some(Algorithm::Sha256.ha1(user, &self.realm, password)),
            prefer_sha256,
        };
        self.accounts.insert(user.to_owned(), account);
    }

    /// Adds a precomputed HA1 (lowercase hex of H(user:realm:password)) for one
    /// algorithm, keeping the account's other one. An account with only an MD5 HA1
    /// cannot answer a SHA-256 challenge, so `prefer_sha256` needs a SHA-256 HA1.
    pub fn add_ha1(
        &mut self,
        user: &str,
        algorithm: Algorithm,
        ha1_hex: &str,
        prefer_sha256: bool,
    ) {
        let account = self.accounts.entry(user.to_owned()).or_default();
        let ha1 = Some(ha1_hex.to_ascii_lowercase());
        match algorithm {
            Algorithm::Md5 => account.ha1_md5 = ha1,
            Algorithm::Sha256 => account.ha1_sha256 = ha1,
        }
        account.prefer_sha256 = prefer_sha256;
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Whether `user` (e.g. the From user of a request without credentials) should
    /// be challenged with SHA-256 first. MD5 otherwise: sipp 3.6 aborts on a
    /// SHA-256 first challenge and baresip ignores anything but MD5.
    pub fn prefers_sha256(&self, user: &str) -> bool {
        self.accounts
            .get(user)
            .is_some_and(|a| a.prefer_sha256 && a.ha1_sha256.is_some())
    }

    /// One `WWW-Authenticate` / `Proxy-Authenticate` value with a fresh nonce:
    /// `Digest realm="..", nonce="..", opaque="..", algorithm=MD5|SHA-256, qop="auth"`
    /// and `stale=true` when asked. To offer both algorithms, send the SHA-256 value
    /// first and an MD5 value as a second header (RFC 8760 §2.4).
    pub fn challenge(&self, now: SystemTime, stale: bool, prefer_sha256: bool) -> String {
        let algorithm = if prefer_sha256 {
            Algorithm::Sha256
        } else {
            Algorithm::Md5
        };
        let mut out = String::with_capacity(160 + self.realm.len());
        out.push_str("Digest realm=");
        push_quoted(&mut out, &self.realm);
        out.push_str(", nonce=\"");
        out.push_str(&self.nonce(now));
        out.push_str("\", opaque=\"");
        out.push_str(&self.opaque);
        out.push_str("\", algorithm=");
        out.push_str(algorithm.as_str());
        out.push_str(", qop=\"auth\"");
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Checks an `Authorization` / `Proxy-Authorization` value for a request with
    /// `method`. The digest is compared in constant time; the nonce is checked only
    /// after the credentials, so [`Verdict::Stale`] is given to holders of the
    /// password alone.
    ///
    /// The caller should also check that `uri` names the request's target
    /// (RFC 3261 §22.4); that comparison needs SIP URI rules this module lacks.
    pub fn verify(&self, method: &str, authorization: &str, now: SystemTime) -> Verdict {
        let malformed = |reason| Verdict::Malformed { reason };
        let forbidden = |reason| Verdict::Forbidden { reason };
        let params = match DigestParams::parse(authorization) {
            Ok(p) => p,
            Err(reason) => return malformed(reason),
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            params.get("username"),
            params.get("realm"),
            params.get("nonce"),
            params.get("uri"),
            params.get("response"),
        ) else {
            return malformed("missing username, realm, nonce, uri or response");
        };
        let algorithm = match params.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::parse(a) {
                Some(a) => a,
                None => return malformed("unsupported algorithm"),
            },
        };
        if params
            .get("userhash")
            .is_some_and(|u| u.eq_ignore_ascii_case("true"))
        {
            return malformed("userhash is not supported");
        }
        let qop = match params.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (params.get("nc"), params.get("cnonce")) {
                    (Some(nc), Some(cnonce))
                        if nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        Some((nc, cnonce))
                    }
                    _ => return malformed("qop=auth needs nc (8 hex digits) and cnonce"),
                }
            }
            Some(_) => return malformed("unsupported qop"),
        };
        if realm != self.realm {
            return forbidden("wrong realm");
        }
        let Some(account) = self.accounts.get(user) else {
            return forbidden("unknown user");
        };
        let ha1 = match algorithm {
            Algorithm::Md5 => account.ha1_md5.as_deref(),
            Algorithm::Sha256 => account.ha1_sha256.as_deref(),
        };
        let Some(ha1) = ha1 else {
            return forbidden("no credentials for this algorithm");
        };
        let expected = request_digest(algorithm, ha1, nonce, qop, method, uri);
        let given = response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return forbidden("wrong credentials");
        }
        if self.nonce_is_fresh(nonce, now) {
            Verdict::Authenticated {
                user: user.to_owned(),
            }
        } else {
            Verdict::Stale {
                user: user.to_owned(),
            }
        }
    }

    fn nonce(&self, now: SystemTime) -> String {
        let stamp = format!("{:016x}", micros_since_epoch(now));
        let mac = self.nonce_mac(&stamp);
        let mut nonce = stamp;
        nonce.push_str(&hex::encode(mac));
        nonce
    }

    fn nonce_mac(&self, stamp: &str) -> [u8; NONCE_MAC_LEN] {
        let mut out = [0u8; NONCE_MAC_LEN];
        // HMAC takes keys of any length, so new_from_slice cannot fail; an empty MAC
        // (all zeros) would only make every nonce stale, never accept a bad one.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.nonce_key) {
            mac.update(self.realm.as_bytes());
            mac.update(b":");
            mac.update(stamp.as_bytes());
            let full = mac.finalize().into_bytes();
            for (o, b) in out.iter_mut().zip(full.iter()) {
                *o = *b;
            }
        }
        out
    }

    fn nonce_is_fresh(&self, nonce: &str, now: SystemTime) -> bool {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return false;
        }
        let (Some(stamp), Some(mac_hex)) = (nonce.get(..16), nonce.get(16..)) else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        let mut mac = [0u8; NONCE_MAC_LEN];
        if hex::decode_to_slice(mac_hex, &mut mac).is_err()
            || !constant_time_eq(&mac, &self.nonce_mac(stamp))
        {
            return false;
        }
        let now = micros_since_epoch(now);
        let lifetime = duration_micros(self.nonce_lifetime);
        let skew = duration_micros(CLOCK_SKEW);
        issued <= now.saturating_add(skew) && now.saturating_sub(issued) <= lifetime
    }
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(duration_micros)
        .unwrap_or(0)
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
