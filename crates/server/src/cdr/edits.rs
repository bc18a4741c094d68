//! The administrators' plan edits in the bridge's durable file, as kind, target and
//! value (what they mean is `plan_edits`'s business): one row per kind and target, the
//! latest change last.

use std::time::SystemTime;

use super::{CdrError, CdrStore};

/// One stored edit: kind, target, value (`None`: nothing).
pub type StoredEdit = (String, String, Option<String>);

impl CdrStore {
    /// Every edit, oldest change first.
    pub fn plan_edits(&self) -> Result<Vec<StoredEdit>, CdrError> {
        let conn = self.lock()?;
        let mut statement =
            conn.prepare("SELECT kind, target, value FROM plan_edits ORDER BY seq")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM plan_edits WHERE kind = ?1 AND target = ?2",
            (kind, target),
        )?;
        let made_ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        tx.execute(
            "INSERT INTO plan_edits (kind, target, value, made_ms) VALUES (?1, ?2, ?3, ?4)",
            (kind, target, value, made_ms),
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_latest_edit_of_a_target_replaces_the_earlier_and_comes_last() {
        let store = CdrStore::open(":memory:").unwrap();
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
