//! Tokens through the API (admins only): make one (its secret is answered this once),
//! list them without secrets, revoke one (its sessions end with it).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Shared, blocking};
use crate::tokens::{self, Principal, Role, TokenView};

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    /// What it is for (1 to 64 characters), shown in the list.
    name: String,
    /// `admin`, `operator`, `tenant-admin` or `read-only`.
    role: String,
    /// The provider an operator token is bound to (as the plan names it: "Telco A").
    provider: Option<String>,
    /// The tenant a tenant-admin token is bound to.
    tenant: Option<String>,
}

/// A new token: the secret is shown this once and kept only as a hash.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedToken {
    #[serde(flatten)]
    token: TokenView,
    /// Send it as `Authorization: Bearer <secret>`.
    secret: String,
}

/// Every token, oldest first (never a secret).
#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    tokens: Vec<TokenView>,
}

/// The token a `/api/v1/tokens/{id}` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TokenPath {
    /// The token's id, as the list shows it.
    #[param(value_type = i64)]
    id: String,
}

/// Make a token of a role, bound to a provider or tenant where the role wants one.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token",
    request_body = TokenRequest,
    responses((status = 201, description = "The token, with its secret", body = CreatedToken)))]
pub(super) async fn create(
    State(state): State<Shared>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(request) = body?;
    let unprocessable =
        |e: crate::Error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    let role = Role::parse(&request.role).map_err(unprocessable)?;
    let principal = Principal::new(role, request.provider.as_deref(), request.tenant.as_deref())
        .map_err(unprocessable)?;
    principal
        .check_scope(&state.router)
        .map_err(unprocessable)?;
    let store = state.cdrs.clone();
    let name = request.name;
    let made = blocking("making a token", move || {
        tokens::create(&store, &name, &principal).map_err(|e| match e {
            crate::Error::Token(_) => unprocessable(e),
            other => ApiError::internal("making a token", &other),
        })
    })
    .await?;
    let view = made.view;
    tracing::info!(id = view.id, name = %view.name, role = %view.role, scope = view.scope, "admin: token made");
    let body = CreatedToken {
        token: view,
        secret: made.secret,
    };
    // The secret must not linger in a cache on the way back.
    Ok((
        StatusCode::CREATED,
        [(CACHE_CONTROL, "no-store")],
        Json(body),
    ))
}

/// List tokens (never a secret), revoked ones included.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens",
    responses((status = 200, description = "Tokens", body = TokenList)))]
pub(super) async fn list(State(state): State<Shared>) -> Result<Json<TokenList>, ApiError> {
    let store = state.cdrs.clone();
    let tokens = blocking("listing tokens", move || {
        tokens::list(&store).map_err(|e| ApiError::internal("listing tokens", &e))
    })
    .await?;
    Ok(Json(TokenList { tokens }))
}

/// Revoke a token: it is refused from the next request on, and its sessions end.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token",
    params(TokenPath),
    responses((status = 200, description = "The revoked token", body = TokenView)))]
pub(super) async fn revoke(
    State(state): State<Shared>,
    path: Result<Path<TokenPath>, PathRejection>,
) -> Result<Json<TokenView>, ApiError> {
    let Path(TokenPath { id }) = path?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id (a whole number)")))?;
    let store = state.cdrs.clone();
    let view = blocking("revoking a token", move || {
        tokens::revoke(&store, id).map_err(|e| match e {
            crate::Error::Token(m) => ApiError::not_found(m),
            other => ApiError::internal("revoking a token", &other),
        })
    })
    .await?;
    state.sessions.end_token(id);
    tracing::info!(id, name = %view.name, "admin: token revoked");
    Ok(Json(view))
}
