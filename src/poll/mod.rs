//! Polling the Vast API: the client, the tolerant decoder, and per-target poll state
//! (a poll in flight, 429 back-off). One call, [`Poller::poll_target_once`], polls one
//! target and yields a [`PollRecord`], success or failure alike.

mod client;
pub(crate) use client::error_chain;
mod decode;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub use client::{ClientBuildError, VastClient, install_tls_provider};
pub use decode::{DecodedList, decode_worker_list, describe_error_body};

use crate::clock::Clock;
use crate::config::Target;
use crate::model::{FailureKind, PollRecord, PollResult};
use crate::time::Timestamp;

/// Longest 429 back-off (SPEC §4).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Whether a target should be polled at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollDecision {
    Poll,
    /// The previous poll of this target has not finished: ticks never overlap per target.
    SkipInFlight,
    /// The API rate-limited this target; it is left alone until `until`.
    SkipBackingOff {
        until: Timestamp,
    },
}

#[derive(Debug, Default, Clone)]
struct TargetState {
    in_flight: bool,
    backoff: Option<Backoff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    length: Duration,
    until: Timestamp,
}

/// The back-off after a 429: at least two intervals, doubling while 429s continue, capped
/// at five minutes (but never shorter than two intervals).
pub fn next_backoff(previous: Option<Duration>, interval: Duration) -> Duration {
    let floor = interval.saturating_mul(2);
    match previous {
        None => floor,
        Some(previous) => previous.saturating_mul(2).min(MAX_BACKOFF).max(floor),
    }
}

/// Polls targets and remembers, per target, what the next tick must know.
#[derive(Debug)]
pub struct Poller {
    client: VastClient,
    clock: Clock,
    states: Mutex<HashMap<String, TargetState>>,
}

impl Poller {
    pub fn new(client: VastClient, clock: Clock) -> Self {
        Poller {
            client,
            clock,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, TargetState>> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides whether `target` is polled at the tick `at`, and if so marks it in flight.
    /// Every `Poll` must end with [`Poller::finish`], once the poll's result has been dealt
    /// with (stored and evaluated, or abandoned).
    pub fn begin(&self, target: &str, at: Timestamp) -> PollDecision {
        let mut states = self.states();
        let state = states.entry(target.to_string()).or_default();
        if state.in_flight {
            return PollDecision::SkipInFlight;
        }
        if let Some(backoff) = state.backoff
            && at <= backoff.until
        {
            return PollDecision::SkipBackingOff {
                until: backoff.until,
            };
        }
        state.in_flight = true;
        PollDecision::Poll
    }

    /// Clears the in-flight mark: the target may be polled again. The daemon calls it after
    /// storing and evaluating the poll, so the next poll of a target never overtakes the
    /// evaluation of the previous one.
    pub fn finish(&self, target: &str) {
        if let Some(state) = self.states().get_mut(target) {
            state.in_flight = false;
        }
    }

    /// Whether `target` is backing off after a 429 at time `at`.
    pub fn is_backing_off(&self, target: &str, at: Timestamp) -> bool {
        self.states()
            .get(target)
            .and_then(|state| state.backoff)
            .is_some_and(|backoff| at <= backoff.until)
    }

    /// Polls one target now. `interval` is the schedule's interval, for the 429 back-off.
    pub async fn poll_target_once(&self, target: &Target, interval: Duration) -> PollRecord {
        let started_at = self.clock.now();
        let result = self
            .client
            .fetch(target.kind, target.vast_id, &target.api_key)
            .await;
        let finished_at = self.clock.now();
        let rate_limited = matches!(
            &result,
            PollResult::Failed(failure) if failure.kind == FailureKind::RateLimited
        );
        {
            let mut states = self.states();
            let state = states.entry(target.name.clone()).or_default();
            state.backoff = if rate_limited {
                let length = next_backoff(state.backoff.map(|b| b.length), interval);
                Some(Backoff {
                    length,
                    until: started_at.saturating_add(length),
                })
            } else {
                None
            };
        }
        PollRecord {
            target: target.name.clone(),
            started_at,
            duration: finished_at.duration_since(started_at),
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_two_intervals_doubles_and_caps_at_five_minutes() {
        let ten = Duration::from_secs(10);
        let mut previous = None;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let length = next_backoff(previous, ten);
            lengths.push(length.as_secs());
            previous = Some(length);
        }
        assert_eq!(lengths, vec![20, 40, 80, 160, 300, 300]);
        // A slow schedule still skips at least two of its own intervals.
        assert_eq!(
            next_backoff(Some(Duration::from_secs(300)), Duration::from_secs(600)),
            Duration::from_secs(1200)
        );
    }
}
