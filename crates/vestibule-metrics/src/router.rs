//! `GET /metrics` and `GET /readyz`.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
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

/// The secret a scraper must present as `Authorization: Bearer TOKEN` to read
/// `/metrics`. Never printed: `Debug` shows no part of it.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl BearerToken {
    /// `None` for an empty token (after trimming surrounding whitespace, such
    /// as the newline a token file ends with): an empty secret would let
    /// anyone in who sends `Bearer ` with nothing after it.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(Arc::from(token.as_bytes())))
    }

    /// Whether `headers` carry this token, compared in constant time (only
    /// the length can be learnt from timing).
    fn admits(&self, headers: &HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, presented)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(presented.trim().as_bytes().ct_eq(&self.0))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// The routes `GET /metrics` (text format 0.0.4) and `GET /readyz` (200 with
/// a JSON body when every reporting component is ready, 503 with the same
/// body otherwise). Generic over the state of the router it is merged into:
/// `api_router.merge(metrics_router(metrics))`.
pub fn metrics_router<S>(metrics: Metrics) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    metrics_router_with_token(metrics, None)
}

/// [`metrics_router`], with `/metrics` answering 401 unless the request
/// carries `token`. `/readyz` stays open: load balancers probe it without
/// credentials, and it reveals only component names.
pub fn metrics_router_with_token<S>(metrics: Metrics, token: Option<BearerToken>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state((metrics.clone(), token))
        .route("/readyz", get(serve_ready))
        .with_state(metrics)
}

async fn serve_metrics(
    State((metrics, token)): State<(Metrics, Option<BearerToken>)>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &token
        && !token.admits(&headers)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"vestibule-metrics\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "a bearer token is required\n",
        )
            .into_response();
    }
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
