//! Dial-out: a meeting calls a phone number and invites it in. A leader keys `*9`, the
//! number and `#`, or an administrator posts it; the meeting's task hands the request
//! to the signaling task, which routes it (the tenant's licence, the trunks' health),
//! funds it, places it on the call core's calling side (`UacSession`) and, once the far
//! end answers and keys 1, makes it a participant like any caller.
//!
//! This module holds what the admin API may see: why a dial-out is refused, where one
//! is, and the registry of them (the request itself, which carries the leader's channel,
//! is the meetings', `conferences::DialOutRequest`). The decisions about one
//! attempt (which trunk next, what an answer means) are pure, in [`attempt`].

pub mod attempt;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dialbridge_conference::ivr::{ConferenceKey, PromptId};
use serde::Serialize;

use crate::cdr::Timestamp;

pub use attempt::{Attempts, Outcome};

/// How many finished dial-outs the registry keeps for the API (the call records keep
/// every one).
const FINISHED_KEPT: usize = 1000;

/// A dial-out's id, as the API returns it.
pub type DialOutId = u64;

/// Why a dial-out was not placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DialOutRefusal {
    #[error("not a phone number: {0}")]
    NotANumber(String),
    #[error("no conference {0} is in progress")]
    NoMeeting(String),
    #[error("tenant {0} has no trunk to dial out through")]
    NoRoute(String),
    #[error("no trunk of tenant {0} is up")]
    NoTrunkUp(String),
    #[error("no capacity: {0}")]
    NoCapacity(String),
    #[error("not funded: {0}")]
    NotFunded(String),
    #[error("the bridge is shutting down")]
    ShuttingDown,
}

impl DialOutRefusal {
    /// What the leader hears.
    pub fn prompt(&self) -> PromptId {
        match self {
            DialOutRefusal::NotANumber(_) | DialOutRefusal::NoRoute(_) => {
                PromptId::DialOutNotAllowed
            }
            DialOutRefusal::NotFunded(_) => PromptId::DialOutNoFunding,
            DialOutRefusal::NoMeeting(_)
            | DialOutRefusal::NoTrunkUp(_)
            | DialOutRefusal::NoCapacity(_)
            | DialOutRefusal::ShuttingDown => PromptId::DialOutFailed,
        }
    }
}

/// Where a dial-out is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DialOutState {
    /// INVITE sent on a trunk.
    Calling,
    /// The far end rings (180/183).
    Ringing,
    /// Answered: the invitation plays, waiting for 1.
    Answered,
    /// Keyed 1: a participant.
    Joined,
    /// 486 or 600.
    Busy,
    /// Nobody answered in time (or 480/408 from the far end).
    NoAnswer,
    /// The far end or the network refused (403, 404, 603...).
    Declined,
    /// No trunk could place it (503s, timeouts, no trunk up).
    Failed,
    /// The call was up and has ended.
    Ended,
}

impl DialOutState {
    /// Every state.
    pub const ALL: [DialOutState; 9] = [
        DialOutState::Calling,
        DialOutState::Ringing,
        DialOutState::Answered,
        DialOutState::Joined,
        DialOutState::Busy,
        DialOutState::NoAnswer,
        DialOutState::Declined,
        DialOutState::Failed,
        DialOutState::Ended,
    ];

    /// Its name, as the API and `/metrics` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            DialOutState::Calling => "calling",
            DialOutState::Ringing => "ringing",
            DialOutState::Answered => "answered",
            DialOutState::Joined => "joined",
            DialOutState::Busy => "busy",
            DialOutState::NoAnswer => "no-answer",
            DialOutState::Declined => "declined",
            DialOutState::Failed => "failed",
            DialOutState::Ended => "ended",
        }
    }

    /// Over: nothing will change it again.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            DialOutState::Calling
                | DialOutState::Ringing
                | DialOutState::Answered
                | DialOutState::Joined
        )
    }

    /// What the leader hears when it comes to this (`None`: nothing).
    pub fn prompt(self) -> Option<PromptId> {
        match self {
            DialOutState::Calling => Some(PromptId::DialOutCalling),
            DialOutState::Ringing => Some(PromptId::DialOutRinging),
            DialOutState::Answered => Some(PromptId::DialOutAnswered),
            DialOutState::Busy => Some(PromptId::DialOutBusy),
            DialOutState::NoAnswer => Some(PromptId::DialOutNoAnswer),
            DialOutState::Declined => Some(PromptId::DialOutDeclined),
            DialOutState::Failed => Some(PromptId::DialOutFailed),
            // The meeting's join tone says it; the end is the participant leaving.
            DialOutState::Joined | DialOutState::Ended => None,
        }
    }
}

/// One dial-out as the admin API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = DialOut)]
pub struct DialOutView {
    pub id: DialOutId,
    pub tenant: String,
    pub conference_id: String,
    /// The number called, E.164.
    pub number: String,
    /// Who asked: `leader` (`*9`) or `api`.
    pub requested_by: String,
    pub state: DialOutState,
    /// The trunk of the current (or last) attempt.
    pub trunk: Option<String>,
    /// The trunks tried, in order.
    pub tried: Vec<String>,
    /// The last final SIP status the far end or a trunk gave, if any.
    pub sip_status: Option<u16>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// Every dial-out in progress and the last [`FINISHED_KEPT`] finished, by id.
#[derive(Debug, Default, Clone)]
pub struct DialOuts {
    inner: Arc<Mutex<Registry>>,
    counts: Arc<Counts>,
}

/// Totals since start, for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    refused: AtomicU64,
    /// Dial-outs that reached each final state, in [`DialOutState::ALL`] order.
    finished: [AtomicU64; DialOutState::ALL.len()],
    placed: AtomicU64,
}

#[derive(Debug, Default)]
struct Registry {
    next: DialOutId,
    views: HashMap<DialOutId, DialOutView>,
    finished: VecDeque<DialOutId>,
}

impl DialOuts {
    /// Counts a dial-out refused before it was placed.
    pub fn count_refused(&self) {
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Dial-outs refused before being placed, placed, and ended in each final state,
    /// since start.
    pub fn totals(&self) -> (u64, u64, Vec<(DialOutState, u64)>) {
        let c = &self.counts;
        let finished = DialOutState::ALL
            .iter()
            .zip(&c.finished)
            .filter(|(s, _)| s.is_final())
            .map(|(s, n)| (*s, n.load(Ordering::Relaxed)))
            .collect();
        (
            c.refused.load(Ordering::Relaxed),
            c.placed.load(Ordering::Relaxed),
            finished,
        )
    }

    /// A new dial-out's id, before it is filed (its meter needs it first).
    pub fn next_id(&self) -> DialOutId {
        let mut r = lock(&self.inner);
        r.next += 1;
        r.next
    }

    /// Files a dial-out placed under `id` (from [`Self::next_id`]).
    pub fn create(&self, id: DialOutId, conference: &ConferenceKey, number: &str, by_leader: bool) {
        self.counts.placed.fetch_add(1, Ordering::Relaxed);
        let mut r = lock(&self.inner);
        let now = Timestamp::now();
        r.views.insert(
            id,
            DialOutView {
                id,
                tenant: conference.tenant.as_str().to_string(),
                conference_id: conference.id.as_str().to_string(),
                number: number.to_string(),
                requested_by: if by_leader { "leader" } else { "api" }.to_string(),
                state: DialOutState::Calling,
                trunk: None,
                tried: Vec::new(),
                sip_status: None,
                created: now,
                updated: now,
            },
        );
    }

    /// Changes a dial-out's view.
    pub fn update(&self, id: DialOutId, change: impl FnOnce(&mut DialOutView)) {
        let mut r = lock(&self.inner);
        let Some(view) = r.views.get_mut(&id) else {
            return;
        };
        let was_final = view.state.is_final();
        change(view);
        view.updated = Timestamp::now();
        if view.state.is_final() && !was_final {
            let state = view.state;
            if let Some(i) = DialOutState::ALL.iter().position(|s| *s == state) {
                self.counts.finished[i].fetch_add(1, Ordering::Relaxed);
            }
            r.finished.push_back(id);
            while r.finished.len() > FINISHED_KEPT {
                if let Some(old) = r.finished.pop_front() {
                    r.views.remove(&old);
                }
            }
        }
    }

    /// One dial-out.
    pub fn get(&self, id: DialOutId) -> Option<DialOutView> {
        lock(&self.inner).views.get(&id).cloned()
    }

    /// A conference's dial-outs (or every one), oldest first.
    pub fn list(&self, conference: Option<(&str, &str)>) -> Vec<DialOutView> {
        let r = lock(&self.inner);
        let mut views: Vec<DialOutView> = r
            .views
            .values()
            .filter(|v| {
                conference.is_none_or(|(tenant, id)| v.tenant == tenant && v.conference_id == id)
            })
            .cloned()
            .collect();
        views.sort_by_key(|v| v.id);
        views
    }

    /// Dial-outs not yet over.
    pub fn in_progress(&self) -> usize {
        lock(&self.inner)
            .views
            .values()
            .filter(|v| !v.state.is_final())
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
