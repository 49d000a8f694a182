//! Schemathesis against the running admin API: the document at `/admin/v1/openapi.json`, every
//! check, positive and negative data, in all four phases (examples, coverage, fuzzing and
//! stateful sequences of calls), on both backends. It must find nothing: the document states
//! every constraint the handlers enforce, every status and every content type.
//!
//! How Schemathesis is run is in [`crate::support::schemathesis`].

use base64::Engine as _;

use super::sqlite;
use crate::support::app::{ADMIN_TOKEN, Backend, Options, spawn_app};
use crate::support::schemathesis::{finds_nothing, schemathesis};

async fn run_against(options: Options) {
    let Some(st) = schemathesis() else {
        return;
    };
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let app = spawn_app(options.set("upstream.credential_key", key.as_str())).await;
    finds_nothing(
        &st,
        &format!("{}/admin/v1/openapi.json", app.admin_url()),
        &format!("Bearer {ADMIN_TOKEN}"),
        &tokengate::admin::openapi_document(),
    )
    .await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schemathesis_finds_nothing() {
    run_against(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schemathesis_finds_nothing() {
    run_against(Options::new(Backend::Postgres).set("admin.token", ADMIN_TOKEN)).await;
}
