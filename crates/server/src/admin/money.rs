//! Money on the admin API: a tenant's balance (credits, currency, each pool's minutes
//! left this month), top-ups and adjustments of its credits (each a ledger row,
//! committed before the answer), and the monthly usage export per provider and number
//! (CSV, from the call records). A tenant admin sees its own tenant's balance and usage,
//! an operator the usage of its provider's numbers; another tenant is "not found".

use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use dialbridge_ledger::{Amount, Balance, Ledger, LedgerError, Month};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Shared, blocking};
use crate::cdr::{Timestamp, UsageFilter};
use crate::tokens::Principal;

/// The tenant a `/api/v1/tenants/{tenant}/...` route names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TenantPath {
    /// The tenant's name (`contoso`).
    tenant: String,
}

/// Credits to add, or (negative) to take away.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Credits {
    /// Decimal text in the tenant's currency, at most four decimals: `"5.00"` adds,
    /// `"-2.50"` is an adjustment (a balance never goes below 0.00).
    #[schema(example = "5.00")]
    amount: String,
}

impl Credits {
    /// The amount, or 422 naming what is wrong with it.
    pub(super) fn amount(&self) -> Result<Amount, ApiError> {
        self.amount
            .parse::<Amount>()
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("amount: {e}")))
    }
}

/// A tenant's money now.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BalanceView {
    tenant: String,
    /// ISO 4217 (`USD`).
    currency: String,
    /// Opening balance, top-ups and adjustments, less what calls have spent.
    #[schema(example = "20.00")]
    credits: String,
    /// Held by calls in progress (each holds the increment it is in, and briefly the next).
    #[schema(example = "0.03")]
    reserved: String,
    /// What new calls may take: credits less reserved.
    #[schema(example = "19.97")]
    available: String,
    /// The month the pools are counted in (UTC), `2026-12`.
    month: String,
    pools: Vec<PoolView>,
}

/// A monthly minute pool this month.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PoolView {
    /// The country calling code (`+1`).
    country: String,
    /// The pool's size each month.
    minutes: u64,
    /// Started minutes used (or held by calls in progress) this month.
    minutes_used: u64,
    /// Whole minutes left this month.
    minutes_left: u64,
}

impl From<Balance> for BalanceView {
    fn from(b: Balance) -> BalanceView {
        BalanceView {
            tenant: b.tenant,
            currency: b.currency.to_string(),
            credits: b.credits.to_string(),
            reserved: b.reserved.to_string(),
            available: b.available.to_string(),
            month: b.month,
            pools: b
                .pools
                .into_iter()
                .map(|p| PoolView {
                    country: p.country.to_string(),
                    minutes: p.minutes,
                    minutes_used: p.minutes_used,
                    minutes_left: p.minutes_left,
                })
                .collect(),
        }
    }
}

/// Which month's usage.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageQuery {
    /// `YYYY-MM` (UTC): calls that ended in that month. The current month if absent.
    #[param(example = "2026-12")]
    month: Option<String>,
}

/// A tenant's balance: credits, currency, and each pool's minutes left this month.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/balance", params(TenantPath),
    responses((status = 200, description = "The balance", body = BalanceView)))]
pub(super) async fn balance(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<TenantPath>, PathRejection>,
) -> Result<Json<BalanceView>, ApiError> {
    let Path(TenantPath { tenant }) = path?;
    let ledger = in_scope(&state, &who, &tenant)?;
    let balance = ledger
        .balance(&tenant, SystemTime::now())
        .ok_or_else(|| no_account(&tenant))?;
    Ok(Json(balance.into()))
}

/// Add credits to a tenant (a top-up), or take some away (an adjustment).
///
/// Each is a row of the ledger, committed before the answer. An adjustment may bring
/// what is available to 0.00, never below: 409 says how much can be taken now.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/credits", params(TenantPath),
    request_body = Credits,
    responses((status = 200, description = "The balance after", body = BalanceView),
        (status = 409, description = "The adjustment would take the balance below 0.00",
            body = super::ErrorBody),
        (status = 422, description = "The amount is not money, or is 0.00",
            body = super::ErrorBody)))]
pub(super) async fn credits(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    path: Result<Path<TenantPath>, PathRejection>,
    body: Result<Json<Credits>, JsonRejection>,
) -> Result<Json<BalanceView>, ApiError> {
    let Path(TenantPath { tenant }) = path?;
    let ledger = in_scope(&state, &who, &tenant)?;
    let Json(credits) = body?;
    let amount = credits.amount()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = Box::new(move |result| {
        let _ = tx.send(result);
    });
    let balance = ledger
        .top_up(&tenant, amount, SystemTime::now(), done)
        .map_err(|e| match e {
            LedgerError::UnknownTenant(_) => no_account(&tenant),
            LedgerError::BelowZero { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            LedgerError::ZeroAmount | LedgerError::Amount { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            e => ApiError::internal("changing the credits", &e),
        })?;
    // The row is committed before the answer says so.
    match rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ApiError::internal("writing the credits", &e)),
        Err(e) => return Err(ApiError::internal("writing the credits", &e)),
    }
    tracing::info!(%tenant, %amount, "admin: credits changed");
    Ok(Json(balance.into()))
}

/// The month's usage per provider and number, as CSV.
///
/// Columns: provider, number, direction, funding, calls, minutes, cost, currency. The
/// answered calls that ended in the month (UTC), summed per provider, number, direction
/// (inbound or outbound), funding source (`credits`, `pool +1`, `none` for calls nobody
/// billed) and currency; minutes paid for, else started minutes. A tenant admin gets its
/// tenant's calls, an operator those of its provider's numbers.
#[utoipa::path(get, path = "/api/v1/usage", params(UsageQuery),
    responses((status = 200, description = "The usage", content_type = "text/csv",
        body = String)))]
pub(super) async fn usage(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(UsageQuery { month }) = query?;
    let month = match month {
        Some(m) => m
            .parse::<Month>()
            .map_err(|e| ApiError::bad_request(format!("month: {e}")))?,
        None => Month::of(SystemTime::now()),
    };
    let filter = UsageFilter {
        since: Timestamp::from_unix_millis(month.start_unix_millis()),
        until: Timestamp::from_unix_millis(month.next().start_unix_millis()),
        tenant: match &who {
            Principal::TenantAdmin { tenant } => Some(tenant.clone()),
            _ => None,
        },
        provider: match &who {
            Principal::Operator { provider } => Some(provider.clone()),
            _ => None,
        },
    };
    let cdrs = state.cdrs.clone();
    let csv = blocking("exporting the usage", move || {
        let mut out = Vec::new();
        cdrs.usage_csv(&filter, &mut out)
            .map_err(|e| ApiError::internal("exporting the usage", &e))?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"usage-{month}.csv\""),
            ),
        ],
        csv,
    ))
}

/// The ledger, if `who` may see `tenant`'s money; another tenant's is "not found", as
/// one that does not exist.
fn in_scope<'a>(state: &'a Shared, who: &Principal, tenant: &str) -> Result<&'a Ledger, ApiError> {
    if !who.sees_tenant(tenant) {
        return Err(no_account(tenant));
    }
    state
        .ledger
        .as_ref()
        .ok_or_else(|| ApiError::not_found("the bridge keeps no money: [money] is not configured"))
}

fn no_account(tenant: &str) -> ApiError {
    ApiError::not_found(format!("tenant \"{tenant}\" has no money account"))
}
