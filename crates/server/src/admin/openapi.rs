//! The OpenAPI 3.1 description of the admin API, served at `/api/v1/openapi.json`,
//! derived by utoipa from the handlers and the types they take and answer: each
//! handler's `#[utoipa::path]` gives its method, path, parameters and bodies, its doc
//! comment the summary and description, and `#[derive(ToSchema)]` on the views and
//! requests gives the schemas, so a field added to a view is documented by the same
//! change. [`Shared`] adds what every route has in common: the bearer and session
//! schemes and the refusals of the credential and role checks and the extractors.
//!
//! [`ApiDoc`] lists the handlers and `super::routes` routes them; a test holds the two
//! lists equal, path by path and method by method.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    dashboard, dial_outs, live, money, organisers, plan, records, session, tokens, trunks,
};

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub(super) async fn serve() -> axum::Json<Document> {
    axum::Json(document())
}

/// Every handler the router serves, and what the document says of the whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dialbridge admin API",
        description = "Numbers, bridges, trunks, organisers, call detail records, money, \
            live conferences, dial-outs and metrics of a dialbridge bridge. Every call \
            carries `Authorization: Bearer <token>` or the session cookie `POST \
            /api/v1/session` sets; every refusal is a 4xx with `{\"error\": \"...\"}`. A \
            token has a role: admin (everything, top-ups included), operator (its \
            provider's numbers, trunks and their usage), tenant-admin (its tenant's \
            bridges, organisers, conferences, dial-outs, records, balance, usage and \
            dashboard) or read-only (metrics, trunks and the dashboard). A role that may \
            never use a route gets 403; another tenant's or \
            provider's resource is 404, as one that does not exist. Outside this document: \
            the live dashboard page at `/dashboard` (the page itself carries no data and \
            needs no credential)."
    ),
    paths(
        plan::list_bridges,
        plan::set_bridge_capacity,
        plan::set_bridge_enabled,
        plan::list_numbers,
        plan::assign_number,
        plan::unassign_number,
        plan::set_number_capacity,
        trunks::list,
        plan::list_edits,
        organisers::list,
        organisers::export,
        organisers::import,
        organisers::reset_pin,
        organisers::show,
        organisers::update_settings,
        records::list_cdrs,
        records::export_cdrs,
        money::balance,
        money::credits,
        money::usage,
        live::list,
        dashboard::events,
        live::mute,
        live::kick,
        live::lock,
        live::record,
        dial_outs::dial_out,
        dial_outs::list,
        dial_outs::show,
        records::metrics,
        serve,
        tokens::create,
        tokens::list,
        tokens::revoke,
        session::sign_in,
        session::sign_out,
    ),
    components(schemas(super::ErrorBody)),
    security(("bearer" = []), ("session" = [])),
    modifiers(&Shared)
)]
struct ApiDoc;

/// What every route has in common, added to the derived document.
struct Shared;

/// The reusable response every refusal refers to.
const ERROR: &str = "Error";

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Components::new);
        components.security_schemes.insert(
            "bearer".into(),
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)).into(),
        );
        components.security_schemes.insert(
            "session".into(),
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::session::COOKIE_NAME,
            )))
            .into(),
        );
        let error = ResponseBuilder::new()
            .description("The request was refused; `error` says why.")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ERROR)))
                    .build(),
            )
            .build();
        components.responses.insert(ERROR.into(), error.into());
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_refusals(op);
            }
        }
    }
}

/// 401 from the credential check, 403 from the role check, 400 and 404 from the path
/// and query (a malformed or unknown name, or another tenant's); with a JSON body, 415
/// and 422 from its extractor too. A status the handler documents itself is kept.
fn add_refusals(op: &mut Operation) {
    let json_body = matches!(&op.request_body,
        Some(RefOr::T(body)) if body.content.contains_key("application/json"));
    let statuses: &[&str] = if json_body {
        &["400", "401", "403", "404", "415", "422"]
    } else {
        &["400", "401", "403", "404"]
    };
    for status in statuses {
        op.responses
            .responses
            .entry((*status).into())
            .or_insert_with(|| Ref::from_response_name(ERROR).into());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The document's `(METHOD, path)` pairs.
    fn documented(doc: &Document) -> BTreeSet<(String, String)> {
        let value = serde_json::to_value(doc).unwrap();
        value["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let routed: BTreeSet<(String, String)> = super::super::route_list()
            .into_iter()
            .map(|(method, path)| (method.to_string(), path.to_owned()))
            .collect();
        assert_eq!(documented(&document()), routed);
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
    }

    #[test]
    fn every_operation_shares_the_refusals_and_the_bearer_scheme() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(
            doc["security"],
            serde_json::json!([{ "bearer": [] }, { "session": [] }])
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["session"],
            serde_json::json!({ "type": "apiKey", "in": "cookie", "name": "dialbridge_session" })
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            serde_json::json!({ "type": "http", "scheme": "bearer" })
        );
        assert_eq!(
            doc["components"]["schemas"]["Error"]["required"],
            serde_json::json!(["error"])
        );
        let error = serde_json::json!({ "$ref": "#/components/responses/Error" });
        let capacity = &doc["paths"]["/api/v1/numbers/{e164}/capacity"]["put"]["responses"];
        for status in ["400", "401", "403", "404", "415", "422"] {
            assert_eq!(capacity[status], error, "{status}");
        }
        let import = &doc["paths"]["/api/v1/organisers/import"]["post"]["responses"];
        assert_eq!(
            import["422"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ImportRefused"
        );
        assert_eq!(import["415"], serde_json::Value::Null, "a CSV body: no 415");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let text = doc.to_string();
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("\"$ref\":\"#/components/") {
            rest = &rest[at + 21..];
            let end = rest.find('"').unwrap();
            let mut node = &doc["components"];
            for part in rest[..end].split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "unresolved $ref {}", &rest[..end]);
            seen += 1;
        }
        assert!(seen > 50, "only {seen} references");
    }
}
