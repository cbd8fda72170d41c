//! When to poll: a cron expression with a seconds field (UTC) or a plain interval, and a
//! ticker that waits for each tick on the injected clock and counts the ticks it missed.
//!
//! tokio-cron-scheduler reads the system time itself, which rules out a manual or
//! accelerated clock; ARCHITECTURE.md explains why we parse cron with `croner` (the
//! parser that crate is built on) and drive the ticks ourselves.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::clock::Clock;
use crate::time::{Timestamp, format_duration, parse_duration};

/// When ticks happen.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every multiple of the duration since the Unix epoch: `10s` ticks at :00, :10, ...
    Every(Duration),
    /// A six-field cron expression (seconds first), evaluated in UTC.
    Cron { expression: String, cron: Box<Cron> },
}

impl Schedule {
    /// Reads `10s` (a duration: every 10 seconds) or `*/10 * * * * *` (cron with seconds).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let looks_like_duration =
            text.chars().next().is_some_and(|c| c.is_ascii_digit()) && !text.contains(' ');
        if looks_like_duration {
            return match parse_duration(text) {
                Ok(every) if every >= Duration::from_millis(100) => Ok(Schedule::Every(every)),
                Ok(_) => Err(format!("`{text}` is too short; poll at most every 100ms")),
                Err(error) => Err(error.to_string()),
            };
        }
        let fields = text.split_whitespace().count();
        if fields != 6 {
            return Err(format!(
                "`{text}` has {fields} fields; write a cron expression with a seconds field \
                 (6 fields, e.g. \"*/10 * * * * *\") or a duration such as 10s"
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Required).build();
        let cron = parser
            .parse(text)
            .map_err(|error| format!("`{text}` is not a valid cron expression: {error}"))?;
        Ok(Schedule::Cron {
            expression: text.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(every) => {
                let step = i64::try_from(every.as_millis()).ok()?.max(1);
                let millis = after.unix_millis();
                let next = (millis.div_euclid(step) + 1).checked_mul(step)?;
                Some(Timestamp::from_unix_millis(next))
            }
            Schedule::Cron { cron, .. } => {
                let start = after.to_chrono()?;
                cron.find_next_occurrence(&start, false)
                    .ok()
                    .map(Timestamp::from_chrono)
            }
        }
    }

    /// The time between the two ticks that follow `at`: the "interval" SPEC speaks of.
    pub fn interval_at(&self, at: Timestamp) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron { .. } => {
                let first = self.next_after(at);
                let second = first.and_then(|first| self.next_after(first));
                match (first, second) {
                    (Some(first), Some(second)) => second.duration_since(first),
                    _ => Duration::from_secs(60),
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", format_duration(*every)),
            Schedule::Cron { expression, .. } => write!(f, "cron \"{expression}\" (UTC)"),
        }
    }
}

/// One tick of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The scheduled time of this tick.
    pub at: Timestamp,
    /// Scheduled ticks that passed while we were late and were skipped, not queued.
    pub missed: u64,
}

/// Waits for ticks on the injected clock.
pub struct Ticker {
    schedule: Schedule,
    clock: Clock,
    last: Option<Timestamp>,
}

impl Ticker {
    pub fn new(schedule: Schedule, clock: Clock) -> Self {
        Ticker {
            schedule,
            clock,
            last: None,
        }
    }

    /// Sleeps until the next tick and returns it. When the wake-up comes late, every tick
    /// that passed meanwhile is counted as missed and only the latest one is returned.
    pub async fn next_tick(&mut self) -> Option<Tick> {
        let after = self.last.unwrap_or_else(|| self.clock.now());
        let mut due = self.schedule.next_after(after)?;
        self.clock.sleep_until(due).await;
        let now = self.clock.now();
        let mut missed = 0;
        while let Some(later) = self.schedule.next_after(due) {
            if later > now {
                break;
            }
            due = later;
            missed += 1;
        }
        self.last = Some(due);
        Some(Tick { at: due, missed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(secs * 1000)
    }

    #[test]
    fn schedules_parse_from_durations_and_six_field_cron() {
        for (text, expected) in [
            ("10s", Ok("every 10s")),
            ("1m", Ok("every 1m")),
            ("*/10 * * * * *", Ok("cron \"*/10 * * * * *\" (UTC)")),
            (
                "*/5 * * * *",
                Err(
                    "`*/5 * * * *` has 5 fields; write a cron expression with a seconds field \
                     (6 fields, e.g. \"*/10 * * * * *\") or a duration such as 10s",
                ),
            ),
            ("10ms", Err("`10ms` is too short; poll at most every 100ms")),
        ] {
            let parsed = Schedule::parse(text).map(|s| s.to_string());
            assert_eq!(
                parsed.as_deref(),
                expected.map_err(String::from).as_deref(),
                "{text}"
            );
        }
        assert!(Schedule::parse("61 * * * * *").is_err());
    }

    #[test]
    fn an_interval_ticks_on_multiples_of_itself() {
        let schedule = Schedule::parse("10s").expect("valid");
        assert_eq!(schedule.next_after(at(100)), Some(at(110)));
        assert_eq!(schedule.next_after(at(101)), Some(at(110)));
        assert_eq!(schedule.interval_at(at(0)), Duration::from_secs(10));
    }

    #[test]
    fn cron_ticks_follow_the_expression_in_utc() {
        let schedule = Schedule::parse("*/15 * * * * *").expect("valid");
        assert_eq!(schedule.next_after(at(100)), Some(at(105)));
        assert_eq!(schedule.next_after(at(105)), Some(at(120)));
        assert_eq!(schedule.interval_at(at(100)), Duration::from_secs(15));
        let hourly = Schedule::parse("0 0 * * * *").expect("valid");
        assert_eq!(hourly.next_after(at(1)), Some(at(3600)));
    }

    #[tokio::test]
    async fn a_late_wake_up_counts_the_missed_ticks_instead_of_queueing_them() {
        let clock = Clock::manual(at(1_000));
        let mut ticker = Ticker::new(Schedule::parse("10s").expect("valid"), clock.clone());
        let first = {
            let waiter = tokio::spawn(async move {
                let tick = ticker.next_tick().await;
                (ticker, tick)
            });
            tokio::task::yield_now().await;
            clock.advance(Duration::from_secs(10));
            waiter.await.expect("ticker task")
        };
        let (mut ticker, tick) = first;
        assert_eq!(
            tick,
            Some(Tick {
                at: at(1_010),
                missed: 0
            })
        );

        // The daemon was stalled for 35 s: ticks at 1020 and 1030 passed, 1040 is now due.
        clock.advance(Duration::from_secs(35));
        let tick = ticker.next_tick().await;
        assert_eq!(
            tick,
            Some(Tick {
                at: at(1_040),
                missed: 2
            })
        );
    }
}
