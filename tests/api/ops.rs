//! Everyday operations through the real binary, on both stores: rotating a token (the old
//! secret working through its grace and refused after it, on a second gateway too), stored
//! credentials listed and deleted, the CLI's update, rotate, audit, credential and backup
//! commands, and expiry notices delivered once per token and window to a real webhook.

mod backup;
mod cli;
mod credentials;
mod notify;
mod rotate;
mod selfservice;

use http::StatusCode;

use crate::support::app::TestApp;

/// Generates `mod <case> { sqlite, postgres }` tests of a case taking a [`Backend`].
///
/// [`Backend`]: crate::support::app::Backend
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use crate::support::app::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(Backend::Postgres).await;
            }
        }
    )*};
}
use both_backends;

/// The status of a `GET` of a protected path on `app` with `token`.
async fn status(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .get(format!("{}/rest/api/1.0/projects", app.proxy_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("a request to the gateway")
        .status()
}
