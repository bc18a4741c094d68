//! Call detail records (JSON and CSV; a tenant admin gets its tenant's only) and the
//! Prometheus metrics.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Shared, blocking};
use crate::cdr::{Cdr, CdrFilter, MAX_LIST, Timestamp};
use crate::metrics;
use crate::tokens::Principal;

/// Bytes per chunk of a streamed export.
const EXPORT_CHUNK: usize = 64 * 1024;
/// Chunks queued towards a slow client before the export waits for it.
const EXPORT_CHUNKS_IN_FLIGHT: usize = 4;

/// Which records. All three are read as text so a bad one gets our 400 message.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CdrQuery {
    /// Records that ended at or after this time: RFC 3339 (2026-11-21T02:45:17.123Z) or
    /// milliseconds since 1970.
    since: Option<String>,
    /// Records that ended before this time: RFC 3339 or milliseconds since 1970.
    until: Option<String>,
    /// At most this many (JSON: default 1000, at most 10000; CSV: every record unless
    /// given).
    #[param(value_type = Option<u32>, minimum = 1)]
    limit: Option<String>,
}

/// Call detail records, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CdrList {
    cdrs: Vec<Cdr>,
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
            tenant: None,
        })
    }
}

/// Call detail records that ended in [since, until), oldest first.
#[utoipa::path(get, path = "/api/v1/cdrs", params(CdrQuery),
    responses((status = 200, description = "Records", body = CdrList)))]
pub(super) async fn list_cdrs(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<CdrQuery>, QueryRejection>,
) -> Result<Json<CdrList>, ApiError> {
    let mut filter = query?.0.filter(MAX_LIST)?;
    filter.tenant = own_tenant(&who);
    let cdrs = state.cdrs.clone();
    let records = blocking("listing CDRs", move || {
        cdrs.list(&filter)
            .map_err(|e| ApiError::internal("reading CDRs", &e))
    })
    .await?;
    Ok(Json(CdrList { cdrs: records }))
}

/// Call detail records as CSV.
///
/// Every record selected (no limit unless asked), streamed as it is read so memory stays
/// flat however big the export.
#[utoipa::path(get, path = "/api/v1/cdrs.csv", params(CdrQuery),
    responses((status = 200, description = "The records", content_type = "text/csv",
        body = String)))]
pub(super) async fn export_cdrs(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<CdrQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let mut filter = query?.0.filter(usize::MAX)?;
    filter.tenant = own_tenant(&who);
    let cdrs = state.cdrs.clone();
    let (tx, rx) = mpsc::channel(EXPORT_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter::new(tx);
        let result = cdrs.export_csv(&filter, &mut out);
        match result
            .map_err(|e| e.to_string())
            .and_then(|n| out.finish().map(|()| n).map_err(|e| e.to_string()))
        {
            Ok(n) => tracing::info!(records = n, "admin: CDRs exported"),
            // The client went away, or the store failed: the body ends early (no final
            // chunk), which the client sees as a broken download.
            Err(e) => {
                tracing::warn!(error = %e, "admin: CDR export cut short");
                out.fail(e);
            }
        }
    });
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"cdrs.csv\""),
        ],
        Body::from_stream(ChunkStream(rx)),
    ))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "The metrics", content_type = "text/plain",
        body = String)))]
pub(super) async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.metrics),
    )
}

/// The tenant whose records alone `who` sees (`None`: all of them).
fn own_tenant(who: &Principal) -> Option<String> {
    match who {
        Principal::TenantAdmin { tenant } => Some(tenant.clone()),
        _ => None,
    }
}

type Chunk = Result<Bytes, io::Error>;

/// An `io::Write` on the blocking pool that hands the body out in chunks, waiting when
/// the client reads slower than the export writes.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<Chunk>) -> ChunkWriter {
        ChunkWriter {
            buf: Vec::with_capacity(EXPORT_CHUNK),
            tx,
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Sends what is left.
    fn finish(&mut self) -> io::Result<()> {
        self.send_buffer()
    }

    /// Ends the body with an error.
    fn fail(&mut self, why: String) {
        let _ = self.tx.blocking_send(Err(io::Error::other(why)));
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The csv writer flushes at its end; chunks go out when full or at `finish`.
        Ok(())
    }
}

/// The receiving end as the body's stream of chunks.
struct ChunkStream(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChunkStream {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}
