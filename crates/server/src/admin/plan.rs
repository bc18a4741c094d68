//! Numbers and bridges: list them with their load, and change assignments, capacities
//! and the enabled flag live through the router (calls in progress keep their grants).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dialbridge_router::{E164, Error as PlanError, NumberInfo, NumberKind, ResourceStats};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ApiError, Shared};
use crate::cdr::charge_str;

/// `GET /api/v1/bridges`.
pub(super) async fn list_bridges(State(state): State<Shared>) -> Json<Value> {
    let snapshot = state.router.snapshot();
    let bridges: Vec<Value> = snapshot
        .bridges
        .iter()
        .filter(|b| b.capacity.is_some())
        .map(|b| bridge_view(&state, b))
        .collect();
    Json(json!({ "bridges": bridges }))
}

/// `GET /api/v1/numbers`.
pub(super) async fn list_numbers(State(state): State<Shared>) -> Json<Value> {
    let numbers: Vec<NumberView> = state
        .router
        .numbers()
        .iter()
        .filter_map(|n| state.router.number(*n))
        .map(NumberView::from)
        .collect();
    Json(json!({ "numbers": numbers }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Assignment {
    bridge: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Capacity {
    capacity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Enabled {
    enabled: bool,
}

/// `PUT /api/v1/numbers/{e164}/assignment {"bridge": ...}`: assign, or move.
pub(super) async fn assign_number(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Assignment>, JsonRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    let Json(Assignment { bridge }) = body?;
    state
        .router
        .assign_number(number, &bridge)
        .map_err(plan_error)?;
    tracing::info!(%number, %bridge, "admin: number assigned");
    number_view(&state, number)
}

/// `DELETE /api/v1/numbers/{e164}/assignment`: the number is assigned to nothing, so
/// its calls are refused (404) from now on.
pub(super) async fn unassign_number(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    state.router.unassign_number(number).map_err(plan_error)?;
    tracing::info!(%number, "admin: number unassigned");
    number_view(&state, number)
}

/// `PUT /api/v1/numbers/{e164}/capacity {"capacity": n}`.
pub(super) async fn set_number_capacity(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Capacity>, JsonRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    let Json(Capacity { capacity }) = body?;
    state
        .router
        .set_number_capacity(number, capacity)
        .map_err(plan_error)?;
    tracing::info!(%number, capacity, "admin: number capacity set");
    number_view(&state, number)
}

/// `PUT /api/v1/bridges/{name}/capacity {"capacity": n}`.
pub(super) async fn set_bridge_capacity(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Capacity>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    let Json(Capacity { capacity }) = body?;
    state
        .router
        .set_bridge_capacity(&name, capacity)
        .map_err(plan_error)?;
    tracing::info!(bridge = %name, capacity, "admin: bridge capacity set");
    bridge_by_name(&state, &name)
}

/// `PUT /api/v1/bridges/{name}/enabled {"enabled": bool}`.
pub(super) async fn set_bridge_enabled(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Enabled>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    let Json(Enabled { enabled }) = body?;
    state
        .router
        .set_bridge_enabled(&name, enabled)
        .map_err(plan_error)?;
    tracing::info!(bridge = %name, enabled, "admin: bridge enabled set");
    bridge_by_name(&state, &name)
}

/// A number as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct NumberView {
    number: String,
    kind: &'static str,
    charge: &'static str,
    provider: String,
    /// The bridge it is assigned to, or null.
    bridge: Option<String>,
    capacity: u32,
    in_progress: u32,
}

impl From<NumberInfo> for NumberView {
    fn from(n: NumberInfo) -> NumberView {
        NumberView {
            number: n.number.to_string(),
            kind: match n.kind {
                NumberKind::Service => "service",
                NumberKind::User => "user",
            },
            charge: charge_str(n.charge),
            provider: n.provider.to_string(),
            bridge: n.bridge.map(|b| b.to_string()),
            capacity: n.capacity,
            in_progress: n.in_progress,
        }
    }
}

fn number_view(state: &Shared, number: E164) -> Result<Json<NumberView>, ApiError> {
    state
        .router
        .number(number)
        .map(|n| Json(NumberView::from(n)))
        .ok_or_else(|| ApiError::not_found(format!("number {number} is not in the plan")))
}

fn bridge_by_name(state: &Shared, name: &str) -> Result<Json<Value>, ApiError> {
    state
        .router
        .snapshot()
        .bridges
        .iter()
        .find(|b| &*b.name == name && b.capacity.is_some())
        .map(|b| Json(bridge_view(state, b)))
        .ok_or_else(|| ApiError::not_found(format!("bridge \"{name}\" is not in the plan")))
}

fn bridge_view(state: &Shared, b: &ResourceStats) -> Value {
    let info = state.router.bridge(&b.name);
    let refused: Map<String, Value> = b
        .rejected
        .iter()
        .map(|(reason, n)| (reason.as_str().to_owned(), Value::from(n)))
        .collect();
    json!({
        "name": &*b.name,
        "tenant": info.as_ref().map(|i| &*i.tenant),
        "enabled": info.as_ref().map(|i| i.enabled),
        "capacity": b.capacity,
        "in_progress": b.in_progress,
        "admitted": b.admitted,
        "refused": refused,
    })
}

/// A path segment as an E.164 number (`+` and 7 to 15 digits; `%2B` works for `+`).
fn parse_number(Path(text): Path<String>) -> Result<E164, ApiError> {
    text.parse::<E164>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A router refusal as the status that says whose fault it is.
fn plan_error(e: PlanError) -> ApiError {
    let status = match &e {
        PlanError::NoSuchNumber(_)
        | PlanError::NoSuchBridge(_)
        | PlanError::NoSuchTenant(_)
        | PlanError::NoSuchTrunk(_)
        | PlanError::UnknownBridge { .. } => StatusCode::NOT_FOUND,
        PlanError::LicenceForbidsProvider { .. } => StatusCode::CONFLICT,
        PlanError::ZeroCapacity { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.to_string())
}
