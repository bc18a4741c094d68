//! Bearer-token authorisation (RFC 6750 §2.1) of every admin request, compared in
//! constant time so the response time says nothing about how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Shared};

/// Passes the request on if it carries `Authorization: Bearer <token>`; else 401 with
/// a JSON error and a `WWW-Authenticate: Bearer` challenge.
pub(super) async fn require_bearer(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let message = match presented {
        None => "missing bearer token: send Authorization: Bearer <admin token>",
        // An empty configured token would match an empty presented one: refuse all.
        Some(_) if state.token.is_empty() => "the admin API has no token configured",
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => "wrong bearer token",
    };
    tracing::info!(path = %request.uri().path(), "admin API: {message}");
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dialbridge\""),
    );
    response
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
}
