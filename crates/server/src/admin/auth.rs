//! Who is calling, and whether their role may use the route. Every request but the
//! sign-in carries a credential: `Authorization: Bearer <token>` (RFC 6750 §2.1) or the
//! dashboard's session cookie. The configured `[admin] token` is compared in constant
//! time and speaks for an admin; other tokens are looked up by hash in the durable file
//! (`crate::tokens`), so one revoked by `dialbridge token revoke` is refused at once.
//!
//! Authentication is one layer around the whole API ([`authenticate`]: 401); each route
//! then declares its [`Access`] in `super::routes` and [`require`] refuses a role that
//! may never use it (403). What a permitted role sees within its tenant or provider is
//! the handler's business, through the [`Principal`] put in the request's extensions.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session::{self, SESSION_PATH};
use super::{ApiError, Shared};
use crate::tokens::{self, Principal, Role};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Admins only.
    Admin,
    /// Admins and these roles, each seeing only its own (the handler narrows).
    Also(&'static [Role]),
    /// Every principal: it holds no data (the API's own description, signing out).
    Anyone,
    /// No credential needed: the route checks the one it is given (signing in).
    Open,
}

/// Whether `role` may use a route of `access`.
pub(super) fn permits(access: Access, role: Role) -> bool {
    match access {
        Access::Open | Access::Anyone => true,
        Access::Admin => role == Role::Admin,
        Access::Also(roles) => role == Role::Admin || roles.contains(&role),
    }
}

/// How the caller proved who they are, kept in the request's extensions beside the
/// [`Principal`]: signing out knows which session to end, and a long-lived answer (the
/// event stream) can tell when its credential stops being good.
#[derive(Debug, Clone)]
pub(super) enum Credential {
    /// A bearer token: a stored one's id, or `None` for the configured admin token.
    Bearer(Option<i64>),
    Session(String),
}

impl Credential {
    /// Whether it would still be let in (not revoked, not signed out, not expired).
    pub(super) async fn still_good(&self, state: &Shared) -> bool {
        let token = match self {
            Credential::Bearer(token) => *token,
            Credential::Session(id) => match state.sessions.find(id, std::time::Instant::now()) {
                Some((_, token)) => token,
                None => return false,
            },
        };
        let Some(id) = token else {
            return true;
        };
        let store = state.cdrs.clone();
        // A store that cannot answer keeps the stream: the next request is checked anyway.
        tokio::task::spawn_blocking(move || tokens::active(&store, id).unwrap_or(true))
            .await
            .unwrap_or(true)
    }
}

/// Puts the caller's [`Principal`] in the request's extensions, or answers 401 with a
/// JSON error and a `WWW-Authenticate: Bearer` challenge.
pub(super) async fn authenticate(
    State(state): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let cookie = session::cookie(headers).map(str::to_owned);
    // The cookie goes with every request to this host from the browser, whoever made the
    // page: a change must come from our own page (see `session::same_origin`).
    let from_our_page = is_safe(request.method()) || session::same_origin(headers);
    // Signing in proves itself with the token in its body, so it needs no credential,
    // and a stale cookie (a restart forgets every session) must not stand in its way.
    let signing_in = request.method() == Method::POST && request.uri().path() == SESSION_PATH;
    let outcome = match (bearer, cookie) {
        (Some(token), _) => by_token(&state, &token)
            .await
            .map(|(id, p)| (p, Credential::Bearer(id))),
        (None, _) if signing_in => return next.run(request).await,
        (None, Some(id)) => by_session(&state, &id, from_our_page)
            .await
            .map(|p| (p, Credential::Session(id))),
        (None, None) => Err(Refusal::Unauthorised(
            "missing bearer token: send Authorization: Bearer <token>, or sign in at /dashboard",
        )),
    };
    match outcome {
        Ok((principal, credential)) => {
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(credential);
            next.run(request).await
        }
        Err(refusal) => {
            // The path and why, never what was presented.
            tracing::info!(path = %request.uri().path(), "admin API: {}", refusal.message());
            refusal.into_response()
        }
    }
}

/// Refuses (403) a caller whose role may never use a route of `access`.
pub(super) async fn require(access: Access, request: Request, next: Next) -> Response {
    if access == Access::Open {
        return next.run(request).await;
    }
    let Some(role) = request.extensions().get::<Principal>().map(Principal::role) else {
        // The authentication layer runs first; reaching here without it is our bug.
        return ApiError::new(StatusCode::UNAUTHORIZED, "not signed in").into_response();
    };
    if permits(access, role) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "a {role} token may not use {} {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

/// Who `token` speaks for: the configured admin token, or one made through the API.
pub(super) async fn principal_of(
    state: &Shared,
    token: &str,
) -> Result<Option<(Option<i64>, Principal)>, ApiError> {
    // An empty configured token would match an empty presented one: it matches nothing.
    if !state.token.is_empty() && constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Ok(Some((None, Principal::Admin)));
    }
    let store = state.cdrs.clone();
    let token = token.to_owned();
    let found = super::blocking("checking a token", move || {
        tokens::recognise(&store, &token).map_err(|e| ApiError::internal("checking a token", &e))
    })
    .await?;
    Ok(found.map(|(id, p)| (Some(id), p)))
}

async fn by_token(state: &Shared, token: &str) -> Result<(Option<i64>, Principal), Refusal> {
    match principal_of(state, token).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(Refusal::Unauthorised("wrong bearer token")),
        Err(e) => Err(Refusal::Error(e)),
    }
}

async fn by_session(state: &Shared, id: &str, from_our_page: bool) -> Result<Principal, Refusal> {
    let Some((principal, token)) = state.sessions.find(id, std::time::Instant::now()) else {
        return Err(Refusal::Unauthorised(
            "no such session (expired or signed out): sign in again",
        ));
    };
    if !from_our_page {
        return Err(Refusal::Error(ApiError::new(
            StatusCode::FORBIDDEN,
            "a signed-in change must come from the dashboard's own page (Origin)",
        )));
    }
    if let Some(id) = token {
        let store = state.cdrs.clone();
        let active = super::blocking("checking a token", move || {
            tokens::active(&store, id).map_err(|e| ApiError::internal("checking a token", &e))
        })
        .await
        .map_err(Refusal::Error)?;
        if !active {
            return Err(Refusal::Unauthorised(
                "the session's token was revoked: sign in again",
            ));
        }
    }
    Ok(principal)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

enum Refusal {
    Unauthorised(&'static str),
    Error(ApiError),
}

impl Refusal {
    fn message(&self) -> &str {
        match self {
            Refusal::Unauthorised(m) => m,
            Refusal::Error(e) => e.message(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error(e) => e.into_response(),
            Refusal::Unauthorised(message) => {
                let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"dialbridge\""),
                );
                response
            }
        }
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235 §2.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `a == b`, in a time that depends only on the lengths (`subtle`): where a
/// guessed token first differs is never told; its length is not a secret worth hiding.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"demo-admin-token", b"demo-admin-token"));
        assert!(!constant_time_eq(b"demo-admin-tokem", b"demo-admin-token"));
        assert!(!constant_time_eq(
            b"demo-admin-token-and-more",
            b"demo-admin-token"
        ));
        assert!(!constant_time_eq(b"demo", b"demo-admin-token"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn admins_use_everything_and_the_others_only_what_is_opened_to_them() {
        for role in Role::ALL {
            assert!(permits(Access::Anyone, role));
            assert!(permits(Access::Open, role));
            assert_eq!(permits(Access::Admin, role), role == Role::Admin);
            assert_eq!(
                permits(Access::Also(&[Role::TenantAdmin]), role),
                matches!(role, Role::Admin | Role::TenantAdmin)
            );
        }
        assert!(!permits(Access::Also(&[]), Role::ReadOnly));
    }
}
