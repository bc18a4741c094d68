//! Trunks: their sessions against their maximum, their outbound target and its health
//! as the OPTIONS probes found it (the signaling task publishes it on the
//! [`crate::trunk_health::HealthBoard`]). Admins and read-only tokens see every trunk, an
//! operator its provider's; tenant admins none (trunks carry everybody's traffic).

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::cdr::Timestamp;
use crate::tokens::Principal;

/// List trunks with their load and dial-out health.
#[utoipa::path(get, path = "/api/v1/trunks",
    responses((status = 200, description = "Trunks", body = TrunkList)))]
pub(super) async fn list(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
) -> Json<TrunkList> {
    let snapshot = state.router.snapshot();
    let health = state.trunk_health.current();
    let trunks = state
        .router
        .trunks()
        .into_iter()
        .filter(|(_, t)| sees_trunk(&who, t.provider.as_ref()))
        .map(|(id, t)| {
            let h = health.iter().find(|h| h.trunk == id);
            let in_progress = snapshot
                .trunks
                .iter()
                .find(|s| s.name == t.name)
                .map_or(0, |s| s.in_progress);
            TrunkView {
                name: t.name.to_string(),
                provider: t.provider.map(|p| p.to_string()),
                max_sessions: t.max_sessions,
                in_progress,
                outbound: t.outbound.map(|a| a.to_string()),
                health: t.outbound.map(|_| {
                    h.map_or(Health::Up, |h| {
                        if h.state.is_up() {
                            Health::Up
                        } else {
                            Health::Down
                        }
                    })
                }),
                probed: h.is_some_and(|h| h.state != crate::trunk_health::HealthState::Unprobed),
                consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
                last_answer: h.and_then(|h| h.last_finding).map(|f| f.label()),
                last_answer_at: h
                    .and_then(|h| h.last_finding_at)
                    .map(Timestamp::from_system_time),
                last_change_at: h
                    .and_then(|h| h.last_change_at)
                    .map(Timestamp::from_system_time),
                options_sent: h.map_or(0, |h| h.options_sent),
                options_failed: h.map_or(0, |h| h.options_failed),
            }
        })
        .collect();
    Json(TrunkList { trunks })
}

/// Whether `who` sees a trunk of `provider` (`None`: the softphones).
fn sees_trunk(who: &Principal, provider: Option<&dialbridge_router::Provider>) -> bool {
    match who {
        Principal::Admin | Principal::ReadOnly => true,
        Principal::Operator { provider: own } => provider.is_some_and(|p| p.to_string() == *own),
        Principal::TenantAdmin { .. } => false,
    }
}

/// The trunks.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TrunkList {
    trunks: Vec<TrunkView>,
}

/// Whether dial-outs may use a trunk.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Health {
    /// Answering OPTIONS, or not probed yet.
    Up,
    /// Not answering, or answering 503: dial-outs skip it.
    Down,
}

/// A trunk.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TrunkView {
    name: String,
    /// `Microsoft` or the operator's name; none for the softphones.
    provider: Option<String>,
    max_sessions: u32,
    /// Sessions now, calls in and dial-outs.
    in_progress: u32,
    /// Where dial-outs and OPTIONS go (`ip:port`, UDP); none: no dial-outs.
    outbound: Option<String>,
    /// None without an outbound target.
    health: Option<Health>,
    /// Whether a probe has answered or failed yet (until then the trunk counts as up).
    probed: bool,
    /// Failures in a row (OPTIONS, or dial-outs answered 503 or 408 or not at all).
    consecutive_failures: u32,
    /// What the last probe or dial-out found: a status (`200`, `503`), `timeout` or
    /// `invite_failed`.
    last_answer: Option<String>,
    last_answer_at: Option<Timestamp>,
    /// When it last went up or down.
    last_change_at: Option<Timestamp>,
    options_sent: u64,
    options_failed: u64,
}
