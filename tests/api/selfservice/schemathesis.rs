//! Schemathesis against the self-service API as a signed-in user calls it: the document at
//! `/rest/tokengate/1.0/openapi.json`, signed in by alice's Bitbucket password, which the
//! stand-in Bitbucket knows. It must find nothing: the document states every constraint the
//! handlers enforce, every status and every content type.

use tokengate::selfservice::self_service_document;

use super::{ALICE_PASSWORD, basic, options, start};
use crate::support::app::Backend;
use crate::support::both_backends;
use crate::support::schemathesis::{finds_nothing, schemathesis};

both_backends!(schemathesis_finds_nothing);

async fn schemathesis_finds_nothing(backend: Backend) {
    let Some(st) = schemathesis() else {
        return;
    };
    let app = start(options(backend)).await;
    let document = self_service_document();
    finds_nothing(
        &st,
        &format!("{}/rest/tokengate/1.0/openapi.json", app.proxy_url()),
        &basic("alice", ALICE_PASSWORD),
        &document,
    )
    .await;
    app.finish().await;
}
