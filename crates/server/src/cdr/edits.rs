//! The administrators' plan edits in the bridge's durable file, as kind, target and
//! value (what they mean is `plan_edits`'s business): one row per kind and target, the
//! latest change last.

use std::time::SystemTime;

use super::{CdrError, CdrStore, Timestamp};

/// One stored edit: kind, target, value (`None`: nothing).
pub type StoredEdit = (String, String, Option<String>);

impl CdrStore {
    /// Every edit, oldest change first.
    pub fn plan_edits(&self) -> Result<Vec<StoredEdit>, CdrError> {
        let rows = self.lock()?.run(|db| {
            db.query(
                "SELECT kind, target, value FROM plan_edits ORDER BY seq",
                &[],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.text(0)?.to_owned(),
                    r.text(1)?.to_owned(),
                    r.opt_text(2)?.map(str::to_owned),
                ))
            })
            .collect()
    }

    /// Keeps an edit (replacing the earlier one of its kind and target, and moving it
    /// last) and commits before returning.
    pub fn save_plan_edit(
        &self,
        kind: &str,
        target: &str,
        value: Option<&str>,
        at: SystemTime,
    ) -> Result<(), CdrError> {
        let made_ms = Timestamp::from_system_time(at).unix_millis();
        self.lock()?.transaction(|db| {
            db.execute(
                "DELETE FROM plan_edits WHERE kind = ?1 AND target = ?2",
                &[kind.into(), target.into()],
            )?;
            // Another node may insert the same kind and target between the two (in
            // PostgreSQL): the later value then wins in place.
            db.execute(
                "INSERT INTO plan_edits (kind, target, value, made_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, target)
                 DO UPDATE SET value = excluded.value, made_ms = excluded.made_ms",
                &[kind.into(), target.into(), value.into(), made_ms.into()],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_latest_edit_of_a_target_replaces_the_earlier_and_comes_last() {
        super::super::tests::on_both_backends(latest_edit_replaces_on);
    }

    fn latest_edit_replaces_on(store: &CdrStore) {
        let now = SystemTime::now();
        store
            .save_plan_edit("number_capacity", "+14255550123", Some("5"), now)
            .unwrap();
        store
            .save_plan_edit("bridge_enabled", "contoso-bridge", Some("false"), now)
            .unwrap();
        store
            .save_plan_edit("number_capacity", "+14255550123", Some("7"), now)
            .unwrap();
        store
            .save_plan_edit("assignment", "+14255550100", None, now)
            .unwrap();
        let edits = store.plan_edits().unwrap();
        let text: Vec<String> = edits
            .iter()
            .map(|(k, t, v)| format!("{k} {t} {v:?}"))
            .collect();
        assert_eq!(
            text,
            [
                "bridge_enabled contoso-bridge Some(\"false\")",
                "number_capacity +14255550123 Some(\"7\")",
                "assignment +14255550100 None",
            ]
        );
    }
}
