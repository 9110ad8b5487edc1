//! `GET /metrics` and `GET /readyz`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::Metrics;

/// The content type of `/metrics`: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The JSON body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub components: Vec<ComponentReadiness>,
}

/// One component in [`Readiness`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentReadiness {
    pub name: String,
    pub ready: bool,
}

/// The routes `GET /metrics` (text format 0.0.4) and `GET /readyz` (200 with
/// a JSON body when every reporting component is ready, 503 with the same
/// body otherwise). Generic over the state of the router it is merged into:
/// `api_router.merge(metrics_router(metrics))`.
pub fn metrics_router<S>(metrics: Metrics) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/readyz", get(serve_ready))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Metrics>) -> Response {
    match metrics.try_render() {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics: cannot render /metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}

async fn serve_ready(State(metrics): State<Metrics>) -> Response {
    let (ready, components) = metrics.is_ready();
    let body = Readiness {
        ready,
        components: components
            .into_iter()
            .map(|(name, ready)| ComponentReadiness { name, ready })
            .collect(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}
