//! Organisers: list them (never a PIN), export and import the CSV file a third-party
//! audio-conferencing provider fills in, reset a leader PIN (shown once), and read or
//! change one organiser's conference settings (join and leave tones). A tenant admin
//! does all of it for its own tenant's organisers only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use dialbridge_conference::directory::{
    ConferenceSettings, DirectoryError, OrganiserId, OrganiserRecord, Provider,
};
use dialbridge_conference::ivr::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ImportProblem, ImportRefused, Shared, blocking};
use crate::tokens::Principal;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct TenantQuery {
    /// Only this tenant's organisers.
    tenant: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ProviderQuery {
    /// The audio-conferencing provider every organiser imported gets (dialbridge).
    provider: Option<String>,
}

/// The organiser a `/api/v1/organisers/{tenant}/{organiser}...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct OrganiserPath {
    /// The tenant.
    tenant: String,
    /// The organiser's ID.
    organiser: String,
}

/// Organisers, by tenant and ID.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrganiserList {
    organisers: Vec<OrganiserView>,
}

/// An organiser as the API shows them: never a PIN.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Organiser)]
pub(super) struct OrganiserView {
    tenant: String,
    organiser: String,
    display_name: String,
    toll_number: String,
    toll_free_number: Option<String>,
    conference_id: String,
    wait_for_leader: bool,
    provider: String,
}

/// An organiser and their conference's settings.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrganiserSettings {
    #[serde(flatten)]
    organiser: OrganiserView,
    /// A tone to everyone when someone joins or leaves; null: the bridge's default
    /// (`[conference] join_leave_tones`).
    join_leave_tones: Option<bool>,
}

/// Settings to change: one left out is kept, null restores the bridge's default.
// Read by `SettingsPatch::parse` rather than serde, which would also take a struct from
// an array and cannot tell a missing field from a `null` one without help; the serde
// attribute below only tells the schema that other fields are refused.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(super) struct SettingsPatch {
    /// A tone to everyone when someone joins or leaves; null: the bridge's default.
    join_leave_tones: Option<bool>,
}

/// What an import applied.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ImportSummary {
    /// Organisers that were not in the directory.
    added: usize,
    /// Organisers that were, now replaced by their row.
    updated: usize,
}

/// A new leader PIN, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PinReset {
    tenant: String,
    organiser: String,
    pin: String,
}

/// List organisers (never a PIN).
#[utoipa::path(get, path = "/api/v1/organisers", operation_id = "list_organisers",
    params(TenantQuery),
    responses((status = 200, description = "Organisers", body = OrganiserList)))]
pub(super) async fn list(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<OrganiserList>, ApiError> {
    let tenant = tenant_filter(&who, query?.0.tenant)?;
    let directory = state.directory.clone();
    let records = blocking("listing organisers", move || {
        directory.list(tenant.as_ref()).map_err(directory_error)
    })
    .await?;
    let organisers = records.iter().map(organiser_view).collect();
    Ok(Json(OrganiserList { organisers }))
}

/// Export organisers as the provider CSV file (PIN column empty).
#[utoipa::path(get, path = "/api/v1/organisers/export.csv", params(TenantQuery),
    responses((status = 200, description = "The organisers file", content_type = "text/csv",
        body = String)))]
pub(super) async fn export(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenant_filter(&who, query?.0.tenant)?;
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

/// Import the CSV file a provider filled in: all rows or none.
///
/// A refused file gets 422 with every bad line in `problems`.
#[utoipa::path(post, path = "/api/v1/organisers/import", params(ProviderQuery),
    request_body(content = String, content_type = "text/csv",
        description = "The organisers file"),
    responses(
        (status = 200, description = "What was applied", body = ImportSummary),
        (status = 422, description = "The file was refused; `problems` lists every bad line",
            body = ImportRefused),
    ))]
pub(super) async fn import(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ProviderQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<ImportSummary>, ApiError> {
    let provider = match query?.0.provider {
        Some(name) => Provider::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => Provider::dialbridge(),
    };
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the organisers CSV file",
        ));
    }
    if let Principal::TenantAdmin { tenant } = &who {
        rows_of_tenant(&body, tenant)?;
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
    Ok(Json(ImportSummary {
        added: summary.added,
        updated: summary.updated,
    }))
}

/// Give an organiser a new random leader PIN, returned this once.
///
/// Only its hash is kept.
#[utoipa::path(post, path = "/api/v1/organisers/{tenant}/{organiser}/pin/reset",
    params(OrganiserPath),
    responses((status = 200, description = "The new PIN", body = PinReset)))]
pub(super) async fn reset_pin(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<OrganiserPath>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (tenant, organiser) = organiser_path(path, &who)?;
    let directory = state.directory.clone();
    let (t, o) = (tenant.clone(), organiser.clone());
    let pin = blocking("resetting a PIN", move || {
        directory.reset_pin(&t, &o).map_err(directory_error)
    })
    .await?;
    tracing::info!(%tenant, %organiser, "admin: leader PIN reset");
    let body = PinReset {
        tenant: tenant.as_str().to_owned(),
        organiser: organiser.as_str().to_owned(),
        pin: pin.expose().to_owned(),
    };
    // The PIN must not linger in a cache on the way back.
    Ok(([(CACHE_CONTROL, "no-store")], Json(body)))
}

/// One organiser (never a PIN) and their conference's settings.
#[utoipa::path(get, path = "/api/v1/organisers/{tenant}/{organiser}", params(OrganiserPath),
    responses((status = 200, description = "The organiser", body = OrganiserSettings)))]
pub(super) async fn show(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<OrganiserPath>, PathRejection>,
) -> Result<Json<OrganiserSettings>, ApiError> {
    let (tenant, organiser) = organiser_path(path, &who)?;
    organiser_with_settings(&state, tenant, organiser).await
}

/// Change an organiser's conference settings; calls that join from then on get them.
#[utoipa::path(patch, path = "/api/v1/organisers/{tenant}/{organiser}", params(OrganiserPath),
    request_body = SettingsPatch,
    responses((status = 200, description = "The organiser", body = OrganiserSettings)))]
pub(super) async fn update_settings(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<OrganiserPath>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Json<OrganiserSettings>, ApiError> {
    let (tenant, organiser) = organiser_path(path, &who)?;
    let Json(fields) = body?;
    let SettingsPatch {
        join_leave_tones: tones,
    } = SettingsPatch::parse(fields)?;
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

impl SettingsPatch {
    /// The body of a settings `PATCH`: `{"join_leave_tones": true | false | null}`, where
    /// `null` goes back to the bridge's default.
    pub(super) fn parse(fields: Map<String, Value>) -> Result<SettingsPatch, ApiError> {
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
        let join_leave_tones = tones.ok_or_else(|| {
            ApiError::bad_request("nothing to change: give join_leave_tones (true, false or null)")
        })?;
        Ok(SettingsPatch { join_leave_tones })
    }
}

/// The organiser the path names; another tenant's is "no such organiser", whether it
/// exists or not.
fn organiser_path(
    path: Result<Path<OrganiserPath>, PathRejection>,
    who: &Principal,
) -> Result<(TenantId, OrganiserId), ApiError> {
    let Path(OrganiserPath { tenant, organiser }) = path?;
    let organiser =
        OrganiserId::parse(&organiser).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let tenant = TenantId::new(tenant);
    if !who.sees_tenant(tenant.as_str()) {
        return Err(directory_error(DirectoryError::NoSuchOrganiser {
            tenant,
            organiser,
        }));
    }
    Ok((tenant, organiser))
}

/// The tenant a list or export is narrowed to: the query's for an admin; a tenant
/// admin's own, and "no such tenant" for any other it names.
fn tenant_filter(who: &Principal, asked: Option<String>) -> Result<Option<TenantId>, ApiError> {
    match (who, asked) {
        (Principal::TenantAdmin { tenant }, Some(asked)) if asked != *tenant => {
            Err(ApiError::not_found(format!("no tenant {asked:?}")))
        }
        (Principal::TenantAdmin { tenant }, _) => Ok(Some(TenantId::new(tenant.clone()))),
        (_, asked) => Ok(asked.map(TenantId::new)),
    }
}

/// Refuses, as a bad file, an import with a row of another tenant than `own`: every
/// such row is listed and nothing is applied. The file is read as the directory reads
/// it (trimmed, the header matched without regard to case), and a file or row this
/// cannot read is refused too rather than left to the directory, so no row of another
/// tenant can slip past in a form only one of the two readers takes.
fn rows_of_tenant(csv: &[u8], own: &str) -> Result<(), ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv);
    let column = reader.headers().ok().and_then(|h| {
        h.iter()
            .position(|name| name.eq_ignore_ascii_case("tenant"))
    });
    let mut problems = Vec::new();
    match column {
        None => problems.push(ImportProblem {
            line: 1,
            problem: "no tenant column".to_owned(),
        }),
        Some(column) => {
            for record in reader.records() {
                let (line, tenant) = match &record {
                    Ok(r) => (r.position().map_or(0, csv::Position::line), r.get(column)),
                    Err(e) => (e.position().map_or(0, csv::Position::line), None),
                };
                match tenant {
                    Some(t) if t == own => {}
                    Some(t) => problems.push(ImportProblem {
                        line,
                        problem: format!(
                            "tenant {t:?}: this token imports {own}'s organisers only"
                        ),
                    }),
                    None => problems.push(ImportProblem {
                        line,
                        problem: "unreadable row, or no tenant in it".to_owned(),
                    }),
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "import refused, nothing applied: {} rows not of tenant {own}",
            problems.len()
        ),
    )
    .with_problems(problems))
}

/// The organiser as the list shows them, plus `join_leave_tones` (`null`: the
/// bridge's default).
async fn organiser_with_settings(
    state: &Shared,
    tenant: TenantId,
    organiser: OrganiserId,
) -> Result<Json<OrganiserSettings>, ApiError> {
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
    Ok(Json(OrganiserSettings {
        organiser: organiser_view(&record),
        join_leave_tones,
    }))
}

fn organiser_view(r: &OrganiserRecord) -> OrganiserView {
    OrganiserView {
        tenant: r.tenant.as_str().to_owned(),
        organiser: r.organiser.as_str().to_owned(),
        display_name: r.display_name.clone(),
        toll_number: r.toll_number.as_str().to_owned(),
        toll_free_number: r.toll_free_number.as_ref().map(|n| n.as_str().to_owned()),
        conference_id: r.conference_id.as_str().to_owned(),
        wait_for_leader: r.wait_for_leader,
        provider: r.provider.as_str().to_owned(),
    }
}

/// A directory refusal as the status that says whose fault it is.
fn directory_error(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::ImportRefused(report) => {
            let problems = report
                .errors
                .iter()
                .map(|e| ImportProblem {
                    line: e.line,
                    problem: e.problem.to_string(),
                })
                .collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("import refused, nothing applied: {report}"),
            )
            .with_problems(problems)
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
