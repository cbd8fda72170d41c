//! The simulator's HTTP edge: serves the worker-list paths of the Vast API from a
//! [`Scenario`], checks the API key, counts requests, and holds responses for `timeout`
//! faults. Everything a response contains comes from [`Scenario::respond`].

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::respond::SimResponse;
use super::scenario::Scenario;
use crate::clock::Clock;
use crate::model::TargetKind;
use crate::time::Timestamp;

/// The paths served, and the kind of target each one lists.
const ROUTES: &[(&str, TargetKind)] = &[
    ("/get_endpoint_workers/", TargetKind::Endpoint),
    ("/get_autogroup_workers/", TargetKind::WorkerGroup),
    ("/get_workergroup_workers/", TargetKind::WorkerGroup),
];

/// How long `shutdown` waits for open connections before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the simulator runs.
#[derive(Clone)]
pub struct SimOptions {
    /// The key clients must send (body `api_key` or `Authorization: Bearer`); when `None`,
    /// any key or none is accepted.
    pub api_key: Option<String>,
    /// The clock scenario time is read from.
    pub clock: Clock,
    /// When the scenario starts: scenario time is `clock.now() - start`.
    pub start: Timestamp,
}

impl SimOptions {
    /// Options with no key check and the scenario starting at the clock's current time.
    pub fn starting_now(clock: Clock) -> Self {
        let start = clock.now();
        SimOptions {
            api_key: None,
            clock,
            start,
        }
    }
}

impl fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOptions")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("clock", &self.clock)
            .field("start", &self.start)
            .finish()
    }
}

/// A simulator ready to serve.
#[derive(Debug)]
pub struct Simulator {
    scenario: Scenario,
    options: SimOptions,
}

/// Requests that arrived, per (path, id).
pub type RequestCounts = BTreeMap<(String, i64), u64>;

struct Shared {
    scenario: Scenario,
    options: SimOptions,
    served: Mutex<RequestCounts>,
    stopping: watch::Receiver<bool>,
}

impl Simulator {
    pub fn new(scenario: Scenario, options: SimOptions) -> Self {
        Simulator { scenario, options }
    }

    /// Binds `addr` (port 0 picks a free port) and serves until shut down.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<RunningSimulator> {
        let listener = TcpListener::bind(addr).await?;
        self.serve_on(listener)
    }

    /// Serves on a listener the caller bound.
    pub fn serve_on(self, listener: TcpListener) -> io::Result<RunningSimulator> {
        let local_addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let shared = Arc::new(Shared {
            scenario: self.scenario,
            options: self.options,
            served: Mutex::new(RequestCounts::new()),
            stopping: stopping.clone(),
        });
        let mut router = Router::new();
        for (path, kind) in ROUTES {
            let (path, kind) = (*path, *kind);
            router = router.route(
                path,
                post(
                    move |State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes| {
                        answer(shared, path, kind, headers, body)
                    },
                ),
            );
        }
        let router = router.with_state(Arc::clone(&shared));
        info!(
            addr = %local_addr,
            scenario = %shared.scenario.name(),
            key_required = shared.options.api_key.is_some(),
            "Simulator listening."
        );
        let mut stopping_signal = stopping;
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopping_signal.wait_for(|stop| *stop).await;
                })
                .await
        });
        Ok(RunningSimulator {
            local_addr,
            stop,
            task: Some(task),
            shared,
        })
    }
}

/// A simulator serving in the background. Dropping it stops the server too, but only
/// [`RunningSimulator::shutdown`] waits for it to finish.
pub struct RunningSimulator {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
}

impl RunningSimulator {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, the value for the daemon's `api.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    pub fn scenario(&self) -> &Scenario {
        &self.shared.scenario
    }

    /// How many requests arrived per (path, id), whatever was answered.
    pub fn requests_served(&self) -> RequestCounts {
        lock(&self.shared.served).clone()
    }

    /// How many requests arrived for one target, over every path of its kind.
    pub fn requests_for(&self, kind: TargetKind, vast_id: i64) -> u64 {
        let served = lock(&self.shared.served);
        ROUTES
            .iter()
            .filter(|(_, route_kind)| *route_kind == kind)
            .filter_map(|(path, _)| served.get(&(path.to_string(), vast_id)))
            .sum()
    }

    /// Stops accepting, ends held responses, and waits (a few seconds at most) for open
    /// connections to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.stop.send_replace(true);
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(io::Error::other(join_error)),
            Err(_) => {
                warn!(addr = %self.local_addr, "Simulator connections did not close in time; dropping them.");
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl fmt::Debug for RunningSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSimulator")
            .field("local_addr", &self.local_addr)
            .field("scenario", &self.shared.scenario.name())
            .finish()
    }
}

/// The request body. The API is lenient about extra keys, so this is too.
#[derive(Deserialize)]
struct WorkerListRequest {
    id: RequestId,
    #[serde(default)]
    api_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RequestId {
    Number(i64),
    Text(String),
}

impl RequestId {
    fn value(&self) -> Option<i64> {
        match self {
            RequestId::Number(id) => Some(*id),
            RequestId::Text(text) => text.trim().parse().ok(),
        }
    }
}

async fn answer(
    shared: Arc<Shared>,
    path: &'static str,
    kind: TargetKind,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match serde_json::from_slice::<WorkerListRequest>(&body) {
        Ok(request) => request,
        Err(err) => {
            debug!(path, error = %err, "Rejected an unreadable request body.");
            return into_response(SimResponse::bad_request(&format!(
                "Request body must be JSON such as {{\"id\": 123}}: {err}"
            )));
        }
    };
    let Some(id) = request.id.value() else {
        return into_response(SimResponse::bad_request("`id` must be an integer"));
    };
    *lock(&shared.served)
        .entry((path.to_string(), id))
        .or_default() += 1;

    if let Some(expected) = &shared.options.api_key {
        let presented = bearer_token(&headers).or(request.api_key.as_deref());
        let accepted = presented.is_some_and(|key| keys_match(key, expected));
        if !accepted {
            let message = if presented.is_some() {
                "Invalid API key"
            } else {
                "Missing API key"
            };
            debug!(path, id, "Refused a request without a valid API key.");
            return into_response(SimResponse::unauthorized(message));
        }
    }

    let now = shared.options.clock.now();
    let elapsed = now.duration_since(shared.options.start);
    let response = shared.scenario.respond(kind, id, elapsed, now);
    debug!(
        path,
        id,
        status = response.status,
        elapsed_s = elapsed.as_secs_f64(),
        "Answered a worker-list request."
    );
    if let Some(hold) = response.hold {
        let mut stopping = shared.stopping.clone();
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
    into_response(response)
}

fn into_response(response: SimResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let content_type = HeaderValue::from_str(&response.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        response.body,
    )
        .into_response()
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares keys in time independent of where they differ.
fn keys_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
