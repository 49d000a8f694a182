//! What the handlers check that the types alone do not tell utoipa: lengths, patterns, bounds,
//! formats, the statuses every call can answer and the content types of the exports. Applied
//! to the generated document, from the same constants the checks use, so a client generator
//! or a fuzzer reading the document knows exactly which input is accepted.

use serde_json::{Map, Value, json};

use crate::admin::audit::{CSV_CONTENT_TYPE, MAX_LIMIT as MAX_AUDIT_PAGE, NDJSON_CONTENT_TYPE};
use crate::admin::cursor::{AUDIT_CURSOR_PATTERN, TOKEN_CURSOR_PATTERN};
use crate::admin::extract::MAX_BODY_BYTES;
use crate::admin::model::MAX_LIMIT as MAX_TOKEN_PAGE;
use crate::lifecycle::{
    CREDENTIAL_PATTERN, DESCRIPTION_PATTERN, MAX_ALLOWED_IPS, MAX_CREDENTIAL_BYTES, MAX_TEXT_CHARS,
    USER_PATTERN,
};

/// A token id, as `crate::token::TokenId::parse` takes it.
pub(crate) const ID_PATTERN: &str = "^[0-9a-z]{12}$";

/// The `format` of an allow-list entry: an IPv4 or IPv6 address, or a CIDR whose host bits are
/// zero (`10.0.0.0/8`, not `10.1.2.3/8`). No JSON Schema format says that, so it is named here
/// and explained in the entry's description.
pub(crate) const IP_NETWORK_FORMAT: &str = "ip-network";

pub(crate) fn user() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT_CHARS,
        "pattern": USER_PATTERN,
    })
}

pub(crate) fn description() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TEXT_CHARS,
        "pattern": DESCRIPTION_PATTERN,
    })
}

pub(crate) fn allowed_ips(nullable: bool) -> Value {
    json!({
        "type": if nullable { json!(["array", "null"]) } else { json!("array") },
        "maxItems": MAX_ALLOWED_IPS,
        "items": {
            "type": "string",
            "format": IP_NETWORK_FORMAT,
            "description": "An IPv4 or IPv6 address (taken as /32 or /128), or a CIDR whose host \
                bits are zero: 10.0.0.0/8, not 10.1.2.3/8, which is refused as a likely typo.",
        },
    })
}

/// Merges `fields` into the object at `path` (object keys), keeping what is there otherwise.
pub(crate) fn merge(doc: &mut Value, path: &[&str], fields: Value) {
    let mut at = &mut *doc;
    for key in path {
        at = at
            .as_object_mut()
            .map(|o| o.entry(*key).or_insert_with(|| Value::Object(Map::new())))
            .expect("the document's objects are objects");
    }
    if let (Some(target), Value::Object(fields)) = (at.as_object_mut(), fields) {
        target.extend(fields);
    }
}

/// The parameter `name` of `method path`.
fn parameter<'a>(doc: &'a mut Value, path: &str, method: &str, name: &str) -> &'a mut Value {
    doc["paths"][path][method]["parameters"]
        .as_array_mut()
        .and_then(|ps| ps.iter_mut().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

pub(crate) fn set_parameter_schema(
    doc: &mut Value,
    path: &str,
    method: &str,
    name: &str,
    schema: Value,
) {
    parameter(doc, path, method, name)["schema"] = schema;
}

pub(crate) fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    })
}

/// The parameters of the token operations both APIs offer, at `tokens` (the listing),
/// `token` (one token by id) and `rotate`; and the rotation's body, which may be left out and,
/// when it is sent, is an object (not `null`).
pub(crate) fn token_operations(doc: &mut Value, tokens: &str, token: &str, rotate: &str) {
    let id = || json!({ "type": "string", "pattern": ID_PATTERN });
    for method in ["get", "patch", "delete"] {
        set_parameter_schema(doc, token, method, "id", id());
    }
    set_parameter_schema(doc, rotate, "post", "id", id());
    merge(
        doc,
        &["paths", rotate, "post", "requestBody"],
        json!({
            "required": false,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RotateRequest" } } },
        }),
    );
    set_parameter_schema(doc, tokens, "get", "user", user());
    set_parameter_schema(
        doc,
        tokens,
        "get",
        "limit",
        json!({ "type": "integer", "minimum": 1, "maximum": MAX_TOKEN_PAGE }),
    );
    set_parameter_schema(
        doc,
        tokens,
        "get",
        "cursor",
        json!({ "type": "string", "pattern": TOKEN_CURSOR_PATTERN }),
    );
}

/// Adds the constraints to the generated document.
pub(super) fn refine(doc: &mut Value) {
    let schemas = ["components", "schemas"];
    let property = |schema: &'static str, field: &'static str| {
        let mut path = schemas.to_vec();
        path.extend([schema, "properties", field]);
        path
    };

    for schema in ["CreateTokenRequest", "PatchTokenRequest"] {
        merge(doc, &property(schema, "description"), description());
        merge(
            doc,
            &property(schema, "allowed_ips"),
            allowed_ips(schema == "CreateTokenRequest"),
        );
    }
    merge(doc, &property("CreateTokenRequest", "user"), user());
    // A patch changes at least one thing.
    merge(
        doc,
        &[schemas[0], schemas[1], "PatchTokenRequest"],
        json!({ "minProperties": 1 }),
    );
    merge(
        doc,
        &property("SetCredentialRequest", "credential"),
        json!({
            "minLength": 1,
            "maxLength": MAX_CREDENTIAL_BYTES,
            "pattern": CREDENTIAL_PATTERN,
        }),
    );

    let tokens = "/admin/v1/tokens";
    let token = "/admin/v1/tokens/{id}";
    let rotate = "/admin/v1/tokens/{id}/rotate";
    token_operations(doc, tokens, token, rotate);
    let credential = "/admin/v1/users/{user}/credential";
    for method in ["put", "delete"] {
        set_parameter_schema(doc, credential, method, "user", user());
    }

    // The audit listing reads an empty value as none.
    let audit = "/admin/v1/audit";
    let or_empty =
        |schema: Value| json!({ "anyOf": [schema, { "type": "string", "maxLength": 0 }] });
    let kinds: Vec<&str> = crate::audit::AuditKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    set_parameter_schema(
        doc,
        audit,
        "get",
        "type",
        or_empty(json!({ "type": "string", "enum": kinds })),
    );
    for time in ["since", "until"] {
        set_parameter_schema(
            doc,
            audit,
            "get",
            time,
            or_empty(json!({ "type": "string", "format": "date-time" })),
        );
    }
    set_parameter_schema(
        doc,
        audit,
        "get",
        "limit",
        or_empty(json!({ "type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE })),
    );
    set_parameter_schema(
        doc,
        audit,
        "get",
        "cursor",
        or_empty(json!({ "type": "string", "pattern": AUDIT_CURSOR_PATTERN })),
    );
    set_parameter_schema(
        doc,
        audit,
        "get",
        "format",
        or_empty(json!({ "type": "string", "enum": ["json", "ndjson", "csv"] })),
    );
    // An export answers in its own content type, one event a line (NDJSON) or a row (CSV).
    let mut exports = Map::new();
    for content_type in [NDJSON_CONTENT_TYPE, CSV_CONTENT_TYPE] {
        // The media type, without the CSV's charset parameter.
        let media_type = content_type.split(';').next().unwrap_or(content_type);
        exports.insert(
            media_type.to_owned(),
            json!({ "schema": { "type": "string" } }),
        );
    }
    merge(
        doc,
        &["paths", audit, "get", "responses", "200", "content"],
        Value::Object(exports),
    );

    // Every call with a body can be refused for its size or its content type.
    for (path, method) in [
        (tokens, "post"),
        (token, "patch"),
        (rotate, "post"),
        (credential, "put"),
    ] {
        merge(
            doc,
            &["paths", path, method, "responses"],
            json!({
                "413": error_response(&format!("The body is larger than {} KiB (`payload_too_large`)", MAX_BODY_BYTES / 1024)),
                "415": error_response("The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)"),
            }),
        );
    }
}

#[cfg(test)]
mod tests;
