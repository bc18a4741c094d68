//! The OpenAPI 3.0 description of the admin API, served at `/api/v1/openapi.json`.
//!
//! Written by hand with `serde_json::json!` rather than derived (utoipa): the API is
//! small, the document stays readable in one file, it costs no proc-macro crates, and
//! a test holds it to the router's route list (`super::route_list`) path by path and
//! method by method, so it cannot drift.

use axum::Json;
use serde_json::{Value, json};

/// `GET /api/v1/openapi.json`.
pub(super) async fn serve() -> Json<Value> {
    Json(document())
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "dialbridge admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Numbers, bridges, organisers, call detail records, live \
                conferences and metrics of a dialbridge bridge. Every call carries \
                `Authorization: Bearer <admin token>`; every refusal is a 4xx with \
                `{\"error\": \"...\"}`. Outside this document: the live dashboard page \
                at `/dashboard` (the page itself carries no data and needs no token)."
        },
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
            "responses": {
                "Error": error_response("The request was refused; `error` says why."),
            }
        },
        "paths": {
            "/api/v1/bridges": {
                "get": op("List bridges with their load", None, ok_json("Bridges", "BridgeList")),
            },
            "/api/v1/bridges/{name}/capacity": {
                "put": op("Set a bridge's capacity (live)",
                    Some(body("Capacity")), ok_json("The bridge", "Bridge"))
                    .with_params(&[path_param("name", "The bridge's name")]),
            },
            "/api/v1/bridges/{name}/enabled": {
                "put": op("Enable or disable a bridge (a disabled one refuses calls with 480)",
                    Some(body("Enabled")), ok_json("The bridge", "Bridge"))
                    .with_params(&[path_param("name", "The bridge's name")]),
            },
            "/api/v1/numbers": {
                "get": op("List numbers with capacity, load and assignment", None,
                    ok_json("Numbers", "NumberList")),
            },
            "/api/v1/numbers/{e164}/assignment": {
                "put": op("Assign a number to a bridge, or move it",
                    Some(body("Assignment")), ok_json("The number", "Number"))
                    .with_params(&[e164_param()]),
                "delete": op("Unassign a number (its calls are refused from then on)",
                    None, ok_json("The number", "Number"))
                    .with_params(&[e164_param()]),
            },
            "/api/v1/numbers/{e164}/capacity": {
                "put": op("Set a number's concurrent-call capacity (live)",
                    Some(body("Capacity")), ok_json("The number", "Number"))
                    .with_params(&[e164_param()]),
            },
            "/api/v1/organisers": {
                "get": op("List organisers (never a PIN)", None,
                    ok_json("Organisers", "OrganiserList"))
                    .with_params(&[tenant_query()]),
            },
            "/api/v1/organisers/export.csv": {
                "get": op("Export organisers as the provider CSV file (PIN column empty)",
                    None, ok_csv("The organisers file"))
                    .with_params(&[tenant_query()]),
            },
            "/api/v1/organisers/import": {
                "post": op("Import the CSV file a provider filled in: all rows or none",
                    Some(json!({
                        "required": true,
                        "content": { "text/csv": { "schema": { "type": "string" } } }
                    })),
                    ok_json("What was applied", "ImportSummary"))
                    .with_params(&[json!({
                        "name": "provider", "in": "query", "required": false,
                        "description": "The audio-conferencing provider every imported organiser gets (default dialbridge)",
                        "schema": { "type": "string" }
                    })])
                    .with_response("422", json!({
                        "description": "The file was refused; `problems` lists every bad line",
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ImportRefused" } } }
                    })),
            },
            "/api/v1/organisers/{tenant}/{organiser}/pin/reset": {
                "post": op("Give an organiser a new random leader PIN, returned this once",
                    None, ok_json("The new PIN", "PinReset"))
                    .with_params(&[
                        path_param("tenant", "The tenant"),
                        path_param("organiser", "The organiser's ID"),
                    ]),
            },
            "/api/v1/organisers/{tenant}/{organiser}": {
                "get": op("One organiser (never a PIN) and their conference's settings",
                    None, ok_json("The organiser", "OrganiserSettings"))
                    .with_params(&organiser_params()),
                "patch": op("Change an organiser's conference settings; calls that join \
                    from then on get them", Some(body("SettingsPatch")),
                    ok_json("The organiser", "OrganiserSettings"))
                    .with_params(&organiser_params()),
            },
            "/api/v1/cdrs": {
                "get": op("Call detail records that ended in [since, until), oldest first",
                    None, ok_json("Records", "CdrList"))
                    .with_params(&cdr_params()),
            },
            "/api/v1/cdrs.csv": {
                "get": op("Call detail records as CSV", None, ok_csv("The records"))
                    .with_params(&cdr_params()),
            },
            "/api/v1/conferences": {
                "get": op("Conferences in progress and their participants", None,
                    ok_json("Conferences", "ConferenceList")),
            },
            "/api/v1/participants/{id}/mute": {
                "post": op("Mute or unmute a participant", Some(body("Mute")),
                    ok_json("Done", "MuteResult"))
                    .with_params(&[participant_param()]),
            },
            "/api/v1/participants/{id}/kick": {
                "post": op("End a participant's call", None, ok_json("Done", "KickResult"))
                    .with_params(&[participant_param()]),
            },
            "/api/v1/conferences/{tenant}/{id}/lock": {
                "post": op("Lock or unlock a conference", Some(body("Lock")),
                    ok_json("Done", "LockResult"))
                    .with_params(&[
                        path_param("tenant", "The tenant"),
                        path_param("id", "The conference ID (6 to 12 digits)"),
                    ]),
            },
            "/api/v1/conferences/{tenant}/{id}/recording": {
                "post": op("Start or stop recording a conference in progress (its full mix, \
                    16 kHz mono WAV, under the configured recordings directory); 409 when it \
                    is already, or not, being recorded", Some(body("Record")),
                    ok_json("The recording", "RecordingResult"))
                    .with_params(&[
                        path_param("tenant", "The tenant"),
                        path_param("id", "The conference ID (6 to 12 digits)"),
                    ]),
            },
            "/api/v1/events": {
                "get": op("Live state for the dashboard: a server-sent event stream of JSON \
                    `snapshot` events (bridges, numbers, refusals, conferences), sent when \
                    something changed, at most once a second", None, json!({
                    "description": "The event stream",
                    "content": { "text/event-stream": { "schema": { "type": "string" } } }
                })),
            },
            "/metrics": {
                "get": op("Prometheus metrics (text exposition format 0.0.4)", None, json!({
                    "description": "The metrics",
                    "content": { "text/plain": { "schema": { "type": "string" } } }
                })),
            },
            "/api/v1/openapi.json": {
                "get": op("This document", None, json!({
                    "description": "OpenAPI 3 document",
                    "content": { "application/json": { "schema": { "type": "object" } } }
                })),
            },
        }
    })
}

/// An operation with its summary, optional request body, 200 response and the error
/// responses every route shares.
fn op(summary: &str, request_body: Option<Value>, ok: Value) -> Value {
    let mut op = json!({
        "summary": summary,
        "responses": {
            "200": ok,
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
        }
    });
    if let (Some(b), Some(map)) = (request_body, op.as_object_mut()) {
        map.insert("requestBody".into(), b);
        if let Some(responses) = map.get_mut("responses").and_then(Value::as_object_mut) {
            responses.insert(
                "415".into(),
                json!({ "$ref": "#/components/responses/Error" }),
            );
            responses.insert(
                "422".into(),
                json!({ "$ref": "#/components/responses/Error" }),
            );
        }
    }
    op
}

/// Builder steps on an operation.
trait OpExt {
    fn with_params(self, params: &[Value]) -> Value;
    fn with_response(self, status: &str, response: Value) -> Value;
}

impl OpExt for Value {
    fn with_params(mut self, params: &[Value]) -> Value {
        if let Some(map) = self.as_object_mut() {
            map.insert("parameters".into(), Value::Array(params.to_vec()));
        }
        self
    }

    fn with_response(mut self, status: &str, response: Value) -> Value {
        if let Some(responses) = self.get_mut("responses").and_then(Value::as_object_mut) {
            responses.insert(status.into(), response);
        }
        self
    }
}

fn body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn ok_csv(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/csv": { "schema": { "type": "string" } } }
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": "string" } })
}

fn e164_param() -> Value {
    json!({ "name": "e164", "in": "path", "required": true,
            "description": "The number: + and 7 to 15 digits (%2B for + also works)",
            "schema": { "type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$" } })
}

fn participant_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true,
            "description": "The participant's id, as GET /api/v1/conferences lists it",
            "schema": { "type": "integer", "format": "int64", "minimum": 0 } })
}

fn organiser_params() -> [Value; 2] {
    [
        path_param("tenant", "The tenant"),
        path_param("organiser", "The organiser's ID"),
    ]
}

fn tenant_query() -> Value {
    json!({ "name": "tenant", "in": "query", "required": false,
            "description": "Only this tenant's organisers", "schema": { "type": "string" } })
}

fn cdr_params() -> [Value; 3] {
    let time = "RFC 3339 (2026-11-21T02:45:17.123Z) or milliseconds since 1970";
    [
        json!({ "name": "since", "in": "query", "required": false,
                "description": format!("Records that ended at or after this time: {time}"),
                "schema": { "type": "string" } }),
        json!({ "name": "until", "in": "query", "required": false,
                "description": format!("Records that ended before this time: {time}"),
                "schema": { "type": "string" } }),
        json!({ "name": "limit", "in": "query", "required": false,
                "description": "At most this many (JSON: default 1000, at most 10000; CSV: every record unless given)",
                "schema": { "type": "integer", "minimum": 1 } }),
    ]
}

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let nullable_string = json!({ "type": "string", "nullable": true });
    let integer = json!({ "type": "integer" });
    let boolean = json!({ "type": "boolean" });
    let list = |name: &str, item: &str| {
        json!({ "type": "object", "required": [name], "properties": {
            name: { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } }
        }})
    };
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": string } },
        "ImportRefused": { "type": "object", "required": ["error", "problems"], "properties": {
            "error": string,
            "problems": { "type": "array", "items": { "type": "object", "properties": {
                "line": integer, "problem": string } } }
        }},
        "Capacity": { "type": "object", "required": ["capacity"], "properties": {
            "capacity": { "type": "integer", "minimum": 1 } } },
        "Enabled": { "type": "object", "required": ["enabled"], "properties": { "enabled": boolean } },
        "Assignment": { "type": "object", "required": ["bridge"], "properties": { "bridge": string } },
        "Mute": { "type": "object", "required": ["muted"], "properties": { "muted": boolean } },
        "Lock": { "type": "object", "required": ["locked"], "properties": { "locked": boolean } },
        "Record": { "type": "object", "required": ["recording"], "properties": { "recording": boolean } },
        "Bridge": { "type": "object", "properties": {
            "name": string, "tenant": nullable_string, "enabled": boolean,
            "capacity": integer, "in_progress": integer, "admitted": integer,
            "refused": { "type": "object", "additionalProperties": integer,
                         "description": "Refusals by reason (only reasons that occurred)" }
        }},
        "BridgeList": list("bridges", "Bridge"),
        "Number": { "type": "object", "properties": {
            "number": string, "kind": { "type": "string", "enum": ["service", "user"] },
            "charge": { "type": "string", "enum": ["toll", "toll-free"] },
            "provider": string, "bridge": nullable_string,
            "capacity": integer, "in_progress": integer
        }},
        "NumberList": list("numbers", "Number"),
        "Organiser": { "type": "object", "properties": {
            "tenant": string, "organiser": string, "display_name": string,
            "toll_number": string, "toll_free_number": nullable_string,
            "conference_id": string, "wait_for_leader": boolean, "provider": string
        }},
        "OrganiserList": list("organisers", "Organiser"),
        "OrganiserSettings": { "allOf": [
            { "$ref": "#/components/schemas/Organiser" },
            { "type": "object", "properties": {
                "join_leave_tones": { "type": "boolean", "nullable": true,
                    "description": "A tone to everyone when someone joins or leaves; null: the bridge's default ([conference] join_leave_tones)." }
            }}
        ]},
        "SettingsPatch": { "type": "object", "minProperties": 1,
            "description": "Settings to change; one left out is kept, null restores the bridge's default.",
            "properties": {
                "join_leave_tones": { "type": "boolean", "nullable": true }
            }, "additionalProperties": false },
        "ImportSummary": { "type": "object", "properties": { "added": integer, "updated": integer } },
        "PinReset": { "type": "object", "properties": {
            "tenant": string, "organiser": string, "pin": string } },
        "Cdr": { "type": "object", "properties": {
            "call_id": string, "trunk": string, "calling": string, "dialled": string,
            "tenant": string, "bridge": string, "conference_id": nullable_string,
            "role": { "type": "string", "enum": ["leader", "participant"], "nullable": true },
            "arrived": { "type": "string", "format": "date-time" },
            "answered": { "type": "string", "format": "date-time", "nullable": true },
            "joined": { "type": "string", "format": "date-time", "nullable": true },
            "ended": { "type": "string", "format": "date-time" },
            "ended_by": { "type": "string",
                "enum": ["caller", "bridge", "cancel", "timeout", "shutdown", "error"] },
            "sip_status": integer,
            "charge": { "type": "string", "enum": ["toll", "toll-free"] }
        }},
        "CdrList": list("cdrs", "Cdr"),
        "Participant": { "type": "object", "properties": {
            "id": integer, "role": { "type": "string", "enum": ["leader", "participant"] },
            "calling": string, "dialled": string,
            "joined": { "type": "string", "format": "date-time" },
            "muted": boolean, "talking": boolean, "in_lobby": boolean,
            "quality": { "$ref": "#/components/schemas/ParticipantQuality" }
        }},
        "ParticipantQuality": { "type": "object", "nullable": true,
            "description": "Reception quality of the caller's RTP (RFC 3550), about once a second; null until measured.",
            "properties": {
                "loss_percent": { "type": "number", "description": "Lost over the last RTCP interval, percent." },
                "packets_lost": integer,
                "jitter_ms": { "type": "number", "description": "Interarrival jitter, ms." },
                "rtt_ms": { "type": "number", "nullable": true, "description": "Round-trip time from RTCP, ms." }
        }},
        "Conference": { "type": "object", "properties": {
            "tenant": string, "conference_id": string, "organiser": nullable_string,
            "locked": boolean, "recording": boolean,
            "participants": { "type": "array", "items": { "$ref": "#/components/schemas/Participant" } }
        }},
        "ConferenceList": list("conferences", "Conference"),
        "MuteResult": { "type": "object", "properties": { "id": integer, "muted": boolean } },
        "KickResult": { "type": "object", "properties": { "id": integer, "kicked": boolean } },
        "LockResult": { "type": "object", "properties": {
            "tenant": string, "conference_id": string, "locked": boolean } },
        "RecordingResult": { "type": "object", "properties": {
            "tenant": string, "conference_id": string, "recording": boolean,
            "file": string,
            "seconds": { "type": "number", "nullable": true, "description": "Seconds in the file, once stopped." } } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("\"$ref\":\"#/components/") {
            rest = &rest[at + 21..];
            let end = rest.find('"').unwrap();
            let mut node = &doc["components"];
            for part in rest[..end].split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "unresolved $ref {}", &rest[..end]);
        }
    }
}
