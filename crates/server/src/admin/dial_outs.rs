//! Dial-outs through the API: an administrator (or the tenant's) asks a conference in
//! progress to call a number, as a leader's `*9` would, and follows it. The answer is
//! 202 with the dial-out's id once it is placed (ringing, answer and the rest follow
//! on `GET`), or a 4xx naming why it was not.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::live::ConferencePath;
use super::{ApiError, Shared};
use crate::dial_out::{DialOutRefusal, DialOutView};
use crate::tokens::Principal;

/// The number to call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DialOutBody {
    /// E.164, `+` and country code first: `+14255557000`.
    pub(super) number: String,
}

/// A dial-out placed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DialOutPlaced {
    id: u64,
    /// Where it is now (`calling` at first).
    dial_out: Option<DialOutView>,
}

/// A conference's dial-outs.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DialOutList {
    dial_outs: Vec<DialOutView>,
}

/// The dial-out a `/api/v1/dial-outs/{id}` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct DialOutPath {
    /// The id `POST .../dial-out` answered with.
    #[param(value_type = u64)]
    id: String,
}

/// Call a number from a conference in progress and invite it in.
///
/// The number is routed over the trunks the tenant's licence and dial-out route allow
/// (down trunks skipped, the next tried on failure) and must be funded. The called
/// party hears an invitation and keys 1 to join as a participant.
#[utoipa::path(post, path = "/api/v1/conferences/{tenant}/{id}/dial-out", operation_id = "dial_out",
    params(ConferencePath), request_body = DialOutBody,
    responses((status = 202, description = "Placed", body = DialOutPlaced)))]
pub(super) async fn dial_out(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ConferencePath>, PathRejection>,
    body: Result<Json<DialOutBody>, JsonRejection>,
) -> Result<(StatusCode, Json<DialOutPlaced>), ApiError> {
    let Path(ConferencePath { tenant, id }) = path?;
    let not_in_progress = || {
        ApiError::not_found(format!(
            "no conference {id} is in progress in tenant {tenant}"
        ))
    };
    if !who.sees_tenant(&tenant) {
        return Err(not_in_progress());
    }
    let conference_id = ConferenceId::parse(&id).map_err(|_| {
        ApiError::bad_request(format!("{id:?} is not a conference ID (6 to 12 digits)"))
    })?;
    let Json(DialOutBody { number }) = body?;
    if !number.starts_with('+') {
        return Err(ApiError::bad_request(format!(
            "{number:?} is not an E.164 number (+ and the country code first)"
        )));
    }
    let key = ConferenceKey {
        tenant: TenantId::new(tenant.clone()),
        id: conference_id,
    };
    let placed = state
        .live
        .dial_out(key, number.clone())
        .await
        .map_err(refusal_error)?;
    tracing::info!(%tenant, conference = %id, dial_out = placed, "admin: dial-out placed");
    let view = state
        .live
        .dial_outs(Some((&tenant, &id)))
        .into_iter()
        .find(|v| v.id == placed);
    Ok((
        StatusCode::ACCEPTED,
        Json(DialOutPlaced {
            id: placed,
            dial_out: view,
        }),
    ))
}

/// A conference's dial-outs, in progress and recently finished.
#[utoipa::path(get, path = "/api/v1/conferences/{tenant}/{id}/dial-outs", operation_id = "list_dial_outs",
    params(ConferencePath),
    responses((status = 200, description = "Dial-outs", body = DialOutList)))]
pub(super) async fn list(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ConferencePath>, PathRejection>,
) -> Result<Json<DialOutList>, ApiError> {
    let Path(ConferencePath { tenant, id }) = path?;
    if !who.sees_tenant(&tenant) {
        return Err(ApiError::not_found(format!(
            "no conference {id} in tenant {tenant}"
        )));
    }
    let dial_outs = state.live.dial_outs(Some((&tenant, &id)));
    Ok(Json(DialOutList { dial_outs }))
}

/// One dial-out.
#[utoipa::path(get, path = "/api/v1/dial-outs/{id}", operation_id = "show_dial_out", params(DialOutPath),
    responses((status = 200, description = "The dial-out", body = DialOutView)))]
pub(super) async fn show(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<DialOutPath>, PathRejection>,
) -> Result<Json<DialOutView>, ApiError> {
    let Path(DialOutPath { id }) = path?;
    let wanted = id
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a dial-out id")))?;
    state
        .live
        .dial_outs(None)
        .into_iter()
        .find(|v| v.id == wanted && who.sees_tenant(&v.tenant))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no dial-out {wanted}")))
}

/// The API's answer to a refused dial-out: what the caller can do about it decides the
/// status.
fn refusal_error(refusal: DialOutRefusal) -> ApiError {
    let status = match &refusal {
        DialOutRefusal::NotANumber(_) => StatusCode::BAD_REQUEST,
        DialOutRefusal::NoMeeting(_) => StatusCode::NOT_FOUND,
        // The tenant's route or licence allows no trunk: a configuration matter.
        DialOutRefusal::NoRoute(_) => StatusCode::FORBIDDEN,
        // No credits and no minutes: top up, then try again.
        DialOutRefusal::NotFunded(_) => StatusCode::PAYMENT_REQUIRED,
        DialOutRefusal::NoTrunkUp(_)
        | DialOutRefusal::NoCapacity(_)
        | DialOutRefusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, refusal.to_string())
}
