//! Live conferences: who is in which conference, and an admin's mute, kick, lock and
//! recording. A tenant admin sees and controls its own tenant's conferences only;
//! another's participant or conference is "not in progress", whether it is or not.
//! The API reaches the conferences through [`LiveCalls`], which the server implements
//! over its rooms; the routes here only parse, call and answer. The views they answer
//! with belong to the meetings (`meeting_view.rs`), not to the API.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, TenantId};
use dialbridge_conference::room::MemberId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Shared};
use crate::dial_out::{DialOutId, DialOutRefusal, DialOutView};
use crate::meeting_view::{ConferenceView, LiveError, RecordingView};
use crate::tokens::Principal;

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
    /// Asks a conference in progress to call `number` and invite it in.
    fn dial_out(
        &self,
        conference: ConferenceKey,
        number: String,
    ) -> LiveFuture<'_, Result<DialOutId, DialOutRefusal>> {
        let _ = (conference, number);
        Box::pin(async { Err(DialOutRefusal::ShuttingDown) })
    }
    /// The dial-outs of one conference (or all), in progress and recently finished.
    fn dial_outs(&self, conference: Option<(&str, &str)>) -> Vec<DialOutView> {
        let _ = conference;
        Vec::new()
    }
}

/// Whether a participant is to be muted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Mute {
    muted: bool,
}

/// Whether a conference is to be locked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Lock {
    locked: bool,
}

/// Whether a conference is to be recorded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Record {
    recording: bool,
}

/// The participant a `/api/v1/participants/{id}/...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ParticipantPath {
    /// The participant's id, as GET /api/v1/conferences lists it.
    // Read as text so a bad one gets our 400 message rather than axum's.
    #[param(value_type = u64)]
    id: String,
}

/// The conference a `/api/v1/conferences/{tenant}/{id}/...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ConferencePath {
    /// The tenant.
    pub(super) tenant: String,
    /// The conference ID (6 to 12 digits).
    pub(super) id: String,
}

/// The conferences in progress.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConferenceList {
    conferences: Vec<ConferenceView>,
}

/// A participant muted or unmuted.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MuteResult {
    id: u64,
    muted: bool,
}

/// A participant whose call was ended.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KickResult {
    id: u64,
    kicked: bool,
}

/// A conference locked or unlocked.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LockResult {
    tenant: String,
    conference_id: String,
    locked: bool,
}

/// Conferences in progress and their participants.
#[utoipa::path(get, path = "/api/v1/conferences", operation_id = "list_conferences",
    responses((status = 200, description = "Conferences", body = ConferenceList)))]
pub(super) async fn list(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
) -> Json<ConferenceList> {
    let mut conferences = state.live.list_conferences().await;
    conferences.retain(|c| who.sees_tenant(&c.tenant));
    Json(ConferenceList { conferences })
}

/// Mute or unmute a participant.
#[utoipa::path(post, path = "/api/v1/participants/{id}/mute", params(ParticipantPath),
    request_body = Mute,
    responses((status = 200, description = "Done", body = MuteResult)))]
pub(super) async fn mute(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ParticipantPath>, PathRejection>,
    body: Result<Json<Mute>, JsonRejection>,
) -> Result<Json<MuteResult>, ApiError> {
    let id = participant(path?)?;
    participant_in_scope(&state, &who, id).await?;
    let Json(Mute { muted }) = body?;
    state.live.mute(id, muted).await.map_err(live_error)?;
    tracing::info!(participant = id.0, muted, "admin: participant muted");
    Ok(Json(MuteResult { id: id.0, muted }))
}

/// End a participant's call.
#[utoipa::path(post, path = "/api/v1/participants/{id}/kick", params(ParticipantPath),
    responses((status = 200, description = "Done", body = KickResult)))]
pub(super) async fn kick(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ParticipantPath>, PathRejection>,
) -> Result<Json<KickResult>, ApiError> {
    let id = participant(path?)?;
    participant_in_scope(&state, &who, id).await?;
    state.live.kick(id).await.map_err(live_error)?;
    tracing::info!(participant = id.0, "admin: participant kicked");
    Ok(Json(KickResult {
        id: id.0,
        kicked: true,
    }))
}

/// Lock or unlock a conference.
#[utoipa::path(post, path = "/api/v1/conferences/{tenant}/{id}/lock", params(ConferencePath),
    request_body = Lock,
    responses((status = 200, description = "Done", body = LockResult)))]
pub(super) async fn lock(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ConferencePath>, PathRejection>,
    body: Result<Json<Lock>, JsonRejection>,
) -> Result<Json<LockResult>, ApiError> {
    let Path(ConferencePath { tenant, id }) = path?;
    if !who.sees_tenant(&tenant) {
        return Err(live_error(LiveError::NoSuchConference { tenant, id }));
    }
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
    Ok(Json(LockResult {
        tenant,
        conference_id: id,
        locked,
    }))
}

/// Start or stop recording a conference in progress.
///
/// Its full mix, 16 kHz mono WAV, under the configured recordings directory
/// (`[conference] recordings_dir`); 409 when it is already, or not, being recorded.
#[utoipa::path(post, path = "/api/v1/conferences/{tenant}/{id}/recording",
    params(ConferencePath), request_body = Record,
    responses((status = 200, description = "The recording", body = RecordingView)))]
pub(super) async fn record(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<ConferencePath>, PathRejection>,
    body: Result<Json<Record>, JsonRejection>,
) -> Result<Json<RecordingView>, ApiError> {
    let Path(ConferencePath { tenant, id }) = path?;
    if !who.sees_tenant(&tenant) {
        return Err(live_error(LiveError::NoSuchConference { tenant, id }));
    }
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

/// Refuses a participant of another tenant's conference as if it were not there.
async fn participant_in_scope(
    state: &Shared,
    who: &Principal,
    id: MemberId,
) -> Result<(), ApiError> {
    if *who == Principal::Admin {
        return Ok(());
    }
    let conferences = state.live.list_conferences().await;
    let visible = conferences
        .iter()
        .filter(|c| who.sees_tenant(&c.tenant))
        .any(|c| c.participants.iter().any(|p| p.id == id.0));
    if visible {
        Ok(())
    } else {
        Err(live_error(LiveError::NoSuchParticipant(id.0)))
    }
}

fn participant(Path(ParticipantPath { id }): Path<ParticipantPath>) -> Result<MemberId, ApiError> {
    id.parse::<u64>().map(MemberId).map_err(|_| {
        ApiError::bad_request(format!("{id:?} is not a participant id (a whole number)"))
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
