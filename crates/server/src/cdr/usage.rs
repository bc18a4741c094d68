//! The monthly usage export an operator bills its customers from: the answered calls
//! that ended in a period, summed per provider, number, direction and funding source —
//! how many, how many minutes, and what they cost from Communications Credits.
//!
//! Minutes are those paid for where the call was billed (whole increments), else the
//! started minutes between answer and end ("a started minute is a minute"). Cost is in
//! the tenant's currency; rows of different currencies are never summed together.

use std::io::Write;

use dialbridge_ledger::Amount;

use super::{CdrError, CdrStore, Timestamp};

/// The CSV columns of [`CdrStore::usage_csv`], in order.
pub const USAGE_COLUMNS: [&str; 8] = [
    "provider",
    "number",
    "direction",
    "funding",
    "calls",
    "minutes",
    "cost",
    "currency",
];

/// Which records a usage export sums: those that ended in `[since, until)`, of one
/// tenant or provider when the asker sees only theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    pub since: Timestamp,
    pub until: Timestamp,
    /// Only this tenant's calls (a tenant admin's view).
    pub tenant: Option<String>,
    /// Only calls of this provider's numbers (an operator's view).
    pub provider: Option<String>,
}

impl CdrStore {
    /// Writes the usage `filter` selects as CSV with the [`USAGE_COLUMNS`] header, one
    /// row per provider, number, direction, funding source and currency, and returns
    /// how many rows. A call nobody billed shows `none` as its funding.
    pub fn usage_csv<W: Write>(&self, filter: &UsageFilter, out: W) -> Result<usize, CdrError> {
        let rows = self.lock()?.run(|db| {
            db.query(
                "SELECT COALESCE(provider, ''), dialled, direction, COALESCE(funding, 'none'),
                        COALESCE(currency, ''), COUNT(*),
                        CAST(SUM(CASE WHEN billed_s IS NOT NULL THEN (billed_s + 59) / 60
                                 ELSE (CASE WHEN ended_ms > answered_ms
                                            THEN ended_ms - answered_ms ELSE 0 END
                                       + 59999) / 60000 END) AS BIGINT),
                        CAST(SUM(COALESCE(cost, 0)) AS BIGINT)
                 FROM cdrs
                 WHERE ended_ms >= ?1 AND ended_ms < ?2 AND answered_ms IS NOT NULL
                   AND (CAST(?3 AS TEXT) IS NULL OR tenant = ?3)
                   AND (CAST(?4 AS TEXT) IS NULL OR provider = ?4)
                 GROUP BY 1, 2, 3, 4, 5
                 ORDER BY 1, 2, 3, 4, 5",
                &[
                    filter.since.unix_millis().into(),
                    filter.until.unix_millis().into(),
                    filter.tenant.as_deref().into(),
                    filter.provider.as_deref().into(),
                ],
            )
        })?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok([
                    r.text(0)?.to_owned(),
                    r.text(1)?.to_owned(),
                    r.text(2)?.to_owned(),
                    r.text(3)?.to_owned(),
                    r.int(5)?.to_string(),
                    r.int(6)?.to_string(),
                    Amount::from_units(r.int(7)?).to_string(),
                    r.text(4)?.to_owned(),
                ])
            })
            .collect::<Result<Vec<_>, CdrError>>()?;
        let mut w = csv::Writer::from_writer(out);
        w.write_record(USAGE_COLUMNS)?;
        for row in &rows {
            w.write_record(row)?;
        }
        w.flush().map_err(csv::Error::from)?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::sample;
    use super::super::{Billed, Direction};
    use super::*;

    fn export(store: &CdrStore, filter: &UsageFilter) -> Vec<String> {
        let mut out = Vec::new();
        store.usage_csv(filter, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn usage_sums_a_months_answered_calls_per_provider_and_number() {
        super::super::tests::on_both_backends(usage_sums_on);
    }

    fn usage_sums_on(store: &CdrStore) {
        let billed = |n: i64, seconds: u64, cost: &str| {
            let mut c = sample(n);
            c.billing = Some(Billed {
                funding: "credits".into(),
                seconds,
                cost: cost.parse().unwrap(),
                currency: "USD".parse().unwrap(),
            });
            c
        };
        store.record(&billed(1, 120, "0.06")).unwrap();
        store.record(&billed(2, 60, "0.03")).unwrap();
        // A toll call of Telco A: 61 s answered is two started minutes, nothing billed.
        let mut toll = sample(3);
        toll.dialled = "+33170000100".parse().unwrap();
        toll.provider = Some("Telco A".into());
        toll.billing = None;
        toll.answered = Some(Timestamp::from_unix_millis(
            toll.ended.unix_millis() - 61_000,
        ));
        store.record(&toll).unwrap();
        // Unanswered: no usage. Another tenant's: only in the unscoped export.
        let mut cancelled = billed(4, 0, "0.00");
        cancelled.answered = None;
        store.record(&cancelled).unwrap();
        let mut fabrikam = sample(5);
        fabrikam.tenant = "fabrikam".into();
        fabrikam.provider = Some("Telco B".into());
        fabrikam.dialled = "+493070000100".parse().unwrap();
        fabrikam.billing = None;
        fabrikam.direction = Direction::Outbound;
        store.record(&fabrikam).unwrap();
        let all = UsageFilter {
            since: Timestamp::from_unix_millis(0),
            until: Timestamp::from_unix_millis(i64::MAX),
            tenant: None,
            provider: None,
        };
        let fab_minutes = sample(5).ended.unix_millis() - sample(5).answered.unwrap().unix_millis();
        let fab_minutes = (fab_minutes + 59_999) / 60_000;
        assert_eq!(
            export(store, &all),
            [
                USAGE_COLUMNS.join(","),
                "Microsoft,+18885550100,inbound,credits,2,3,0.09,USD".to_string(),
                "Telco A,+33170000100,inbound,none,1,2,0.00,".to_string(),
                format!("Telco B,+493070000100,outbound,none,1,{fab_minutes},0.00,"),
            ]
        );
        let contoso_telco_a = UsageFilter {
            tenant: Some("contoso".into()),
            provider: Some("Telco A".into()),
            ..all.clone()
        };
        assert_eq!(export(store, &contoso_telco_a).len(), 2);
        // The period: records that ended before it are not summed.
        let later = UsageFilter {
            since: Timestamp::from_unix_millis(sample(5).ended.unix_millis()),
            ..all
        };
        assert_eq!(export(store, &later).len(), 2);
    }
}
