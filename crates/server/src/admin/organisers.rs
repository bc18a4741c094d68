//! Organisers: list them (never a PIN), export and import the CSV file a third-party
//! audio-conferencing provider fills in, reset a leader PIN (shown once), and read or
//! change one organiser's conference settings (join and leave tones).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use dialbridge_conference::directory::{
    ConferenceSettings, DirectoryError, OrganiserId, OrganiserRecord, Provider,
};
use dialbridge_conference::ivr::TenantId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, Shared, blocking};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantQuery {
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderQuery {
    provider: Option<String>,
}

/// `GET /api/v1/organisers?tenant=`.
pub(super) async fn list(
    State(state): State<Shared>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = query?.0.tenant.map(TenantId::new);
    let directory = state.directory.clone();
    let records = blocking("listing organisers", move || {
        directory.list(tenant.as_ref()).map_err(directory_error)
    })
    .await?;
    let organisers: Vec<Value> = records.iter().map(organiser_view).collect();
    Ok(Json(json!({ "organisers": organisers })))
}

/// `GET /api/v1/organisers/export.csv?tenant=`: the file sent to a provider (the PIN
/// column is always empty).
pub(super) async fn export(
    State(state): State<Shared>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = query?.0.tenant.map(TenantId::new);
    let directory = state.directory.clone();
    let csv = blocking("exporting organisers", move || {
        let mut out = Vec::new();
        directory
            .export_csv(tenant.as_ref(), &mut out)
            .map_err(directory_error)?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"organisers.csv\"",
            ),
        ],
        csv,
    ))
}

/// `POST /api/v1/organisers/import?provider=` with the CSV file as the body. All rows
/// or none: a refused file gets 422 with every bad line in `problems`.
pub(super) async fn import(
    State(state): State<Shared>,
    query: Result<Query<ProviderQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let provider = match query?.0.provider {
        Some(name) => Provider::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => Provider::dialbridge(),
    };
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the organisers CSV file",
        ));
    }
    let directory = state.directory.clone();
    let summary = blocking("importing organisers", move || {
        directory
            .import_csv(body.as_ref(), &provider)
            .map_err(directory_error)
    })
    .await?;
    tracing::info!(
        added = summary.added,
        updated = summary.updated,
        "admin: organisers imported"
    );
    Ok(Json(
        json!({ "added": summary.added, "updated": summary.updated }),
    ))
}

/// `POST /api/v1/organisers/{tenant}/{organiser}/pin/reset`: a fresh random PIN,
/// returned this once (only its hash is kept).
pub(super) async fn reset_pin(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path((tenant, organiser)) = path?;
    let tenant = TenantId::new(tenant);
    let organiser =
        OrganiserId::parse(&organiser).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let directory = state.directory.clone();
    let (t, o) = (tenant.clone(), organiser.clone());
    let pin = blocking("resetting a PIN", move || {
        directory.reset_pin(&t, &o).map_err(directory_error)
    })
    .await?;
    tracing::info!(%tenant, %organiser, "admin: leader PIN reset");
    let body = json!({
        "tenant": tenant.as_str(),
        "organiser": organiser.as_str(),
        "pin": pin.expose(),
    });
    // The PIN must not linger in a cache on the way back.
    Ok(([(CACHE_CONTROL, "no-store")], Json(body)))
}

/// `GET /api/v1/organisers/{tenant}/{organiser}`: one organiser (no PIN) and their
/// conference's settings.
pub(super) async fn show(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, organiser) = organiser_path(path)?;
    organiser_with_settings(&state, tenant, organiser).await
}

/// `PATCH /api/v1/organisers/{tenant}/{organiser}` with `{"join_leave_tones": true |
/// false | null}`. Calls that join the conference from then on get the new setting.
pub(super) async fn update_settings(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, organiser) = organiser_path(path)?;
    let Json(fields) = body?;
    let tones = join_leave_tones_patch(fields)?;
    let directory = state.directory.clone();
    let (t, o) = (tenant.clone(), organiser.clone());
    blocking("changing conference settings", move || {
        directory
            .set_join_leave_tones(&t, &o, tones)
            .map_err(directory_error)
    })
    .await?;
    tracing::info!(%tenant, %organiser, ?tones, "admin: join and leave tones set");
    organiser_with_settings(&state, tenant, organiser).await
}

/// The body of a settings `PATCH`: `{"join_leave_tones": true | false | null}`, where
/// `null` goes back to the bridge's default. (By hand rather than through serde,
/// which would also take a struct from an array and cannot tell a missing field from
/// a `null` one without help.)
fn join_leave_tones_patch(fields: Map<String, Value>) -> Result<Option<bool>, ApiError> {
    let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let mut tones = None;
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("join_leave_tones", Value::Bool(on)) => tones = Some(Some(on)),
            ("join_leave_tones", Value::Null) => tones = Some(None),
            ("join_leave_tones", other) => {
                return Err(unprocessable(format!(
                    "join_leave_tones must be true, false or null, not {other}"
                )));
            }
            _ => {
                return Err(unprocessable(format!(
                    "unknown setting {name:?}: the settings are join_leave_tones"
                )));
            }
        }
    }
    tones.ok_or_else(|| {
        ApiError::bad_request("nothing to change: give join_leave_tones (true, false or null)")
    })
}

fn organiser_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(TenantId, OrganiserId), ApiError> {
    let Path((tenant, organiser)) = path?;
    let organiser =
        OrganiserId::parse(&organiser).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((TenantId::new(tenant), organiser))
}

/// The organiser as the list shows them, plus `join_leave_tones` (`null`: the
/// bridge's default).
async fn organiser_with_settings(
    state: &Shared,
    tenant: TenantId,
    organiser: OrganiserId,
) -> Result<Json<Value>, ApiError> {
    let directory = state.directory.clone();
    let found = blocking("reading an organiser", move || {
        let record = directory
            .organiser(&tenant, &organiser)
            .map_err(directory_error)?;
        let settings = directory
            .settings(&tenant, &organiser)
            .map_err(directory_error)?;
        Ok(record.zip(settings).ok_or((tenant, organiser)))
    })
    .await?;
    let (record, ConferenceSettings { join_leave_tones }) = found.map_err(|(t, o)| {
        directory_error(DirectoryError::NoSuchOrganiser {
            tenant: t,
            organiser: o,
        })
    })?;
    let mut view = organiser_view(&record);
    if let Some(map) = view.as_object_mut() {
        map.insert("join_leave_tones".into(), json!(join_leave_tones));
    }
    Ok(Json(view))
}

fn organiser_view(r: &OrganiserRecord) -> Value {
    json!({
        "tenant": r.tenant.as_str(),
        "organiser": r.organiser.as_str(),
        "display_name": r.display_name,
        "toll_number": r.toll_number.as_str(),
        "toll_free_number": r.toll_free_number.as_ref().map(|n| n.as_str()),
        "conference_id": r.conference_id.as_str(),
        "wait_for_leader": r.wait_for_leader,
        "provider": r.provider.as_str(),
    })
}

/// A directory refusal as the status that says whose fault it is.
fn directory_error(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::ImportRefused(report) => {
            let problems: Vec<Value> = report
                .errors
                .iter()
                .map(|e| json!({ "line": e.line, "problem": e.problem.to_string() }))
                .collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("import refused, nothing applied: {report}"),
            )
            .with("problems", Value::Array(problems))
        }
        DirectoryError::NoSuchOrganiser { .. } => ApiError::not_found(e.to_string()),
        DirectoryError::ConferenceIdTaken { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        DirectoryError::InvalidTenant
        | DirectoryError::InvalidOrganiser
        | DirectoryError::InvalidDisplayName
        | DirectoryError::InvalidNumber
        | DirectoryError::InvalidProvider
        | DirectoryError::InvalidConferenceId
        | DirectoryError::InvalidPin
        | DirectoryError::PinRequired => ApiError::bad_request(e.to_string()),
        other => ApiError::internal("the organiser directory", &other),
    }
}
