//! What an administrator changed in the number plan through the API — assignments,
//! capacities, the enabled flag — kept apart from the configuration file, so that a
//! SIGHUP or a restart re-applies each edit on top of the file instead of reverting it
//! without a word. An edit the new file makes impossible (its number or bridge is
//! gone, its bridge no longer fits the number's provider) is reported as a conflict and
//! kept, never dropped: the operator decides. When nodes share the store (`[shared]
//! postgres`), each re-applies the edits the others make while it runs
//! ([`DurableEdits::refresh`], polled).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use dialbridge_router::{E164, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cdr::{CdrError, CdrStore, StoredEdit};

/// How often a node whose store other nodes share looks for their edits.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The edits, durable in the bridge's file (the CDR database, or the database the nodes
/// share), and the conflicts the last start, reload or refresh found.
#[derive(Debug, Clone)]
pub struct DurableEdits {
    store: CdrStore,
    conflicts: Arc<Mutex<Vec<Conflict>>>,
    /// The stored edits as this node last applied them, which [`DurableEdits::refresh`]
    /// compares with. Its lock is also the turn that making an edit and applying the
    /// stored ones take, so a refresh never reads the store between an edit made live
    /// and its keeping, which would undo it until the next refresh.
    applied: Arc<Mutex<Vec<StoredEdit>>>,
}

impl DurableEdits {
    /// The edits kept in `store`.
    pub fn new(store: CdrStore) -> DurableEdits {
        DurableEdits {
            store,
            conflicts: Arc::default(),
            applied: Arc::default(),
        }
    }

    /// Applies every kept edit on top of the plan the router has just taken from the
    /// file (at start and after each reload); returns how many were applied.
    pub fn reapply(&self, router: &Router) -> Result<usize, CdrError> {
        let mut applied = self.applied();
        let stored = self.store.plan_edits()?;
        Ok(self.apply_stored(router, stored, &mut applied))
    }

    /// Applies the kept edits again if they changed since this node last applied them
    /// (another node made one, in a store they share); `None` when nothing changed.
    pub fn refresh(&self, router: &Router) -> Result<Option<usize>, CdrError> {
        let mut applied = self.applied();
        let stored = self.store.plan_edits()?;
        if *applied == stored {
            return Ok(None);
        }
        Ok(Some(self.apply_stored(router, stored, &mut applied)))
    }

    /// Makes `edit` live, then keeps it (committed when this returns). An edit the plan
    /// refuses is neither: `Ok(Err(..))`.
    pub fn make(
        &self,
        edit: &PlanEdit,
        router: &Router,
    ) -> Result<Result<(), dialbridge_router::Error>, CdrError> {
        let _turn = self.applied();
        if let Err(e) = edit.apply(router) {
            return Ok(Err(e));
        }
        self.record(edit)?;
        Ok(Ok(()))
    }

    /// Keeps an edit that was just made live; committed when this returns.
    pub fn record(&self, edit: &PlanEdit) -> Result<(), CdrError> {
        let (kind, target) = edit.key();
        self.store
            .save_plan_edit(kind, &target, edit.value().as_deref(), SystemTime::now())?;
        // Made live, so no longer in conflict.
        self.conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|c| c.edit.key() != edit.key());
        Ok(())
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Vec<StoredEdit>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `stored` over the router's plan and remembers it as applied.
    fn apply_stored(
        &self,
        router: &Router,
        stored: Vec<StoredEdit>,
        applied: &mut Vec<StoredEdit>,
    ) -> usize {
        let edits = parse(&stored);
        let conflicts = reapply(router, &edits);
        let count = edits.len() - conflicts.len();
        if !edits.is_empty() {
            tracing::info!(
                applied = count,
                conflicts = conflicts.len(),
                "admin edits re-applied over the configuration"
            );
        }
        *self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = conflicts;
        *applied = stored;
        count
    }

    /// Every kept edit with its conflict, if any, oldest change first.
    pub fn views(&self) -> Result<Vec<EditView>, CdrError> {
        let conflicts = self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(self
            .load()?
            .iter()
            .map(|e| EditView::new(e, &conflicts))
            .collect())
    }

    fn load(&self) -> Result<Vec<PlanEdit>, CdrError> {
        Ok(parse(&self.store.plan_edits()?))
    }
}

/// The stored edits this build reads (one it does not is logged and left in place).
fn parse(stored: &[StoredEdit]) -> Vec<PlanEdit> {
    stored
        .iter()
        .filter_map(|(kind, target, value)| {
            let edit = PlanEdit::from_parts(kind, target, value.as_deref());
            if edit.is_none() {
                tracing::warn!(
                    kind,
                    target,
                    "a stored admin edit this build does not read: left in place"
                );
            }
            edit
        })
        .collect()
}

/// One edit; the latest edit of a kind and target replaces the earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanEdit {
    /// A number assigned to a bridge, or (`None`) to nothing.
    Assignment {
        number: E164,
        bridge: Option<String>,
    },
    NumberCapacity {
        number: E164,
        capacity: u32,
    },
    BridgeCapacity {
        bridge: String,
        capacity: u32,
    },
    BridgeEnabled {
        bridge: String,
        enabled: bool,
    },
}

/// An edit the current plan would not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub edit: PlanEdit,
    /// Why, from the router.
    pub reason: String,
}

impl PlanEdit {
    /// The edit's kind and target: its identity in the store.
    pub fn key(&self) -> (&'static str, String) {
        match self {
            Self::Assignment { number, .. } => ("assignment", number.to_string()),
            Self::NumberCapacity { number, .. } => ("number_capacity", number.to_string()),
            Self::BridgeCapacity { bridge, .. } => ("bridge_capacity", bridge.clone()),
            Self::BridgeEnabled { bridge, .. } => ("bridge_enabled", bridge.clone()),
        }
    }

    /// The value, as stored (`None`: unassigned).
    pub fn value(&self) -> Option<String> {
        match self {
            Self::Assignment { bridge, .. } => bridge.clone(),
            Self::NumberCapacity { capacity, .. } | Self::BridgeCapacity { capacity, .. } => {
                Some(capacity.to_string())
            }
            Self::BridgeEnabled { enabled, .. } => Some(enabled.to_string()),
        }
    }

    /// Reads an edit back from its stored kind, target and value; `None` for a row this
    /// build does not understand.
    pub fn from_parts(kind: &str, target: &str, value: Option<&str>) -> Option<PlanEdit> {
        let number = || target.parse::<E164>().ok();
        Some(match kind {
            "assignment" => Self::Assignment {
                number: number()?,
                bridge: value.map(str::to_owned),
            },
            "number_capacity" => Self::NumberCapacity {
                number: number()?,
                capacity: value?.parse().ok()?,
            },
            "bridge_capacity" => Self::BridgeCapacity {
                bridge: target.to_owned(),
                capacity: value?.parse().ok()?,
            },
            "bridge_enabled" => Self::BridgeEnabled {
                bridge: target.to_owned(),
                enabled: value?.parse().ok()?,
            },
            _ => return None,
        })
    }

    /// Makes the edit live.
    pub fn apply(&self, router: &Router) -> Result<(), dialbridge_router::Error> {
        match self {
            Self::Assignment {
                number,
                bridge: Some(bridge),
            } => router.assign_number(*number, bridge),
            Self::Assignment {
                number,
                bridge: None,
            } => router.unassign_number(*number),
            Self::NumberCapacity { number, capacity } => {
                router.set_number_capacity(*number, *capacity)
            }
            Self::BridgeCapacity { bridge, capacity } => {
                router.set_bridge_capacity(bridge, *capacity)
            }
            Self::BridgeEnabled { bridge, enabled } => router.set_bridge_enabled(bridge, *enabled),
        }
    }

    /// What the plan says now for the edit's target (before the edit is applied), for
    /// the log of a reload; `None` when the target is not in the plan.
    fn current(&self, router: &Router) -> Option<String> {
        match self {
            Self::Assignment { number, .. } => router
                .number(*number)
                .map(|n| n.bridge.map_or("nothing".into(), |b| b.to_string())),
            Self::NumberCapacity { number, .. } => {
                router.number(*number).map(|n| n.capacity.to_string())
            }
            Self::BridgeCapacity { bridge, .. } => {
                router.bridge(bridge).map(|b| b.capacity.to_string())
            }
            Self::BridgeEnabled { bridge, .. } => {
                router.bridge(bridge).map(|b| b.enabled.to_string())
            }
        }
    }
}

impl fmt::Display for PlanEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, target) = self.key();
        let value = self.value().unwrap_or_else(|| "nothing".into());
        write!(f, "{kind} of {target} = {value}")
    }
}

/// Applies `edits` (in the order they were made) on top of the plan the router has just
/// taken from the file. Each edit that the file overrides is logged; each that cannot
/// be applied comes back as a conflict (and is logged as an error).
pub fn reapply(router: &Router, edits: &[PlanEdit]) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for edit in edits {
        let before = edit.current(router);
        match edit.apply(router) {
            Ok(()) => {
                let file = before.unwrap_or_default();
                if Some(&file) != edit.value().as_ref() {
                    tracing::info!(%edit, file, "admin edit kept over the configuration file");
                }
            }
            Err(e) => {
                tracing::error!(%edit, error = %e, "admin edit conflicts with the configuration: kept, not applied");
                conflicts.push(Conflict {
                    edit: edit.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    conflicts
}

/// An edit as the API lists it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PlanEdit)]
pub struct EditView {
    /// assignment, number_capacity, bridge_capacity or bridge_enabled.
    pub kind: &'static str,
    /// The number or bridge.
    pub target: String,
    /// The value (null: assigned to nothing).
    pub value: Option<String>,
    /// Why the plan from the file does not take it, if it does not.
    pub conflict: Option<String>,
}

impl EditView {
    /// The view of `edit`, with its conflict among `conflicts`, if any.
    pub fn new(edit: &PlanEdit, conflicts: &[Conflict]) -> EditView {
        let (kind, target) = edit.key();
        EditView {
            kind,
            target,
            value: edit.value(),
            conflict: conflicts
                .iter()
                .find(|c| c.edit.key() == edit.key())
                .map(|c| c.reason.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn number(text: &str) -> E164 {
        text.parse().unwrap()
    }

    #[test]
    fn edits_round_trip_through_their_stored_parts() {
        let edits = [
            PlanEdit::Assignment {
                number: number("+14255550100"),
                bridge: Some("fabrikam-bridge".into()),
            },
            PlanEdit::Assignment {
                number: number("+14255550100"),
                bridge: None,
            },
            PlanEdit::NumberCapacity {
                number: number("+14255550123"),
                capacity: 7,
            },
            PlanEdit::BridgeCapacity {
                bridge: "contoso-bridge".into(),
                capacity: 12,
            },
            PlanEdit::BridgeEnabled {
                bridge: "contoso-bridge".into(),
                enabled: false,
            },
        ];
        for edit in edits {
            let (kind, target) = edit.key();
            let back = PlanEdit::from_parts(kind, &target, edit.value().as_deref());
            assert_eq!(back.as_ref(), Some(&edit));
        }
        assert_eq!(PlanEdit::from_parts("colour", "x", Some("red")), None);
        assert_eq!(
            PlanEdit::from_parts("number_capacity", "+14255550123", Some("many")),
            None
        );
    }

    #[test]
    fn a_reload_keeps_edits_and_reports_what_it_cannot_apply() {
        let config = crate::testing::demo_config();
        let router = Router::new(crate::plan_from(&config).unwrap());
        let edits = vec![
            PlanEdit::NumberCapacity {
                number: number("+14255550123"),
                capacity: 9,
            },
            PlanEdit::BridgeEnabled {
                bridge: "contoso-bridge".into(),
                enabled: false,
            },
            PlanEdit::BridgeCapacity {
                bridge: "no-such-bridge".into(),
                capacity: 3,
            },
        ];
        let conflicts = reapply(&router, &edits);
        assert_eq!(router.number(number("+14255550123")).unwrap().capacity, 9);
        assert!(!router.bridge("contoso-bridge").unwrap().enabled);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].edit, edits[2]);
        let view = EditView::new(&edits[2], &conflicts);
        assert!(view.conflict.is_some_and(|c| c.contains("no-such-bridge")));
        assert!(EditView::new(&edits[0], &conflicts).conflict.is_none());
    }

    #[test]
    fn an_edit_made_on_one_node_is_refreshed_onto_the_other() {
        let db = dialbridge_testkit::servers::PostgresDb::create();
        let config = crate::testing::demo_config();
        let node = || {
            let router = Router::new(crate::plan_from(&config).unwrap());
            let edits = DurableEdits::new(crate::cdr::tests::open_postgres(db.url()));
            edits.reapply(&router).unwrap();
            (router, edits)
        };
        let ((router_a, a), (router_b, b)) = (node(), node());
        let capacity = |router: &Router| router.number(number("+14255550123")).unwrap().capacity;
        let before = capacity(&router_b);
        // Nothing new yet.
        assert_eq!(b.refresh(&router_b).unwrap(), None);
        let edit = PlanEdit::NumberCapacity {
            number: number("+14255550123"),
            capacity: before + 5,
        };
        a.make(&edit, &router_a).unwrap().unwrap();
        assert_eq!(capacity(&router_a), before + 5);
        assert_eq!(b.refresh(&router_b).unwrap(), Some(1));
        assert_eq!(capacity(&router_b), before + 5);
        assert_eq!(b.refresh(&router_b).unwrap(), None);
        // An edit the plan refuses is neither live nor kept.
        let refused = PlanEdit::BridgeCapacity {
            bridge: "no-such-bridge".into(),
            capacity: 3,
        };
        assert!(a.make(&refused, &router_a).unwrap().is_err());
        assert_eq!(b.refresh(&router_b).unwrap(), None);
    }
}
