//! The pure core of the simulator: what the worker-list API answers for one target at one
//! scenario time. No I/O and no clock: the server passes the elapsed scenario time and the
//! current timestamp in, so any moment can be answered (and tested) on its own.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::scenario::{Fault, FaultKind, Fleet, ResponseShape, Scenario, Worker};
use crate::model::{StateClass, TargetKind};
use crate::time::Timestamp;

/// `new_load` averages the share over this window.
const NEW_LOAD_WINDOW_SECS: f64 = 60.0;
/// `cur_load_rolling_avg` averages the share over this window.
const ROLLING_WINDOW_SECS: f64 = 300.0;
/// The windows are sampled at the middle of slices this long.
const SAMPLE_STEP_SECS: f64 = 5.0;
/// Noise changes smoothly between independent values this far apart.
const NOISE_STEP_SECS: f64 = 5.0;

const JSON: &str = "application/json";

/// An HTTP answer, ready for the server to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Wait this long (real time) before answering, or until the server shuts down.
    pub hold: Option<Duration>,
}

impl SimResponse {
    fn new(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        SimResponse {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
            hold: None,
        }
    }

    fn json(status: u16, body: &Value) -> Self {
        SimResponse::new(status, JSON, body.to_string())
    }

    /// HTTP 200 `{"error_msg": ...}`, as the API answers for an unknown id.
    pub fn error_msg(message: &str) -> Self {
        SimResponse::json(200, &json!({ "error_msg": message }))
    }

    /// HTTP 401 in the API's shape for a missing or wrong key.
    pub fn unauthorized(message: &str) -> Self {
        SimResponse::json(
            401,
            &json!({ "success": false, "error": "invalid_api_key", "msg": message }),
        )
    }

    /// HTTP 400 for a request body the API cannot read.
    pub fn bad_request(message: &str) -> Self {
        SimResponse::json(400, &json!({ "error_msg": message }))
    }
}

impl Scenario {
    /// The answer to a worker-list request for `kind`/`vast_id`, `elapsed` into the
    /// scenario, when the clock reads `now` (used for `loaded_at`).
    pub fn respond(
        &self,
        kind: TargetKind,
        vast_id: i64,
        elapsed: Duration,
        now: Timestamp,
    ) -> SimResponse {
        let Some(fleet_index) = self.fleet_index(kind, vast_id) else {
            let what = match kind {
                TargetKind::Endpoint => "endpoint",
                TargetKind::WorkerGroup => "worker group",
            };
            return SimResponse::error_msg(&format!("No {what} found with id {vast_id}"));
        };
        let fleet = &self.fleets[fleet_index];
        let t = self.scenario_secs(elapsed);
        let workers = self.fleet_workers(fleet_index, elapsed, now);
        let body = match fleet.response {
            ResponseShape::List => Value::Array(workers),
            ResponseShape::Wrapped => json!({ "workers": workers }),
        };
        let healthy = SimResponse::json(200, &body);
        match active_fault(&fleet.faults, t).or_else(|| active_fault(&self.faults, t)) {
            Some(fault) => apply_fault(&fault.kind, healthy),
            None => healthy,
        }
    }

    /// The worker objects a fleet lists at `elapsed`, without any fault applied; `None`
    /// for an unknown target.
    pub fn snapshot(
        &self,
        kind: TargetKind,
        vast_id: i64,
        elapsed: Duration,
        now: Timestamp,
    ) -> Option<Vec<Value>> {
        self.fleet_index(kind, vast_id)
            .map(|index| self.fleet_workers(index, elapsed, now))
    }

    fn fleet_index(&self, kind: TargetKind, vast_id: i64) -> Option<usize> {
        self.fleets
            .iter()
            .position(|fleet| fleet.kind == kind && fleet.vast_id == vast_id)
    }

    /// Scenario seconds at `elapsed`: after `duration` the scenario holds still.
    fn scenario_secs(&self, elapsed: Duration) -> f64 {
        match self.duration {
            Some(duration) => elapsed.min(duration).as_secs_f64(),
            None => elapsed.as_secs_f64(),
        }
    }

    fn fleet_workers(&self, fleet_index: usize, elapsed: Duration, now: Timestamp) -> Vec<Value> {
        let fleet = &self.fleets[fleet_index];
        let t = self.scenario_secs(elapsed);
        let clamp = |time: f64| match self.duration {
            Some(duration) => time.clamp(0.0, duration.as_secs_f64()),
            None => time.max(0.0),
        };

        // Average each worker's share over the windows, one slice at a time.
        let slices = (ROLLING_WINDOW_SECS / SAMPLE_STEP_SECS) as usize;
        let recent_slices = (NEW_LOAD_WINDOW_SECS / SAMPLE_STEP_SECS) as usize;
        let mut rolling_sum = vec![0.0; fleet.workers.len()];
        let mut recent_sum = vec![0.0; fleet.workers.len()];
        for slice in 0..slices {
            let time = t - ROLLING_WINDOW_SECS + (slice as f64 + 0.5) * SAMPLE_STEP_SECS;
            let shares = shares_at(fleet, clamp(time));
            for (index, share) in shares.iter().enumerate() {
                rolling_sum[index] += share;
                if slice >= slices - recent_slices {
                    recent_sum[index] += share;
                }
            }
        }
        let shares_now = shares_at(fleet, t);

        let elapsed_secs = elapsed.as_secs_f64();
        fleet
            .workers
            .iter()
            .enumerate()
            .filter(|(_, worker)| is_present(worker, t))
            .map(|(index, worker)| {
                let noise = if fleet.noise > 0.0 {
                    fleet.noise
                        * smooth_noise(self.seed, ((fleet_index as u64) << 32) | index as u64, t)
                } else {
                    0.0
                };
                let derived = Derived {
                    cur_load: shares_now[index] * (1.0 + noise),
                    new_load: recent_sum[index] / recent_slices as f64,
                    rolling: rolling_sum[index] / slices as f64,
                    loaded_at: ready_since(worker, t)
                        .map(|since| now.unix_secs_f64() - (elapsed_secs - since).max(0.0)),
                };
                Value::Object(worker_object(worker, t, &derived))
            })
            .collect()
    }
}

/// The load-dependent values of one worker at one moment.
struct Derived {
    cur_load: f64,
    new_load: f64,
    rolling: f64,
    loaded_at: Option<f64>,
}

fn worker_object(worker: &Worker, t: f64, derived: &Derived) -> Map<String, Value> {
    let measured_perf = worker.perf.at(t).max(0.0);
    let reliability = worker.reliability.at(t).clamp(0.0, 1.0);
    let dlperf = worker
        .dlperf
        .as_ref()
        .map_or(measured_perf, |curve| curve.at(t).max(0.0));
    let max_reqs = f64::from(worker.max_reqs);
    let reqs_working = if measured_perf > 0.0 {
        (max_reqs * derived.cur_load / measured_perf)
            .round()
            .min(max_reqs)
    } else if derived.cur_load > 0.0 {
        max_reqs
    } else {
        0.0
    };

    let mut object = worker.extra.clone();
    object.insert("id".into(), json!(worker.id));
    object.insert("status".into(), json!(worker.status.at(t)));
    object.insert("cur_load".into(), json!(derived.cur_load));
    object.insert("new_load".into(), json!(derived.new_load));
    object.insert("cur_load_rolling_avg".into(), json!(derived.rolling));
    object.insert(
        "cur_perf".into(),
        json!(derived.cur_load.min(measured_perf)),
    );
    object.insert("measured_perf".into(), json!(measured_perf));
    object.insert("perf".into(), json!(measured_perf * reliability));
    object.insert("reliability".into(), json!(reliability));
    object.insert("dlperf".into(), json!(dlperf));
    object.insert("reqs_working".into(), json!(reqs_working as u64));
    object.insert("disk_usage".into(), json!(worker.disk_usage.at(t).max(0.0)));
    if let Some(loaded_at) = derived.loaded_at {
        // Millisecond precision, like the timestamps the clock gives.
        object.insert(
            "loaded_at".into(),
            json!((loaded_at * 1000.0).round() / 1000.0),
        );
    }
    for (name, value) in &worker.fields {
        object.insert(name.clone(), value.clone());
    }
    for name in &worker.omit {
        object.remove(name);
    }
    object
}

fn is_present(worker: &Worker, t: f64) -> bool {
    t >= worker.join && worker.leave.is_none_or(|leave| t < leave)
}

fn is_ready_status(status: &str) -> bool {
    StateClass::of(Some(&status.to_lowercase())) == StateClass::Ready
}

fn is_ready(worker: &Worker, t: f64) -> bool {
    is_present(worker, t) && is_ready_status(worker.status.at(t))
}

/// Each worker's share of the fleet's demand at `t`: split across ready workers in
/// proportion to their measured perf; zero for every other worker.
fn shares_at(fleet: &Fleet, t: f64) -> Vec<f64> {
    let ready: Vec<bool> = fleet.workers.iter().map(|w| is_ready(w, t)).collect();
    let perfs: Vec<f64> = fleet
        .workers
        .iter()
        .map(|w| w.perf.at(t).max(0.0))
        .collect();
    let ready_perf: f64 = perfs
        .iter()
        .zip(&ready)
        .filter(|(_, ready)| **ready)
        .map(|(perf, _)| perf)
        .sum();
    let demand = fleet.load.at(t).max(0.0);
    perfs
        .iter()
        .zip(&ready)
        .map(|(perf, ready)| {
            if *ready && ready_perf > 0.0 {
                demand * perf / ready_perf
            } else {
                0.0
            }
        })
        .collect()
}

/// When the worker's latest ready stretch that began at or before `t` began, in scenario
/// seconds; `None` when it has not been ready yet.
fn ready_since(worker: &Worker, t: f64) -> Option<f64> {
    if t < worker.join {
        return None;
    }
    let mut since = is_ready_status(worker.status.at(worker.join)).then_some(worker.join);
    let mut was_ready = since.is_some();
    for (time, status) in worker.status.steps() {
        if *time <= worker.join {
            continue;
        }
        if *time > t {
            break;
        }
        let ready = is_ready_status(status);
        if ready && !was_ready {
            since = Some(*time);
        }
        was_ready = ready;
    }
    since
}

fn active_fault(faults: &[Fault], t: f64) -> Option<&Fault> {
    faults
        .iter()
        .find(|fault| t >= fault.start && fault.end.is_none_or(|end| t < end))
}

fn apply_fault(kind: &FaultKind, healthy: SimResponse) -> SimResponse {
    match kind {
        FaultKind::HttpStatus {
            status,
            body,
            content_type,
        } => match body {
            Some(body) => SimResponse::new(
                *status,
                content_type.as_deref().unwrap_or("text/plain"),
                body.clone(),
            ),
            None => SimResponse::new(
                *status,
                content_type.as_deref().unwrap_or("text/html"),
                error_page(*status),
            ),
        },
        FaultKind::RateLimit => SimResponse::new(
            429,
            "text/plain; charset=utf-8",
            "API requests too frequent, please wait",
        ),
        FaultKind::Timeout { hold } => SimResponse {
            hold: Some(*hold),
            ..healthy
        },
        FaultKind::ErrorMsg { message } => SimResponse::error_msg(message),
        FaultKind::Unauthorized { message } => SimResponse::unauthorized(message),
        FaultKind::Html { body } => SimResponse::new(
            200,
            "text/html; charset=utf-8",
            body.clone().unwrap_or_else(maintenance_page),
        ),
        FaultKind::Truncated => {
            // A strict prefix of a JSON array or object is never valid JSON.
            let cut = (healthy.body.len() / 2).max(1);
            let cut = (0..=cut)
                .rev()
                .find(|i| healthy.body.is_char_boundary(*i))
                .unwrap_or(0);
            SimResponse {
                body: healthy.body[..cut].to_string(),
                ..healthy
            }
        }
        FaultKind::Raw {
            status,
            body,
            content_type,
        } => SimResponse::new(*status, content_type, body.clone()),
    }
}

fn error_page(status: u16) -> String {
    let reason = match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "Error",
    };
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

fn maintenance_page() -> String {
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Vast.ai | Maintenance</title></head>\n<body><h1>We'll be right back</h1><p>Vast.ai is undergoing scheduled maintenance.</p></body>\n</html>\n".to_string()
}

/// Deterministic noise in -1..=1 for one stream, smooth in `t`: independent values every
/// few seconds, eased between. The same seed, stream and time always give the same value.
fn smooth_noise(seed: u64, stream: u64, t: f64) -> f64 {
    let position = t / NOISE_STEP_SECS;
    let step = position.floor();
    let fraction = position - step;
    let at = |step: i64| {
        let hash = splitmix64(seed ^ splitmix64(stream ^ splitmix64(step as u64)));
        // The top 53 bits as a fraction in 0..1, mapped to -1..1.
        (hash >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let (a, b) = (at(step as i64), at(step as i64 + 1));
    let eased = fraction * fraction * (3.0 - 2.0 * fraction);
    a + (b - a) * eased
}

fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
