//! Live conferences: who is in which conference, and an admin's mute, kick, lock and
//! recording.
//! The API reaches the conferences through [`LiveCalls`], which the server implements
//! over its rooms; the routes here only parse, call and answer. The views they answer
//! with belong to the meetings (`meeting_view.rs`), not to the API.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use dialbridge_conference::room::MemberId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Shared};
use crate::meeting_view::{ConferenceView, LiveError, RecordingView};

/// A boxed future, so [`LiveCalls`] can be a trait object.
pub type LiveFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The conferences in progress, as the admin API needs them.
pub trait LiveCalls: Send + Sync + 'static {
    /// Every conference with at least one caller in it (or in its lobby).
    fn list_conferences(&self) -> LiveFuture<'_, Vec<ConferenceView>>;
    /// Mutes or unmutes a participant (their audio is no longer mixed in).
    fn mute(&self, participant: MemberId, muted: bool) -> LiveFuture<'_, Result<(), LiveError>>;
    /// Ends a participant's call (the bridge sends BYE).
    fn kick(&self, participant: MemberId) -> LiveFuture<'_, Result<(), LiveError>>;
    /// Locks a conference (nobody new gets in) or unlocks it.
    fn lock(
        &self,
        conference: ConferenceKey,
        locked: bool,
    ) -> LiveFuture<'_, Result<(), LiveError>>;
    /// Starts (`on`) or stops recording a conference in progress.
    fn record(
        &self,
        conference: ConferenceKey,
        on: bool,
    ) -> LiveFuture<'_, Result<RecordingView, LiveError>> {
        let _ = (conference, on);
        Box::pin(async { Err(LiveError::Unavailable("recording is not available".into())) })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Mute {
    muted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Lock {
    locked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Record {
    recording: bool,
}

/// `GET /api/v1/conferences`.
pub(super) async fn list(State(state): State<Shared>) -> Json<Value> {
    let conferences = state.live.list_conferences().await;
    Json(json!({ "conferences": conferences }))
}

/// `POST /api/v1/participants/{id}/mute {"muted": bool}`.
pub(super) async fn mute(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Mute>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = participant(path?)?;
    let Json(Mute { muted }) = body?;
    state.live.mute(id, muted).await.map_err(live_error)?;
    tracing::info!(participant = id.0, muted, "admin: participant muted");
    Ok(Json(json!({ "id": id.0, "muted": muted })))
}

/// `POST /api/v1/participants/{id}/kick`.
pub(super) async fn kick(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = participant(path?)?;
    state.live.kick(id).await.map_err(live_error)?;
    tracing::info!(participant = id.0, "admin: participant kicked");
    Ok(Json(json!({ "id": id.0, "kicked": true })))
}

/// `POST /api/v1/conferences/{tenant}/{id}/lock {"locked": bool}`.
pub(super) async fn lock(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Lock>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((tenant, id)) = path?;
    let conference_id = ConferenceId::parse(&id).map_err(|_| {
        ApiError::bad_request(format!("{id:?} is not a conference ID (6 to 12 digits)"))
    })?;
    let Json(Lock { locked }) = body?;
    let key = ConferenceKey {
        tenant: TenantId::new(tenant.clone()),
        id: conference_id,
    };
    state.live.lock(key, locked).await.map_err(live_error)?;
    tracing::info!(%tenant, conference = %id, locked, "admin: conference lock set");
    Ok(Json(
        json!({ "tenant": tenant, "conference_id": id, "locked": locked }),
    ))
}

/// `POST /api/v1/conferences/{tenant}/{id}/recording {"recording": bool}`: starts or
/// stops recording the meeting's mix to a WAV file under `[conference] recordings_dir`.
pub(super) async fn record(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Record>, JsonRejection>,
) -> Result<Json<RecordingView>, ApiError> {
    let Path((tenant, id)) = path?;
    let conference_id = ConferenceId::parse(&id).map_err(|_| {
        ApiError::bad_request(format!("{id:?} is not a conference ID (6 to 12 digits)"))
    })?;
    let Json(Record { recording }) = body?;
    let key = ConferenceKey {
        tenant: TenantId::new(tenant.clone()),
        id: conference_id,
    };
    let view = state
        .live
        .record(key, recording)
        .await
        .map_err(live_error)?;
    tracing::info!(%tenant, conference = %id, recording, file = %view.file, "admin: conference recording set");
    Ok(Json(view))
}

fn participant(Path(text): Path<String>) -> Result<MemberId, ApiError> {
    text.parse::<u64>().map(MemberId).map_err(|_| {
        ApiError::bad_request(format!("{text:?} is not a participant id (a whole number)"))
    })
}

fn live_error(e: LiveError) -> ApiError {
    let status = match e {
        LiveError::NoSuchParticipant(_) | LiveError::NoSuchConference { .. } => {
            StatusCode::NOT_FOUND
        }
        LiveError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        LiveError::Conflict(_) => StatusCode::CONFLICT,
        LiveError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}
