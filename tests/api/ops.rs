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
