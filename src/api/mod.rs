//! The HTTP API (SPEC §11): health probes, `/api/v1` over the store and the running
//! daemon, silences, and `POST /-/reload`. Handlers are thin: they parse parameters,
//! call one store or daemon method, and shape JSON; nothing here owns state.
//!
//! Every request reads the daemon current at that moment from a `watch` channel, since a
//! reload replaces it; the bearer token is read the same way, so a reload can change it.

mod auth;
mod dto;
mod page;
mod params;
mod probes;
mod status;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon::Daemon;
use crate::service::ReplicaState;

pub use auth::protect;
pub use page::report_html;
pub use status::report_data;

/// What a reload answers: `Ok` when the new config took over, else why not (naming file,
/// line and column, never a secret).
pub type ReloadReply = oneshot::Sender<Result<(), String>>;

/// What every handler shares: the current daemon and the way to ask for a reload.
#[derive(Clone)]
pub struct ApiState {
    /// The daemon now running; replaced on reload, so read it per request.
    pub daemon: watch::Receiver<Arc<Daemon>>,
    /// `POST /-/reload` sends a reply channel here and waits for the answer.
    pub reload: mpsc::Sender<ReloadReply>,
    /// This replica's role among replicas sharing the database (`ha:`).
    pub replica: watch::Receiver<ReplicaState>,
}

impl ApiState {
    /// The state of a process that alone uses its database; add the service's replica
    /// state with [`ApiState::with_replica`].
    pub fn new(daemon: watch::Receiver<Arc<Daemon>>, reload: mpsc::Sender<ReloadReply>) -> Self {
        ApiState {
            daemon,
            reload,
            replica: watch::channel(ReplicaState::single()).1,
        }
    }

    pub fn with_replica(mut self, replica: watch::Receiver<ReplicaState>) -> Self {
        self.replica = replica;
        self
    }

    /// This replica's role now.
    fn replica(&self) -> ReplicaState {
        self.replica.borrow().clone()
    }

    /// The daemon current at this moment.
    fn daemon(&self) -> Arc<Daemon> {
        self.daemon.borrow().clone()
    }
}

/// The API's routes without authentication. Merge other routes (such as `/metrics`) into
/// it, then pass the whole router through [`protect`], which guards every route it holds.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route("/-/reload", post(probes::reload))
        .route("/api/v1/status", get(v1::status))
        .route("/api/v1/targets", get(v1::targets))
        .route("/api/v1/alerts", get(v1::alerts))
        .route("/api/v1/history", get(v1::history))
        .route("/api/v1/series", get(status::series))
        .route("/api/v1/alerts/intervals", get(status::alert_intervals))
        .route("/api/v1/workers", get(status::workers))
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/api/v1/notifications", get(v1::notifications))
        .route("/api/v1/silences", get(v1::silences).post(v1::add_silence))
        .route("/api/v1/silences/{id}", delete(v1::expire_silence))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every API route, guarded by the bearer rule.
pub fn router(state: ApiState) -> Router {
    protect(routes(state.clone()), state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes the requests
/// in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), shutdown).await
}

/// Serves any router (e.g. [`routes`] merged with `/metrics`, then [`protect`]ed), with
/// graceful shutdown.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error answer: a status and a JSON body `{"error": ..., "parameter": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    parameter: Option<String>,
    message: String,
}

impl ApiError {
    /// A bad value of one query parameter or body field.
    fn bad(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            parameter: Some(parameter.into()),
            message: message.into(),
        }
    }

    /// What went wrong, without the status.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            parameter: None,
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::UnknownTarget { name } => {
                ApiError::bad("target", format!("no target `{name}` is stored"))
            }
            other => {
                tracing::warn!(error = %other, "An API request failed in the store.");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(parameter) = self.parameter {
            body["parameter"] = json!(parameter);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("`{}` does not answer {method}", uri.path()),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such path `{}`", uri.path()),
    )
}
