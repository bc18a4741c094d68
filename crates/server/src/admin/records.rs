//! Call detail records (JSON and CSV) and the Prometheus metrics.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Shared, blocking};
use crate::cdr::{CdrFilter, MAX_LIST, Timestamp};
use crate::metrics;

/// The most records one CSV export carries; page with `since`/`until` beyond it.
pub const MAX_EXPORT: usize = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CdrQuery {
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

impl CdrQuery {
    fn filter(self, max: usize) -> Result<CdrFilter, ApiError> {
        let time = |name: &str, v: Option<String>| {
            v.map(|v| {
                v.parse::<Timestamp>()
                    .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            })
            .transpose()
        };
        let limit = match self.limit {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "limit: {v:?} is not a whole number from 1 to {max}"
                    )));
                }
            },
        };
        Ok(CdrFilter {
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            limit,
        })
    }
}

/// `GET /api/v1/cdrs?since=&until=&limit=`: records that ended in `[since, until)`,
/// oldest first.
pub(super) async fn list_cdrs(
    State(state): State<Shared>,
    query: Result<Query<CdrQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = query?.0.filter(MAX_LIST)?;
    let cdrs = state.cdrs.clone();
    let records = blocking("listing CDRs", move || {
        cdrs.list(&filter)
            .map_err(|e| ApiError::internal("reading CDRs", &e))
    })
    .await?;
    Ok(Json(json!({ "cdrs": records })))
}

/// `GET /api/v1/cdrs.csv?since=&until=&limit=`.
pub(super) async fn export_cdrs(
    State(state): State<Shared>,
    query: Result<Query<CdrQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let mut filter = query?.0.filter(MAX_EXPORT)?;
    filter.limit = Some(filter.limit.unwrap_or(MAX_EXPORT));
    let cdrs = state.cdrs.clone();
    let csv = blocking("exporting CDRs", move || {
        let mut out = Vec::new();
        cdrs.export_csv(&filter, &mut out)
            .map_err(|e| ApiError::internal("exporting CDRs", &e))?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"cdrs.csv\""),
        ],
        csv,
    ))
}

/// `GET /metrics`: the Prometheus text format.
pub(super) async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.metrics),
    )
}
