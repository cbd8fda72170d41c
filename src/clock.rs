//! The one source of time: real in `run`, accelerated in the demo and simulator, manual in
//! tests. Nothing else in vastwatch reads the system time or sleeps on its own.
//! [`Stopwatch`] is the one exception, and only for telemetry: it measures how long work
//! took on the machine, whatever the clock says, and nothing decides anything by it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::time::Timestamp;

/// A cheaply cloneable handle to the process's clock.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: Arc<ClockKind>,
}

#[derive(Debug)]
enum ClockKind {
    Real,
    Accelerated {
        origin_instant: Instant,
        origin_time: Timestamp,
        speed: f64,
    },
    Manual {
        now: watch::Sender<Timestamp>,
        // Serialises advances so that concurrent callers observe monotonic time.
        advance_lock: Mutex<()>,
    },
}

impl Clock {
    /// Wall-clock time.
    pub fn real() -> Self {
        Clock {
            kind: Arc::new(ClockKind::Real),
        }
    }

    /// Time that starts at `start` and runs `speed` times faster than the wall clock.
    pub fn accelerated(start: Timestamp, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Clock {
            kind: Arc::new(ClockKind::Accelerated {
                origin_instant: Instant::now(),
                origin_time: start,
                speed,
            }),
        }
    }

    /// Time that moves only when a test calls [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start: Timestamp) -> Self {
        let (sender, _) = watch::channel(start);
        Clock {
            kind: Arc::new(ClockKind::Manual {
                now: sender,
                advance_lock: Mutex::new(()),
            }),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &*self.kind {
            ClockKind::Real => system_now(),
            ClockKind::Accelerated {
                origin_instant,
                origin_time,
                speed,
            } => {
                let elapsed = origin_instant.elapsed().as_secs_f64() * speed;
                origin_time.saturating_add(Duration::from_secs_f64(elapsed))
            }
            ClockKind::Manual { now, .. } => *now.borrow(),
        }
    }

    /// How many clock seconds pass per wall-clock second.
    pub fn speed(&self) -> f64 {
        match &*self.kind {
            ClockKind::Real | ClockKind::Manual { .. } => 1.0,
            ClockKind::Accelerated { speed, .. } => *speed,
        }
    }

    /// Waits until the clock reads `deadline` or later.
    pub async fn sleep_until(&self, deadline: Timestamp) {
        match &*self.kind {
            ClockKind::Real | ClockKind::Accelerated { .. } => loop {
                let now = self.now();
                if now >= deadline {
                    return;
                }
                let clock_wait = deadline.duration_since(now).as_secs_f64();
                let real_wait = Duration::from_secs_f64(clock_wait / self.speed());
                tokio::time::sleep(real_wait.max(Duration::from_millis(1))).await;
            },
            ClockKind::Manual { now, .. } => {
                let mut receiver = now.subscribe();
                // The sender lives as long as `self`, so `wait_for` only ends when the
                // condition holds.
                let _ = receiver.wait_for(|current| *current >= deadline).await;
            }
        }
    }

    pub async fn sleep(&self, duration: Duration) {
        let deadline = self.now().saturating_add(duration);
        self.sleep_until(deadline).await;
    }

    /// Moves a manual clock forward, waking every sleeper whose deadline has passed.
    /// On other clocks it does nothing: real time cannot be pushed.
    pub fn advance(&self, duration: Duration) {
        if let ClockKind::Manual { now, advance_lock } = &*self.kind {
            let _guard = advance_lock.lock().unwrap_or_else(|e| e.into_inner());
            let next = now.borrow().saturating_add(duration);
            now.send_replace(next);
        }
    }

    /// Sets a manual clock to `time` if that is later than its current reading.
    pub fn set(&self, time: Timestamp) {
        if let ClockKind::Manual { now, advance_lock } = &*self.kind {
            let _guard = advance_lock.lock().unwrap_or_else(|e| e.into_inner());
            if time > *now.borrow() {
                now.send_replace(time);
            }
        }
    }
}

/// How long a piece of work took in real time, for duration metrics. The evaluation
/// histogram wants CPU cost, which a manual or accelerated clock would hide.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

fn system_now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_unix_millis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_once_their_deadline_passes() {
        let clock = Clock::manual(Timestamp::from_unix_millis(1_000));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep(Duration::from_secs(10)).await;
                clock.now()
            })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke 5s early");
        clock.advance(Duration::from_secs(5));
        let woke_at = sleeper.await.expect("sleeper task");
        assert_eq!(woke_at, Timestamp::from_unix_millis(11_000));
    }

    #[test]
    fn a_manual_clock_never_moves_backwards() {
        let clock = Clock::manual(Timestamp::from_unix_millis(5_000));
        clock.set(Timestamp::from_unix_millis(1_000));
        assert_eq!(clock.now(), Timestamp::from_unix_millis(5_000));
        clock.set(Timestamp::from_unix_millis(9_000));
        assert_eq!(clock.now(), Timestamp::from_unix_millis(9_000));
    }

    #[tokio::test]
    async fn an_accelerated_clock_runs_faster_than_the_wall() {
        let start = Timestamp::from_unix_millis(0);
        let clock = Clock::accelerated(start, 1000.0);
        let wall = Instant::now();
        clock.sleep(Duration::from_secs(2)).await;
        assert!(clock.now() >= Timestamp::from_unix_millis(2_000));
        // Two clock seconds at 1000x are two wall milliseconds; allow generous slack for a
        // busy machine while still proving the clock is not real time.
        assert!(wall.elapsed() < Duration::from_millis(1_500));
    }
}
