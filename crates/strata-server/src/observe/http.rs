//! The HTTP listener: `/metrics` (Prometheus' text format), `/healthz`
//! (alive: 200 while the process answers), `/readyz` (200 only while it
//! serves requests; 503 while it recovers or stops), `/`, the status
//! page, and `/status.json`, its facts as JSON (what `strata status`
//! reads). Plain HTTP/1.1; it serves nothing that changes data.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{status_page, Observer, Phase};

/// Why the HTTP listener stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("serving HTTP: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the observer's pages on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    observer: Arc<Observer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let app = Router::new()
        .route("/", get(status))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(observer);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics(State(obs): State<Arc<Observer>>) -> Response {
    // Reading every table's tablets takes locks a compaction may hold
    // for a moment: off the listener's thread.
    let text = tokio::task::spawn_blocking(move || obs.metrics_text()).await;
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n")).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(obs): State<Arc<Observer>>) -> Response {
    match obs.phase() {
        Phase::Serving => "ready\n".into_response(),
        Phase::Starting => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: opening the database (replaying the commit log)\n",
        )
            .into_response(),
        Phase::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
    }
}

async fn status(State(obs): State<Arc<Observer>>) -> Response {
    match tokio::task::spawn_blocking(move || status_page::render(&obs.status())).await {
        Ok(page) => Html(page).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("status page: {e}\n"),
        )
            .into_response(),
    }
}

async fn status_json(State(obs): State<Arc<Observer>>) -> Response {
    let json =
        tokio::task::spawn_blocking(move || serde_json::to_string_pretty(&obs.status())).await;
    match json {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}\n")).into_response(),
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found: try /, /status.json, /metrics, /healthz or /readyz\n",
    )
}
