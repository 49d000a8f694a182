//! What the self-service handlers check that the types alone do not tell utoipa, as for the
//! admin API (whose request types and extractors these calls share): lengths, patterns,
//! bounds, the body's content type and size, and the 400 any call can get for a request the
//! gateway cannot read.

use serde_json::{Value, json};

use crate::admin::extract::MAX_BODY_BYTES;
use crate::admin::openapi::constraints::{
    allowed_ips, description, error_response, merge, token_operations, user,
};

const TOKENS: &str = "/rest/tokengate/1.0/tokens";
const TOKEN: &str = "/rest/tokengate/1.0/tokens/{id}";
const ROTATE: &str = "/rest/tokengate/1.0/tokens/{id}/rotate";

/// Adds the constraints to the generated document.
pub(super) fn refine(doc: &mut Value) {
    let property = |schema: &'static str, field: &'static str| {
        ["components", "schemas", schema, "properties", field]
    };
    merge(
        doc,
        &property("SelfCreateRequest", "description"),
        description(),
    );
    merge(
        doc,
        &property("SelfCreateRequest", "allowed_ips"),
        allowed_ips(true),
    );
    // Absent or null: the caller.
    merge(
        doc,
        &property("SelfCreateRequest", "user"),
        json!({ "anyOf": [user(), { "type": "null" }] }),
    );
    merge(
        doc,
        &property("PatchTokenRequest", "description"),
        description(),
    );
    merge(
        doc,
        &property("PatchTokenRequest", "allowed_ips"),
        allowed_ips(false),
    );
    // A patch changes at least one thing.
    merge(
        doc,
        &["components", "schemas", "PatchTokenRequest"],
        json!({ "minProperties": 1 }),
    );

    token_operations(doc, TOKENS, TOKEN, ROTATE);

    // Every call with a body can be refused for its size or its content type.
    for (path, method) in [(TOKENS, "post"), (TOKEN, "patch"), (ROTATE, "post")] {
        merge(
            doc,
            &["paths", path, method, "responses"],
            json!({
                "413": error_response(&format!("The body is larger than {} KiB (`payload_too_large`)", MAX_BODY_BYTES / 1024)),
                "415": error_response("The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)"),
            }),
        );
    }
    // And any call can be refused before it is read: a path the gateway cannot route (bytes
    // that are not UTF-8, a backslash), answered in Bitbucket's error shape as every refusal
    // of the proxy is, or a parameter or body of the wrong shape, in the API's own.
    merge(
        doc,
        &["components", "schemas", "GatewayRefusal"],
        json!({
            "description": "A refusal by the gateway before the call is routed, in Bitbucket's error shape.",
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["message"],
                        "properties": {
                            "context": { "type": ["string", "null"] },
                            "message": { "type": "string" },
                            "exceptionName": { "type": ["string", "null"] },
                        },
                    },
                },
            },
        }),
    );
    let operations: Vec<(String, String)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (path.clone(), method.clone()))
        })
        .collect();
    for (path, method) in operations {
        let responses = &mut doc["paths"][&path][&method]["responses"];
        let description = responses["400"]["description"]
            .as_str()
            .unwrap_or("The request cannot be read")
            .to_owned();
        responses["400"] = json!({
            "description": format!("{description}; or a path the gateway cannot route"),
            "content": { "application/json": { "schema": { "anyOf": [
                { "$ref": "#/components/schemas/ErrorBody" },
                { "$ref": "#/components/schemas/GatewayRefusal" },
            ] } } },
        });
    }
}
