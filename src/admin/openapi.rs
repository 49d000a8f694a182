//! The OpenAPI 3.1 document of the admin API, generated from the handlers and types so it
//! cannot drift, with the constraints the handlers check ([`constraints`]), served at
//! `GET /admin/v1/openapi.json`.
//!
//! The document is served without the admin token: it describes the API and holds no data,
//! and client generators can fetch it before they are given a secret.

pub(crate) mod constraints;

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AdminState;

/// The admin API as a whole.
#[derive(OpenApi)]
#[openapi(
    info(title = "tokengate admin API", description = "Token lifecycle, users' Bitbucket credentials and the audit trail. Every call but this document needs `Authorization: Bearer <admin.token>`."),
    paths(
        super::tokens::create,
        super::tokens::list,
        super::tokens::show,
        super::tokens::patch,
        super::tokens::revoke,
        super::tokens::rotate,
        super::credentials::list_credentials,
        super::credentials::set_credential,
        super::credentials::delete_credential,
        super::audit::list,
    ),
    modifiers(&AdminTokenScheme),
    tags(
        (name = "tokens", description = "API tokens"),
        (name = "credentials", description = "Users' Bitbucket credentials for upstream.identity = \"credential\""),
        (name = "audit", description = "The audit trail"),
    )
)]
pub struct ApiDoc;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`admin.token` (or TOKENGATE_ADMIN__TOKEN)"))
                    .build(),
            ),
        );
    }
}

/// The whole document, constraints included.
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    constraints::refine(&mut doc);
    doc
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| openapi_document().to_string());

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_call_as_openapi_3_1() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/admin/v1/tokens", "post"),
            ("/admin/v1/tokens", "get"),
            ("/admin/v1/tokens/{id}", "get"),
            ("/admin/v1/tokens/{id}", "patch"),
            ("/admin/v1/tokens/{id}", "delete"),
            ("/admin/v1/tokens/{id}/rotate", "post"),
            ("/admin/v1/credentials", "get"),
            ("/admin/v1/users/{user}/credential", "put"),
            ("/admin/v1/users/{user}/credential", "delete"),
            ("/admin/v1/audit", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["TokenView"]["properties"]["state"].is_object());
        assert!(
            schemas["TokenView"]["properties"]
                .get("secret_hash")
                .is_none()
        );
        assert!(
            schemas["CreateTokenRequest"]["required"]
                .as_array()
                .unwrap()
                .contains(&"user".into())
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["admin_token"]["scheme"],
            "bearer"
        );
        // Every field of a patch is optional; only the ones that may be cleared take null.
        let patch = &schemas["PatchTokenRequest"];
        assert!(patch.get("required").is_none(), "{patch}");
        assert_eq!(patch["properties"]["description"]["type"], "string");
        assert_eq!(
            patch["properties"]["expires_at"]["type"],
            serde_json::json!(["string", "null"])
        );
    }
}
