//! The guessing guard's counters in the directory's file: written as they change,
//! read back at start, so that a restart forgives no guesser and lifts no lock-out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Directory, DirectoryError, corrupt};
use crate::guard::{CallerKey, GuardRecord, GuardScope};
use crate::ivr::{ConferenceId, ConferenceKey, TenantId};

impl Directory {
    /// Every stored counter (with PostgreSQL, every node's).
    pub fn guard_records(&self) -> Result<Vec<GuardRecord>, DirectoryError> {
        self.store.read(|db| {
            db.query(
                "SELECT scope, key, failures, window_start_ms, blocked_until_ms
                 FROM guard_counters",
                &[],
                |r| {
                    Ok(GuardRecord {
                        scope: scope_from(&r.get::<String>(0)?, &r.get::<String>(1)?)?,
                        failures: u32::try_from(r.get::<i64>(2)?)
                            .map_err(corrupt("guard_counters.failures"))?,
                        window_start: from_ms(r.get(3)?),
                        blocked_until: r.get::<Option<i64>>(4)?.map(from_ms),
                    })
                },
            )
        })
    }

    /// Writes changed counters (one with no failures and no block is deleted) and
    /// drops those whose window and block both ended before `now` less `window`.
    pub fn save_guard_records(
        &self,
        records: &[GuardRecord],
        now: SystemTime,
        window: Duration,
    ) -> Result<(), DirectoryError> {
        self.store.write(|db| {
            for record in records {
                let (scope, key) = scope_key(&record.scope);
                if record.failures == 0 && record.blocked_until.is_none() {
                    db.execute(
                        "DELETE FROM guard_counters WHERE scope = ?1 AND key = ?2",
                        &[&scope, &key],
                    )?;
                    continue;
                }
                db.execute(
                    "INSERT INTO guard_counters
                         (scope, key, failures, window_start_ms, blocked_until_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (scope, key) DO UPDATE SET failures = ?3,
                         window_start_ms = ?4, blocked_until_ms = ?5",
                    &[
                        &scope,
                        &key,
                        &i64::from(record.failures),
                        &to_ms(record.window_start),
                        &record.blocked_until.map(to_ms),
                    ],
                )?;
            }
            let now_ms = to_ms(now);
            db.execute(
                "DELETE FROM guard_counters
                 WHERE window_start_ms < ?1 AND COALESCE(blocked_until_ms, 0) < ?2",
                &[&(now_ms - to_ms(UNIX_EPOCH + window)), &now_ms],
            )?;
            Ok(())
        })
    }
}

fn scope_key(scope: &GuardScope) -> (&'static str, String) {
    match scope {
        GuardScope::Caller(c) => ("caller", c.0.clone()),
        // Conference IDs are digits: the last `/` splits the two.
        GuardScope::Conference(c) => ("conference", format!("{}/{}", c.tenant, c.id)),
    }
}

fn scope_from(scope: &str, key: &str) -> Result<GuardScope, DirectoryError> {
    match scope {
        "caller" => Ok(GuardScope::Caller(CallerKey(key.to_string()))),
        "conference" => {
            let (tenant, id) = key
                .rsplit_once('/')
                .ok_or(DirectoryError::Corrupt("guard_counters.key"))?;
            Ok(GuardScope::Conference(ConferenceKey {
                tenant: TenantId::new(tenant.to_string()),
                id: ConferenceId::parse(id).map_err(corrupt("guard_counters.key"))?,
            }))
        }
        _ => Err(DirectoryError::Corrupt("guard_counters.scope")),
    }
}

fn to_ms(t: SystemTime) -> i64 {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scope: GuardScope, failures: u32, at: SystemTime) -> GuardRecord {
        GuardRecord {
            scope,
            failures,
            window_start: at,
            blocked_until: None,
        }
    }

    #[test]
    fn counters_are_written_read_back_and_cleared() {
        for opened in crate::directory::backends::both() {
            counters_are_written_read_back_and_cleared_on(&opened.dir);
        }
    }

    fn counters_are_written_read_back_and_cleared_on(dir: &Directory) {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let conference = ConferenceKey {
            tenant: TenantId::new("contoso"),
            id: ConferenceId::parse("123456789").unwrap(),
        };
        let mut blocked = record(GuardScope::Caller(CallerKey("telco-a/+1".into())), 0, now);
        blocked.blocked_until = Some(now + Duration::from_secs(900));
        let counted = record(GuardScope::Conference(conference.clone()), 4, now);
        let window = Duration::from_secs(600);
        dir.save_guard_records(&[blocked.clone(), counted.clone()], now, window)
            .unwrap();
        let mut back = dir.guard_records().unwrap();
        back.sort_by_key(|r| r.failures);
        assert_eq!(back, vec![blocked.clone(), counted.clone()]);

        // A counter back at nothing is deleted; one long past is swept.
        let cleared = record(GuardScope::Conference(conference), 0, now);
        let later = now + Duration::from_secs(500);
        dir.save_guard_records(&[cleared], later, window).unwrap();
        assert_eq!(dir.guard_records().unwrap(), vec![blocked.clone()]);
        dir.save_guard_records(&[], now + Duration::from_secs(2000), window)
            .unwrap();
        assert!(dir.guard_records().unwrap().is_empty());
    }
}
