//! `/healthz`, `/readyz` and `/metrics`: no admin token needed.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AdminState;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let json = [(header::CONTENT_TYPE, "application/json")];
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, json, r#"{"status":"ready"}"#),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json,
            r#"{"status":"store unavailable"}"#,
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let m = &state.metrics;
    m.in_flight
        .set(i64::try_from(state.requests.in_flight()).unwrap_or(i64::MAX));
    m.observe_log_drops((state.log_drops)());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}
