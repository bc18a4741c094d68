//! The registrar/proxy side: challenges with expiring MAC'd nonces and checks
//! `Authorization` values (RFC 2617 §3.2, RFC 7616 §3.4, §5.12, RFC 8760): the digest
//! `uri` against the Request-URI (RFC 3261 §19.1.4), nonce counts against replay, and
//! failed attempts against lock-outs, through an [`AuthState`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::params::{DigestParams, push_quoted};
use super::state::{AuthState, Lockout, NonceUse, Subject};
use super::{Algorithm, constant_time_eq, request_digest};
use crate::message::uri::{Host, Uri};

/// A nonce may claim to be this much younger than our clock (another node's clock).
const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Bytes of HMAC-SHA-256 kept in a nonce: 128 bits are ample for a 5-minute token.
const NONCE_MAC_LEN: usize = 16;
/// Random bytes in a nonce, so two challenges of the same microsecond differ: a nonce is
/// the key of its replay record, and must be one client's alone.
const NONCE_SALT_LEN: usize = 8;
/// Nonce text: 16 hex digits of microseconds since the epoch, the salt in hex, then the
/// MAC of both in hex.
const NONCE_LEN: usize = 16 + 2 * NONCE_SALT_LEN + 2 * NONCE_MAC_LEN;
/// Where the MAC starts in a nonce.
const NONCE_MAC_AT: usize = 16 + 2 * NONCE_SALT_LEN;

/// A request's credentials and what they must match. Its Debug leaves the
/// `Authorization` value out (it holds the response and the nonce).
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The Request-URI as received: the digest `uri` must name it.
    pub request_uri: &'a str,
    /// The `Authorization` / `Proxy-Authorization` value.
    pub authorization: &'a str,
    /// Where the request came from (the socket's peer, never a header).
    pub source: IpAddr,
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("method", &self.method)
            .field("request_uri", &self.request_uri)
            .field("authorization", &"***")
            .field("source", &self.source)
            .finish()
    }
}

/// The outcome of [`Authenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are right and the nonce is ours, fresh and not used with this
    /// count before.
    Authenticated {
        /// The account.
        user: String,
    },
    /// The credentials are right but the nonce cannot be accepted: challenge again with
    /// `stale=true` (RFC 7616 §3.3) so the client retries without asking its user.
    Stale {
        /// The account, to pick the algorithm of the new challenge.
        user: String,
        /// Expired, not ours, or already used.
        nonce: StaleNonce,
    },
    /// A failed attempt, counted against the source and (for an account we have) the
    /// user. [`Failure::WrongUri`] is answered 400, the others 403.
    Failed {
        /// What was wrong (never a secret).
        failure: Failure,
        /// The lock-outs this failure started (source, user, both or neither).
        lockouts: Vec<Lockout>,
    },
    /// The source or the user is locked out: answer 403 without a challenge. No hash
    /// was computed.
    LockedOut(Lockout),
    /// The header does not parse or asks for what we do not do: answer 400, or
    /// challenge again. Not counted: no password was tried.
    Malformed {
        /// Why, for logs.
        reason: &'static str,
    },
}

/// Why a nonce that came with the right credentials is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleNonce {
    /// Older than the nonce lifetime, from the future, or not made with our secret (a
    /// restart with another secret, another deployment).
    Expired,
    /// Used before with this nonce count or a higher one, or, without qop, at all.
    Replayed,
}

impl StaleNonce {
    /// For logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleNonce::Expired => "expired",
            StaleNonce::Replayed => "replayed",
        }
    }
}

/// What was wrong with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The digest `uri` names another resource than the Request-URI (a captured header
    /// replayed towards another number, RFC 7616 §3.4.6).
    WrongUri,
    /// Another realm than ours.
    WrongRealm,
    /// No such account.
    UnknownUser,
    /// The account has no HA1 for the algorithm used.
    NoCredentialsForAlgorithm,
    /// The response does not match: wrong password (or a tampered header).
    WrongCredentials,
}

impl Failure {
    /// Every failure, for metrics.
    pub const ALL: [Failure; 5] = [
        Failure::WrongUri,
        Failure::WrongRealm,
        Failure::UnknownUser,
        Failure::NoCredentialsForAlgorithm,
        Failure::WrongCredentials,
    ];

    /// For logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::WrongUri => "wrong_uri",
            Failure::WrongRealm => "wrong_realm",
            Failure::UnknownUser => "unknown_user",
            Failure::NoCredentialsForAlgorithm => "no_credentials_for_algorithm",
            Failure::WrongCredentials => "wrong_credentials",
        }
    }
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
/// Nonces carry their issue time and an HMAC of it under the nonce secret, so a
/// challenge costs no state and any node keyed alike can tell a nonce of ours, and its
/// age, without a look-up. What must be remembered — the nonce counts used, the
/// failures and lock-outs — lives in the [`AuthState`] passed to [`Self::verify`], and
/// only nonces that pass the MAC with valid credentials ever reach it.
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
    /// MAC ([`AuthState::nonce_secret`]: nodes behind one load balancer need the same).
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

    /// How long a nonce is accepted after it was issued.
    pub fn nonce_lifetime(&self) -> Duration {
        self.nonce_lifetime
    }

    /// The lock-out of `source` or of `user` at `now`, if any: asked before
    /// challenging a request without credentials, so a locked-out source costs no nonce.
    pub fn lockout(
        &self,
        state: &mut dyn AuthState,
        source: IpAddr,
        user: Option<&str>,
        now: SystemTime,
    ) -> Option<Lockout> {
        let source = Subject::Source(source);
        let user = user.map(|u| Subject::User(u.to_owned()));
        std::iter::once(source).chain(user).find_map(|subject| {
            state
                .locked_until(&subject, now)
                .map(|until| Lockout { subject, until })
        })
    }

    /// Checks the credentials of `attempt`, in this order: the header's syntax (not
    /// counted), the lock-outs of the source and the user (before any hash is
    /// computed), the digest `uri` against the Request-URI, realm, user and the digest
    /// in constant time (each failure counted in `state`), then the nonce: its MAC and
    /// age, then its count. The nonce is looked at only after the credentials, so
    /// [`Verdict::Stale`] is given to holders of the password alone.
    pub fn verify(
        &self,
        state: &mut dyn AuthState,
        attempt: &Attempt<'_>,
        now: SystemTime,
    ) -> Verdict {
        let malformed = |reason| Verdict::Malformed { reason };
        let params = match DigestParams::parse(attempt.authorization) {
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
                    (Some(nc), Some(cnonce)) => match parse_nc(nc) {
                        Some(count) => Some((nc, cnonce, count)),
                        None => return malformed("qop=auth needs nc (8 hex digits) and cnonce"),
                    },
                    _ => return malformed("qop=auth needs nc (8 hex digits) and cnonce"),
                }
            }
            Some(_) => return malformed("unsupported qop"),
        };
        if let Some(locked) = self.lockout(state, attempt.source, Some(user), now) {
            return Verdict::LockedOut(locked);
        }
        let account = self.accounts.get(user);
        let fail = |state: &mut dyn AuthState, failure| {
            let mut subjects = vec![Subject::Source(attempt.source)];
            // Unknown names are not tracked: guessing names must not fill the table.
            if account.is_some() {
                subjects.push(Subject::User(user.to_owned()));
            }
            let lockouts = subjects
                .into_iter()
                .filter_map(|subject| {
                    state
                        .record_failure(&subject, now)
                        .map(|until| Lockout { subject, until })
                })
                .collect();
            Verdict::Failed { failure, lockouts }
        };
        if !same_resource(uri, attempt.request_uri) {
            return fail(state, Failure::WrongUri);
        }
        if realm != self.realm {
            return fail(state, Failure::WrongRealm);
        }
        let Some(account) = account else {
            return fail(state, Failure::UnknownUser);
        };
        let ha1 = match algorithm {
            Algorithm::Md5 => account.ha1_md5.as_deref(),
            Algorithm::Sha256 => account.ha1_sha256.as_deref(),
        };
        let Some(ha1) = ha1 else {
            return fail(state, Failure::NoCredentialsForAlgorithm);
        };
        let digest_qop = qop.map(|(nc, cnonce, _)| (nc, cnonce));
        let expected = request_digest(algorithm, ha1, nonce, digest_qop, attempt.method, uri);
        let given = response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return fail(state, Failure::WrongCredentials);
        }
        let stale = |nonce| Verdict::Stale {
            user: user.to_owned(),
            nonce,
        };
        let Some(issued) = self.nonce_issued(nonce, now) else {
            return stale(StaleNonce::Expired);
        };
        // Without qop there is no count: such a nonce is good once.
        let count = qop.map_or(u32::MAX, |(_, _, count)| count);
        // No overflow for a lifetime from a validated configuration; a nonce that cannot
        // expire would only be remembered until the cap forgets it.
        let expires = issued.checked_add(self.nonce_lifetime).unwrap_or(issued);
        match state.use_nonce(nonce, issued, expires, count, now) {
            NonceUse::Fresh => Verdict::Authenticated {
                user: user.to_owned(),
            },
            NonceUse::Replayed => stale(StaleNonce::Replayed),
        }
    }

    fn nonce(&self, now: SystemTime) -> String {
        let mut nonce = format!("{:016x}", micros_since_epoch(now));
        nonce.push_str(&hex::encode(rand::random::<[u8; NONCE_SALT_LEN]>()));
        let mac = self.nonce_mac(&nonce);
        nonce.push_str(&hex::encode(mac));
        nonce
    }

    /// The MAC of a nonce's time and salt (`signed`), under the realm.
    fn nonce_mac(&self, signed: &str) -> [u8; NONCE_MAC_LEN] {
        let mut out = [0u8; NONCE_MAC_LEN];
        // HMAC takes keys of any length, so new_from_slice cannot fail; an empty MAC
        // (all zeros) would only make every nonce stale, never accept a bad one.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.nonce_key) {
            mac.update(self.realm.as_bytes());
            mac.update(b":");
            mac.update(signed.as_bytes());
            let full = mac.finalize().into_bytes();
            for (o, b) in out.iter_mut().zip(full.iter()) {
                *o = *b;
            }
        }
        out
    }

    /// When `nonce` was issued, if it is ours (the MAC fits) and within its lifetime.
    fn nonce_issued(&self, nonce: &str, now: SystemTime) -> Option<SystemTime> {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return None;
        }
        let (signed, mac_hex) = (nonce.get(..NONCE_MAC_AT)?, nonce.get(NONCE_MAC_AT..)?);
        let issued = u64::from_str_radix(signed.get(..16)?, 16).ok()?;
        let mut mac = [0u8; NONCE_MAC_LEN];
        if hex::decode_to_slice(mac_hex, &mut mac).is_err()
            || !constant_time_eq(&mac, &self.nonce_mac(signed))
        {
            return None;
        }
        let now = micros_since_epoch(now);
        let lifetime = duration_micros(self.nonce_lifetime);
        let skew = duration_micros(CLOCK_SKEW);
        let fresh = issued <= now.saturating_add(skew) && now.saturating_sub(issued) <= lifetime;
        fresh.then(|| UNIX_EPOCH + Duration::from_micros(issued))
    }
}

/// Whether the digest `uri` names the same resource as the Request-URI, by RFC 3261
/// §19.1.4 loosely: scheme, user (case-sensitive), password, host (case-insensitive)
/// and port must be equal, and the parameters §19.1.4 says must match when either URI
/// has one (`transport`, `user`, `ttl`, `method`, `maddr`); other parameters and
/// headers are ignored. A `tel:` number is compared without visual separators.
fn same_resource(digest_uri: &str, request_uri: &str) -> bool {
    // The same text names the same resource, whatever its scheme.
    if digest_uri == request_uri {
        return true;
    }
    let (Ok(a), Ok(b)) = (Uri::parse(digest_uri), Uri::parse(request_uri)) else {
        return false;
    };
    match (&a, &b) {
        (Uri::Sip(x), Uri::Sip(y)) => {
            let host_eq = match (&x.host, &y.host) {
                (Host::Name(p), Host::Name(q)) => p.eq_ignore_ascii_case(q),
                (Host::Ip(p), Host::Ip(q)) => p == q,
                _ => false,
            };
            x.secure == y.secure
                && x.user == y.user
                && x.password == y.password
                && host_eq
                && x.port == y.port
                && ["transport", "user", "ttl", "method", "maddr"]
                    .iter()
                    .all(|name| {
                        let value = |u: &Uri| u.param(name).map(|v| v.map(str::to_ascii_lowercase));
                        value(&a) == value(&b)
                    })
        }
        (Uri::Tel(x), Uri::Tel(y)) => {
            let digits = |n: &str| -> String {
                n.chars()
                    .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
                    .collect()
            };
            digits(&x.number).eq_ignore_ascii_case(&digits(&y.number))
        }
        (Uri::Other(x), Uri::Other(y)) => x == y,
        _ => false,
    }
}

/// The nonce count: exactly 8 hex digits (RFC 7616 §3.4).
fn parse_nc(nc: &str) -> Option<u32> {
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(nc, 16).ok()
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(duration_micros)
        .unwrap_or(0)
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
