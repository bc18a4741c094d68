//! Numbers and bridges: list them with their load, and change assignments, capacities
//! and the enabled flag live through the router (calls in progress keep their grants).
//! A tenant admin sees and switches its own bridges and sees the numbers on them; an
//! operator sees and manages its provider's numbers. Anything else is "not in the plan".

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use dialbridge_router::{E164, Error as PlanError, NumberInfo, NumberKind, ResourceStats};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Shared};
use crate::cdr::{ChargeName, charge_str};
use crate::plan_edits::{EditView, PlanEdit};
use crate::tokens::Principal;

/// List bridges with their load.
#[utoipa::path(get, path = "/api/v1/bridges",
    responses((status = 200, description = "Bridges", body = BridgeList)))]
pub(super) async fn list_bridges(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
) -> Json<BridgeList> {
    let snapshot = state.router.snapshot();
    let bridges = snapshot
        .bridges
        .iter()
        .filter_map(|b| bridge_view(&state, b))
        .filter(|b| b.tenant.as_deref().is_some_and(|t| who.sees_tenant(t)))
        .collect();
    Json(BridgeList { bridges })
}

/// List numbers with capacity, load and assignment.
#[utoipa::path(get, path = "/api/v1/numbers",
    responses((status = 200, description = "Numbers", body = NumberList)))]
pub(super) async fn list_numbers(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
) -> Json<NumberList> {
    let numbers = state
        .router
        .numbers()
        .iter()
        .filter_map(|n| state.router.number(*n))
        .filter(|n| sees_number(&state, &who, n))
        .map(NumberView::from)
        .collect();
    Json(NumberList { numbers })
}

/// The number a `/api/v1/numbers/{e164}/...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct NumberPath {
    /// The number: + and 7 to 15 digits (%2B for + also works).
    #[param(pattern = r"^\+[1-9][0-9]{6,14}$")]
    e164: String,
}

/// The bridge a `/api/v1/bridges/{name}/...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct BridgePath {
    /// The bridge's name.
    name: String,
}

/// The bridge a number is to be assigned to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Assignment {
    bridge: String,
}

/// A new capacity: concurrent calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Capacity {
    #[schema(minimum = 1)]
    capacity: u32,
}

/// Whether a bridge takes calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Enabled {
    enabled: bool,
}

/// Assign a number to a bridge, or move it.
#[utoipa::path(put, path = "/api/v1/numbers/{e164}/assignment", params(NumberPath),
    request_body = Assignment,
    responses((status = 200, description = "The number", body = NumberView)))]
pub(super) async fn assign_number(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<NumberPath>, PathRejection>,
    body: Result<Json<Assignment>, JsonRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    number_in_scope(&state, &who, number)?;
    let Json(Assignment { bridge }) = body?;
    let bridge = Some(bridge);
    edit(&state, PlanEdit::Assignment { number, bridge }).await?;
    number_view(&state, number)
}

/// Unassign a number (its calls are refused from then on).
///
/// The number is assigned to nothing, so its calls are answered 404.
#[utoipa::path(delete, path = "/api/v1/numbers/{e164}/assignment", params(NumberPath),
    responses((status = 200, description = "The number", body = NumberView)))]
pub(super) async fn unassign_number(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<NumberPath>, PathRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    number_in_scope(&state, &who, number)?;
    let bridge = None;
    edit(&state, PlanEdit::Assignment { number, bridge }).await?;
    number_view(&state, number)
}

/// Set a number's concurrent-call capacity (live).
#[utoipa::path(put, path = "/api/v1/numbers/{e164}/capacity", params(NumberPath),
    request_body = Capacity,
    responses((status = 200, description = "The number", body = NumberView)))]
pub(super) async fn set_number_capacity(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<NumberPath>, PathRejection>,
    body: Result<Json<Capacity>, JsonRejection>,
) -> Result<Json<NumberView>, ApiError> {
    let number = parse_number(path?)?;
    number_in_scope(&state, &who, number)?;
    let Json(Capacity { capacity }) = body?;
    edit(&state, PlanEdit::NumberCapacity { number, capacity }).await?;
    number_view(&state, number)
}

/// Set a bridge's capacity (live).
#[utoipa::path(put, path = "/api/v1/bridges/{name}/capacity", params(BridgePath),
    request_body = Capacity,
    responses((status = 200, description = "The bridge", body = BridgeView)))]
pub(super) async fn set_bridge_capacity(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<BridgePath>, PathRejection>,
    body: Result<Json<Capacity>, JsonRejection>,
) -> Result<Json<BridgeView>, ApiError> {
    let Path(BridgePath { name }) = path?;
    bridge_in_scope(&state, &who, &name)?;
    let Json(Capacity { capacity }) = body?;
    let bridge = name.clone();
    edit(&state, PlanEdit::BridgeCapacity { bridge, capacity }).await?;
    bridge_by_name(&state, &name)
}

/// Enable or disable a bridge (a disabled one refuses calls with 480).
#[utoipa::path(put, path = "/api/v1/bridges/{name}/enabled", params(BridgePath),
    request_body = Enabled,
    responses((status = 200, description = "The bridge", body = BridgeView)))]
pub(super) async fn set_bridge_enabled(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<BridgePath>, PathRejection>,
    body: Result<Json<Enabled>, JsonRejection>,
) -> Result<Json<BridgeView>, ApiError> {
    let Path(BridgePath { name }) = path?;
    bridge_in_scope(&state, &who, &name)?;
    let Json(Enabled { enabled }) = body?;
    let bridge = name.clone();
    edit(&state, PlanEdit::BridgeEnabled { bridge, enabled }).await?;
    bridge_by_name(&state, &name)
}

/// The administrators' edits kept over the configuration file, and any the file now
/// makes impossible.
#[utoipa::path(get, path = "/api/v1/plan/edits",
    responses((status = 200, description = "Edits", body = EditList)))]
pub(super) async fn list_edits(State(state): State<Shared>) -> Result<Json<EditList>, ApiError> {
    let edits = state.edits.clone();
    let views = tokio::task::spawn_blocking(move || edits.views())
        .await
        .map_err(|e| ApiError::internal("listing the edits", &e))?
        .map_err(|e| ApiError::internal("listing the edits", &e))?;
    Ok(Json(EditList { edits: views }))
}

/// Every kept edit, oldest change first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EditList {
    edits: Vec<EditView>,
}

/// Makes `edit` live, then keeps it in the durable file before answering, so that a
/// reload or a restart keeps it. An edit that is live but could not be kept is a 500
/// that says so.
async fn edit(state: &Shared, edit: PlanEdit) -> Result<(), ApiError> {
    let (edits, router, kept) = (state.edits.clone(), state.router.clone(), edit.clone());
    tokio::task::spawn_blocking(move || edits.make(&kept, &router))
        .await
        .map_err(|e| ApiError::internal("keeping the edit", &e))?
        .map_err(|e| ApiError::internal("the change is live but was not kept", &e))?
        .map_err(plan_error)?;
    tracing::info!(%edit, "admin: plan edited");
    Ok(())
}

/// Every bridge of the plan.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BridgeList {
    bridges: Vec<BridgeView>,
}

/// A bridge as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Bridge)]
pub(super) struct BridgeView {
    name: String,
    /// The tenant that owns it (null only while a reload removes it).
    tenant: Option<String>,
    /// Whether it takes calls (null only while a reload removes it).
    enabled: Option<bool>,
    capacity: u32,
    in_progress: u32,
    admitted: u64,
    /// Refusals by reason (only reasons that occurred).
    refused: BTreeMap<&'static str, u64>,
}

/// Every number of the plan.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NumberList {
    numbers: Vec<NumberView>,
}

/// A number as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Number)]
pub(super) struct NumberView {
    number: String,
    kind: Kind,
    #[schema(value_type = ChargeName)]
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
                NumberKind::Service => Kind::Service,
                NumberKind::User => Kind::User,
            },
            charge: charge_str(n.charge),
            provider: n.provider.to_string(),
            bridge: n.bridge.map(|b| b.to_string()),
            capacity: n.capacity,
            in_progress: n.in_progress,
        }
    }
}

/// What a number is for: a bridge's service number, or a user's own.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = NumberKind)]
enum Kind {
    Service,
    User,
}

/// Whether `who` sees number `n`: by its provider, or the tenant of its bridge.
fn sees_number(state: &Shared, who: &Principal, n: &NumberInfo) -> bool {
    let tenant = n
        .bridge
        .as_deref()
        .and_then(|b| state.router.bridge(b))
        .map(|b| b.tenant);
    who.sees_number(&n.provider.to_string(), tenant.as_deref())
}

/// Refuses a number `who` does not see as if it were not in the plan.
fn number_in_scope(state: &Shared, who: &Principal, number: E164) -> Result<(), ApiError> {
    if *who == Principal::Admin {
        return Ok(());
    }
    match state.router.number(number) {
        Some(n) if sees_number(state, who, &n) => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "number {number} is not in the plan"
        ))),
    }
}

/// Refuses a bridge of another tenant as if it were not in the plan.
fn bridge_in_scope(state: &Shared, who: &Principal, name: &str) -> Result<(), ApiError> {
    if *who == Principal::Admin {
        return Ok(());
    }
    match state.router.bridge(name) {
        Some(b) if who.sees_tenant(&b.tenant) => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "bridge \"{name}\" is not in the plan"
        ))),
    }
}

fn number_view(state: &Shared, number: E164) -> Result<Json<NumberView>, ApiError> {
    state
        .router
        .number(number)
        .map(|n| Json(NumberView::from(n)))
        .ok_or_else(|| ApiError::not_found(format!("number {number} is not in the plan")))
}

fn bridge_by_name(state: &Shared, name: &str) -> Result<Json<BridgeView>, ApiError> {
    state
        .router
        .snapshot()
        .bridges
        .iter()
        .filter(|b| &*b.name == name)
        .find_map(|b| bridge_view(state, b))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("bridge \"{name}\" is not in the plan")))
}

/// The bridge's view; `None` for a bridge no longer in the plan (no capacity), which
/// the snapshot keeps while its calls last.
fn bridge_view(state: &Shared, b: &ResourceStats) -> Option<BridgeView> {
    let capacity = b.capacity?;
    let info = state.router.bridge(&b.name);
    Some(BridgeView {
        name: b.name.to_string(),
        tenant: info.as_ref().map(|i| i.tenant.to_string()),
        enabled: info.as_ref().map(|i| i.enabled),
        capacity,
        in_progress: b.in_progress,
        admitted: b.admitted,
        refused: b.rejected.iter().map(|(r, n)| (r.as_str(), n)).collect(),
    })
}

/// The path's number as an E.164 number (`+` and 7 to 15 digits; `%2B` works for `+`).
fn parse_number(Path(NumberPath { e164 }): Path<NumberPath>) -> Result<E164, ApiError> {
    e164.parse::<E164>()
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
