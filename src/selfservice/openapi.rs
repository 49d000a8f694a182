//! The OpenAPI 3.1 document of the self-service API, generated from its handlers and types,
//! served without sign-in at `GET /rest/tokengate/1.0/openapi.json`.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::SelfService;

mod constraints;

/// The self-service API on the proxy listener.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokengate self-service API",
        description = "People's own API tokens, on the proxy listener. Sign in with a tokengate token (Bearer, or Basic with the owner's name), a Bitbucket password or token, or Bitbucket's session cookie; a change signed in by a session needs `X-Atlassian-Token: no-check` and an `Origin` of this site."
    ),
    paths(
        super::api::me,
        super::api::list,
        super::api::create,
        super::api::show,
        super::api::patch,
        super::api::rotate,
        super::api::revoke,
    ),
    modifiers(&SignInSchemes),
    security(("token" = []), ("bitbucket" = [])),
    tags((name = "self-service", description = "The caller's own tokens, and everyone's with the manager right"))
)]
pub struct SelfServiceDoc;

struct SignInSchemes;

impl utoipa::Modify for SignInSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A tokengate token, acting for its owner"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bitbucket",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("A Bitbucket user name and password or token"))
                    .build(),
            ),
        );
    }
}

/// The whole document, constraints included.
pub fn self_service_document() -> serde_json::Value {
    let mut doc =
        serde_json::to_value(SelfServiceDoc::openapi()).expect("the OpenAPI document serializes");
    constraints::refine(&mut doc);
    doc
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| self_service_document().to_string());

pub(super) fn routes() -> Router<Arc<SelfService>> {
    Router::new().route("/rest/tokengate/1.0/openapi.json", get(document))
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
    fn documents_every_self_service_call() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/rest/tokengate/1.0/me"));
        let tokens = &paths["/rest/tokengate/1.0/tokens"];
        assert!(tokens["get"].is_object() && tokens["post"].is_object());
        let one = &paths["/rest/tokengate/1.0/tokens/{id}"];
        for method in ["get", "patch", "delete"] {
            assert!(one[method].is_object(), "{method}");
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for schema in [
            "Me",
            "SelfCreateRequest",
            "TokenView",
            "CreatedToken",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(schema), "{schema} is described");
        }
    }

    #[test]
    fn states_what_the_handlers_check() {
        let doc = self_service_document();
        let one = &doc["paths"]["/rest/tokengate/1.0/tokens/{id}"];
        assert_eq!(
            one["get"]["parameters"][0]["schema"]["pattern"],
            "^[0-9a-z]{12}$"
        );
        let create = &doc["paths"]["/rest/tokengate/1.0/tokens"]["post"]["responses"];
        for status in ["400", "413", "415", "422"] {
            assert!(create[status].is_object(), "{status} of create");
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["PatchTokenRequest"]["minProperties"], 1);
        assert_eq!(
            schemas["SelfCreateRequest"]["properties"]["description"]["minLength"],
            1
        );
        assert!(schemas["GatewayRefusal"].is_object());
    }
}
