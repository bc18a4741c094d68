//! The dashboard's sign-in: the token is given once (`POST /api/v1/session`) and the
//! browser keeps a session cookie, so no token sits in a URL, in the page's storage or
//! in script's reach. Sessions live in memory, keyed by the SHA-256 of their random id
//! (a look-up's timing says nothing about an id), bounded in number and in age; a
//! restart signs everyone out.
//!
//! The cookie is `HttpOnly` (script cannot read it), `SameSite=Strict` and `Path=/`. It
//! is not `Secure`: the admin listener speaks plain HTTP (loopback in the demo), and a
//! `Secure` cookie would never come back over it; if the listener gains TLS, set it.
//! SameSite keeps the cookie off requests from other sites, but every port of
//! 127.0.0.1 is the same site, so a change made with the cookie must also come from
//! our own origin ([`same_origin`]: `Sec-Fetch-Site`, else `Origin` against `Host`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::{Credential, principal_of};
use super::{ApiError, Shared};
use crate::tokens::{Principal, Role};

/// The sign-in route (the one the authentication layer lets through without a credential).
pub(super) const SESSION_PATH: &str = "/api/v1/session";
/// The cookie's name.
pub const COOKIE_NAME: &str = "dialbridge_session";
/// How long a session lasts from sign-in: a working day.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once; signing in past it ends the one closest to expiry.
pub const MAX_SESSIONS: usize = 1024;

/// The sessions of one admin listener.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    /// The token it was made with (`None`: the configured admin token).
    token: Option<i64>,
    expires: Instant,
}

impl Sessions {
    /// A new session for `principal`, signed in at `now` with `token`; returns its id.
    pub fn start(&self, principal: Principal, token: Option<i64>, now: Instant) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(soonest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            map.remove(&soonest);
        }
        let expires = now + LIFETIME;
        map.insert(
            hash(&id),
            Session {
                principal,
                token,
                expires,
            },
        );
        id
    }

    /// The principal and token of session `id`, if it is live at `now`.
    pub fn find(&self, id: &str, now: Instant) -> Option<(Principal, Option<i64>)> {
        let map = self.lock();
        map.get(&hash(id))
            .filter(|s| s.expires > now)
            .map(|s| (s.principal.clone(), s.token))
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.lock().remove(&hash(id));
    }

    /// Ends every session made with token `token` (it was revoked).
    pub fn end_token(&self, token: i64) {
        self.lock().retain(|_, s| s.token != Some(token));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Every change is one insert, remove or retain: a panic cannot leave it torn.
        self.by_hash.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id of the request's cookie, if any.
pub(super) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether a browser request comes from a page of this origin: `Sec-Fetch-Site:
/// same-origin` where the browser sends it, else an `Origin` naming our `Host`. A
/// request with neither is not a browser's cross-origin request either way, but a
/// cookie-carrying change without them is refused all the same: only browsers hold
/// the cookie.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text(ORIGIN.as_str()), text(HOST.as_str())) {
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://") == Some(host)
                || origin.strip_prefix("https://") == Some(host)
        }
        _ => false,
    }
}

/// Whether a request says it comes from another origin (a sign-in posted by another
/// site's page would sign the browser in as someone else).
fn cross_origin(headers: &HeaderMap) -> bool {
    let named = headers.contains_key("sec-fetch-site") || headers.contains_key(ORIGIN);
    named && !same_origin(headers)
}

/// The token to sign in with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    token: String,
}

/// Who the session speaks for.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SessionView {
    role: Role,
    /// The provider (operator) or tenant (tenant-admin) it is bound to.
    scope: Option<String>,
    /// Seconds it lasts from now.
    expires_in: u64,
}

/// Signed out.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SignedOut {
    signed_out: bool,
}

/// Sign in: exchange a token for a session cookie (the dashboard's way in).
///
/// The token comes in the body, or as the bearer token. The answer sets the
/// `dialbridge_session` cookie (HttpOnly, SameSite=Strict, 8 hours); a request from
/// another origin's page is refused.
#[utoipa::path(post, path = "/api/v1/session", operation_id = "sign_in",
    request_body = SignIn, security(()),
    responses((status = 200, description = "Signed in; the cookie is set", body = SessionView)))]
pub(super) async fn sign_in(
    State(state): State<Shared>,
    principal: Option<Extension<Principal>>,
    credential: Option<Extension<Credential>>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if cross_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sign in from the dashboard's own page",
        ));
    }
    let (token, principal) = match (body, principal, credential) {
        (Ok(Json(SignIn { token })), _, _) => principal_of(&state, token.trim())
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong token"))?,
        // No body: the bearer token the authentication layer let in.
        (Err(_), Some(Extension(p)), Some(Extension(Credential::Bearer(id)))) => (id, p),
        (Err(rejection), _, _) => return Err(rejection.into()),
    };
    let id = state
        .sessions
        .start(principal.clone(), token, Instant::now());
    tracing::info!(role = %principal.role(), scope = principal.scope(), "admin: signed in");
    let cookie = format!(
        "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    );
    let view = SessionView {
        role: principal.role(),
        scope: principal.scope().map(str::to_owned),
        expires_in: LIFETIME.as_secs(),
    };
    Ok((
        // The cookie must not be kept by a cache on the way back.
        [(SET_COOKIE, cookie), (CACHE_CONTROL, "no-store".to_owned())],
        Json(view),
    ))
}

/// Sign out: end the session of the cookie and clear it.
#[utoipa::path(delete, path = "/api/v1/session", operation_id = "sign_out",
    responses((status = 200, description = "Signed out", body = SignedOut)))]
pub(super) async fn sign_out(
    State(state): State<Shared>,
    credential: Option<Extension<Credential>>,
) -> impl IntoResponse {
    if let Some(Extension(Credential::Session(id))) = credential {
        state.sessions.end(&id);
    }
    let cookie = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(SET_COOKIE, cookie)], Json(SignedOut { signed_out: true }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_session_lasts_its_lifetime_and_ends_when_asked() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.start(Principal::ReadOnly, Some(3), t0);
        assert_eq!(id.len(), 64);
        assert_eq!(
            sessions.find(&id, t0 + LIFETIME - Duration::from_secs(1)),
            Some((Principal::ReadOnly, Some(3)))
        );
        assert_eq!(sessions.find(&id, t0 + LIFETIME), None);
        assert_eq!(sessions.find("nope", t0), None);
        let other = sessions.start(Principal::Admin, None, t0);
        sessions.end(&other);
        assert_eq!(sessions.find(&other, t0), None);
        sessions.end_token(3);
        assert_eq!(sessions.find(&id, t0), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_closest_to_expiry_goes_first() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.start(Principal::Admin, None, t0);
        let mut last = String::new();
        for n in 1..=MAX_SESSIONS as u64 {
            last = sessions.start(Principal::ReadOnly, None, t0 + Duration::from_millis(n));
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        assert_eq!(sessions.find(&first, t0), None);
        assert!(sessions.find(&last, t0).is_some());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; dialbridge_session=abc ; b=2")]);
        assert_eq!(cookie(&h), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "dialbridge_session=")])), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "xdialbridge_session=abc")])),
            None
        );
        assert_eq!(cookie(&headers(&[])), None);
    }

    #[test]
    fn only_our_own_pages_count_as_same_origin() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        // Another port of 127.0.0.1 is the same site, not the same origin.
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        let ours = [
            ("origin", "http://127.0.0.1:8088"),
            ("host", "127.0.0.1:8088"),
        ];
        assert!(same_origin(&headers(&ours)));
        let theirs = [
            ("origin", "http://127.0.0.1:9999"),
            ("host", "127.0.0.1:8088"),
        ];
        assert!(!same_origin(&headers(&theirs)));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8088")])));
        assert!(!cross_origin(&headers(&[("host", "127.0.0.1:8088")])));
        assert!(cross_origin(&headers(&theirs)));
    }
}
