//! The admin HTTP API on the admin listener: JSON in and out, every call authorised by
//! `Authorization: Bearer <token>` (RFC 6750 §2.1) or the dashboard's session cookie,
//! and limited by the token's role and scope ([`auth`]: admin, operator of a provider,
//! tenant admin, read-only). Numbers and bridges change live
//! through the router; organisers through the directory; call detail records and
//! Prometheus metrics are read here; live conferences go through [`LiveCalls`];
//! balances, top-ups and the monthly usage export go through the ledger and the records
//! ([`money`]).
//!
//! Every refused request gets a 4xx with `{"error": "<what was wrong>"}`: 401 without a
//! good credential, 403 for a role that may never use the route, and 404 for another
//! tenant's or provider's named resource, as for one that does not exist, so a scoped
//! token cannot even learn what others have. The routes are listed once, each with who
//! may use it, in [`routes`], which builds the router and is checked against the
//! OpenAPI document served at `/api/v1/openapi.json`. The live dashboard's page (served
//! without a token: it holds no data) and its event stream are added beside them in
//! [`app`] (see [`dashboard`]).

mod auth;
mod dashboard;
mod dial_outs;
mod live;
mod money;
mod openapi;
mod organisers;
mod plan;
mod records;
mod session;
mod tokens;
mod trunks;

pub use dashboard::{DashboardHub, MAX_STREAMS as MAX_DASHBOARD_STREAMS};
pub use live::{LiveCalls, LiveFuture};
// The meetings' own views, re-exported where the API's users have always found them.
pub use crate::meeting_view::{
    ConferenceView, LiveError, ParticipantQuality, ParticipantView, RecordingView,
};
pub use openapi::document as openapi_document;
pub use session::{COOKIE_NAME as SESSION_COOKIE, Sessions};

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use dialbridge_conference::directory::Directory;
use dialbridge_ledger::Ledger;
use dialbridge_router::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use utoipa::ToSchema;

use crate::cdr::CdrStore;
use crate::config::Config;
use crate::metrics::MetricsSources;
use crate::plan_edits::DurableEdits;
use crate::tokens::Role;
use crate::trunk_health::HealthBoard;
use auth::Access;

/// The largest organiser import accepted (100 000 rows of a few hundred bytes).
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

/// What the API works on.
pub struct AdminState {
    pub router: Router,
    pub directory: Directory,
    pub cdrs: CdrStore,
    /// The bootstrap admin token (`config.admin.token`); other tokens are in `cdrs`. An
    /// empty one matches nothing.
    pub token: String,
    /// The dashboard's signed-in sessions.
    pub sessions: Sessions,
    pub live: Arc<dyn LiveCalls>,
    pub metrics: MetricsSources,
    /// The dashboard's event streams.
    pub dashboard: DashboardHub,
    /// What administrators changed in the plan, kept over reloads and restarts.
    pub edits: DurableEdits,
    /// The trunks' health as the signaling task last published it (empty until it runs).
    pub trunk_health: HealthBoard,
    /// Credits and pools (`None` without `[money]`: the balance routes answer 404).
    pub ledger: Option<Ledger>,
}

impl AdminState {
    /// The state for `config`: its admin token.
    pub fn new(
        config: &Config,
        router: Router,
        directory: Directory,
        cdrs: CdrStore,
        live: Arc<dyn LiveCalls>,
        metrics: MetricsSources,
    ) -> Result<AdminState, crate::Error> {
        Ok(AdminState {
            router,
            directory,
            edits: DurableEdits::new(cdrs.clone()),
            cdrs,
            token: config.admin.token.clone(),
            sessions: Sessions::default(),
            live,
            metrics,
            dashboard: DashboardHub::default(),
            trunk_health: HealthBoard::default(),
            ledger: None,
        })
    }

    /// The state with the bridge's ledger, for the money routes.
    pub fn with_ledger(mut self, ledger: Option<Ledger>) -> AdminState {
        self.ledger = ledger;
        self
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("token", &"***")
            .finish_non_exhaustive()
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the requests
/// in flight.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
        if !addr.ip().is_loopback() {
            // Plain HTTP: the bearer token crosses the network in clear.
            tracing::warn!(%addr, "admin API reachable from other hosts over plain HTTP");
        }
    }
    let dashboard = state.dashboard.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Event streams never end by themselves; the graceful shutdown waits for them.
            dashboard.close();
        })
        .await
}

/// The API as an axum router, ready to serve.
pub fn app(state: AdminState) -> axum::Router {
    let state = Arc::new(state);
    let table = routes();
    table
        .router
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Added after the bearer layer, so outside it: the page and its assets.
        .merge(dashboard::pages())
        .with_state(state)
}

/// Every route of the API as `(method, path)`, in the order they are registered.
pub fn route_list() -> Vec<(Method, &'static str)> {
    routes().list
}

type Shared = Arc<AdminState>;

/// The routes, built and listed in one place so the list cannot drift from the router.
struct Routes {
    router: axum::Router<Shared>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    /// Adds a route that the roles `access` names may use.
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<Shared>,
    ) -> Self {
        self.list.push((method, path));
        let handler = handler.route_layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                auth::require(access, request, next)
            },
        ));
        // Routes on the same path merge into one method router.
        self.router = self.router.route(path, handler);
        self
    }
}

fn routes() -> Routes {
    let table = Routes {
        router: axum::Router::new(),
        list: Vec::new(),
    };
    // Who besides admins may use each route; the handlers narrow what they see.
    let tenant = Access::Also(&[Role::TenantAdmin]);
    let operator = Access::Also(&[Role::Operator]);
    table
        .add(
            Method::GET,
            "/api/v1/bridges",
            tenant,
            get(plan::list_bridges),
        )
        // A bridge's capacity is the deployment's to give, not the tenant's to raise.
        .add(
            Method::PUT,
            "/api/v1/bridges/{name}/capacity",
            Access::Admin,
            put(plan::set_bridge_capacity),
        )
        .add(
            Method::PUT,
            "/api/v1/bridges/{name}/enabled",
            tenant,
            put(plan::set_bridge_enabled),
        )
        .add(
            Method::GET,
            "/api/v1/numbers",
            Access::Also(&[Role::Operator, Role::TenantAdmin]),
            get(plan::list_numbers),
        )
        // Trunks carry everybody's traffic: an operator sees its own, a tenant none.
        .add(
            Method::GET,
            "/api/v1/trunks",
            Access::Also(&[Role::Operator, Role::ReadOnly]),
            get(trunks::list),
        )
        .add(
            Method::GET,
            "/api/v1/plan/edits",
            Access::Admin,
            get(plan::list_edits),
        )
        // Numbers are the operator's (Operator Connect): a tenant sees its own, assigns none.
        .add(
            Method::PUT,
            "/api/v1/numbers/{e164}/assignment",
            operator,
            put(plan::assign_number),
        )
        .add(
            Method::DELETE,
            "/api/v1/numbers/{e164}/assignment",
            operator,
            delete(plan::unassign_number),
        )
        .add(
            Method::PUT,
            "/api/v1/numbers/{e164}/capacity",
            operator,
            put(plan::set_number_capacity),
        )
        .add(
            Method::GET,
            "/api/v1/organisers",
            tenant,
            get(organisers::list),
        )
        .add(
            Method::GET,
            "/api/v1/organisers/export.csv",
            tenant,
            get(organisers::export),
        )
        .add(
            Method::POST,
            "/api/v1/organisers/import",
            tenant,
            post(organisers::import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .add(
            Method::POST,
            "/api/v1/organisers/{tenant}/{organiser}/pin/reset",
            tenant,
            post(organisers::reset_pin),
        )
        .add(
            Method::GET,
            "/api/v1/organisers/{tenant}/{organiser}",
            tenant,
            get(organisers::show),
        )
        .add(
            Method::PATCH,
            "/api/v1/organisers/{tenant}/{organiser}",
            tenant,
            patch(organisers::update_settings),
        )
        .add(Method::GET, "/api/v1/cdrs", tenant, get(records::list_cdrs))
        .add(
            Method::GET,
            "/api/v1/cdrs.csv",
            tenant,
            get(records::export_cdrs),
        )
        .add(
            Method::GET,
            "/api/v1/tenants/{tenant}/balance",
            tenant,
            get(money::balance),
        )
        // Credits are money: a top-up comes from whoever takes the payment (an admin, or
        // the billing system with an admin token), never from the tenant itself.
        .add(
            Method::POST,
            "/api/v1/tenants/{tenant}/credits",
            Access::Admin,
            post(money::credits),
        )
        .add(
            Method::GET,
            "/api/v1/usage",
            Access::Also(&[Role::Operator, Role::TenantAdmin]),
            get(money::usage),
        )
        .add(Method::GET, "/api/v1/conferences", tenant, get(live::list))
        .add(
            Method::GET,
            dashboard::EVENTS,
            Access::Also(&[Role::TenantAdmin, Role::ReadOnly]),
            get(dashboard::events),
        )
        .add(
            Method::POST,
            "/api/v1/participants/{id}/mute",
            tenant,
            post(live::mute),
        )
        .add(
            Method::POST,
            "/api/v1/participants/{id}/kick",
            tenant,
            post(live::kick),
        )
        .add(
            Method::POST,
            "/api/v1/conferences/{tenant}/{id}/lock",
            tenant,
            post(live::lock),
        )
        .add(
            Method::POST,
            "/api/v1/conferences/{tenant}/{id}/recording",
            tenant,
            post(live::record),
        )
        .add(
            Method::POST,
            "/api/v1/conferences/{tenant}/{id}/dial-out",
            tenant,
            post(dial_outs::dial_out),
        )
        .add(
            Method::GET,
            "/api/v1/conferences/{tenant}/{id}/dial-outs",
            tenant,
            get(dial_outs::list),
        )
        .add(
            Method::GET,
            "/api/v1/dial-outs/{id}",
            tenant,
            get(dial_outs::show),
        )
        .add(
            Method::GET,
            "/metrics",
            Access::Also(&[Role::ReadOnly]),
            get(records::metrics),
        )
        .add(
            Method::GET,
            "/api/v1/openapi.json",
            Access::Anyone,
            get(openapi::serve),
        )
        .add(
            Method::POST,
            "/api/v1/tokens",
            Access::Admin,
            post(tokens::create),
        )
        .add(
            Method::GET,
            "/api/v1/tokens",
            Access::Admin,
            get(tokens::list),
        )
        .add(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Access::Admin,
            delete(tokens::revoke),
        )
        .add(
            Method::POST,
            session::SESSION_PATH,
            Access::Open,
            post(session::sign_in),
        )
        .add(
            Method::DELETE,
            session::SESSION_PATH,
            Access::Anyone,
            delete(session::sign_out),
        )
}

/// A refused request: its status and [`ErrorBody`] (or [`ImportRefused`], for an import
/// with bad lines).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    problems: Vec<ImportProblem>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// 400: the request itself is malformed (a path or query value).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: our fault; the cause is logged, not shown.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "admin API: {what} failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} failed; see the bridge's log"),
        )
    }

    /// The bad lines of a refused import, answered beside the message.
    fn with_problems(mut self, problems: Vec<ImportProblem>) -> ApiError {
        self.problems = problems;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What was wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.message;
        if self.problems.is_empty() {
            (self.status, Json(ErrorBody { error })).into_response()
        } else {
            let problems = self.problems;
            (self.status, Json(ImportRefused { error, problems })).into_response()
        }
    }
}

/// The body of every refusal.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong.
    error: String,
}

/// The body of a refused organiser import: nothing was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRefused {
    /// What was wrong, in one line.
    error: String,
    /// Every bad row.
    problems: Vec<ImportProblem>,
}

/// One bad row of an organiser import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProblem {
    /// The line the row starts on.
    pub line: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// Axum's extractor rejections (malformed JSON, wrong content type, bad path or query)
/// as our JSON error, keeping axum's status (400, 415 or 422) and its explanation.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> ApiError {
                ApiError::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::PathRejection
);

/// Runs blocking store work (SQLite, PIN hashing) off the async workers.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(what, &e))?
}

async fn no_such_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such route: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The API's JSON request bodies read exactly as its handlers read them (axum's `Json`
/// extractor, then our refusal), for the fuzz targets in `fuzz/`: the body types stay
/// private to the API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::Json;
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value};

    use super::{ApiError, dial_outs, live, money, organisers, plan};

    /// Every route that takes a JSON body, by the name [`read_body`] knows it by.
    pub const BODIES: [&str; 9] = [
        "mute",
        "lock",
        "recording",
        "assignment",
        "capacity",
        "enabled",
        "settings",
        "dial-out",
        "credits",
    ];

    /// Reads `body` as the request body of `route` (one of [`BODIES`]): what was read
    /// (its `Debug`), or the status and message the API would refuse it with. `None`
    /// for a route that takes no JSON body.
    pub fn read_body(route: &str, body: &[u8]) -> Option<Result<String, (u16, String)>> {
        let read = match route {
            "mute" => read::<live::Mute>(body),
            "dial-out" => read::<dial_outs::DialOutBody>(body),
            "lock" => read::<live::Lock>(body),
            "recording" => read::<live::Record>(body),
            "assignment" => read::<plan::Assignment>(body),
            // The bridge's and the number's capacity routes take the same body.
            "capacity" => read::<plan::Capacity>(body),
            "enabled" => read::<plan::Enabled>(body),
            "settings" => Json::<Map<String, Value>>::from_bytes(body)
                .map_err(ApiError::from)
                .and_then(|Json(fields)| organisers::SettingsPatch::parse(fields))
                .map(|patch| format!("{patch:?}")),
            "credits" => Json::<money::Credits>::from_bytes(body)
                .map_err(ApiError::from)
                .and_then(|Json(credits)| credits.amount())
                .map(|amount| format!("{amount:?}")),
            _ => return None,
        };
        Some(read.map_err(|e| (e.status.as_u16(), e.message)))
    }

    fn read<T: DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> Result<String, ApiError> {
        let Json(value) = Json::<T>::from_bytes(body)?;
        Ok(format!("{value:?}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_body_reads_as_its_handler_reads_it() {
            let good = [
                r#"{"muted":true}"#,
                r#"{"locked":false}"#,
                r#"{"recording":true}"#,
                r#"{"bridge":"eu-1"}"#,
                r#"{"capacity":40}"#,
                r#"{"enabled":false}"#,
                r#"{"join_leave_tones":null}"#,
                r#"{"number":"+14255557000"}"#,
                r#"{"amount":"5.00"}"#,
            ];
            for (route, body) in BODIES.into_iter().zip(good) {
                let read = read_body(route, body.as_bytes());
                assert!(matches!(read, Some(Ok(_))), "{route}: {read:?}");
                // Unknown fields are refused, as the handlers refuse them.
                let odd = read_body(route, br#"{"x":1}"#).unwrap().unwrap_err();
                assert!((400..500).contains(&odd.0), "{route}: {odd:?}");
            }
            assert_eq!(read_body("kick", b"{}"), None);
        }
    }
}
