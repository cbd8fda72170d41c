//! Simulated traffic: the offered load at every poll of a scenario. Scenarios are fixed
//! (their parameters and noise seed are constants) so every run gives the same table.

use std::f64::consts::PI;
use std::time::Duration;

/// The poll interval of every scenario: Vast's own CLI polls every 10 s.
pub const STEP: Duration = Duration::from_secs(10);
/// How long a simulated worker takes from the recommendation to ready.
pub const COLD_START: Duration = Duration::from_secs(5 * 60);
/// The perf of every simulated worker once ready.
pub const PER_WORKER_PERF: f64 = 100.0;
/// The target utilization every policy sizes for, and the one "needed" workers are
/// counted at.
pub const TARGET_UTIL: f64 = 0.9;

/// The noise seed of the noisy scenario in the results table, chosen before any run.
pub const NOISY_SEED: u64 = 0x005e_ed0f_a0d1_7a11;

/// One stretch of simulated traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    /// One line for the results table.
    pub description: &'static str,
    /// The offered load (perf units) at each poll, one every [`STEP`].
    pub demand: Vec<f64>,
    /// The load the fleet is sized for when the scenario starts: the first poll's load
    /// without noise.
    pub initial_load: f64,
}

impl Scenario {
    /// The five scenarios of the results table in docs/advisor.md.
    pub fn all() -> Vec<Scenario> {
        vec![
            Scenario::steady(),
            Scenario::ramp(),
            Scenario::spike(),
            Scenario::diurnal(),
            Scenario::noisy(),
        ]
    }

    /// 1000 for 2 h.
    pub fn steady() -> Scenario {
        Scenario::from_fn("steady", "1000 for 2 h", hours(2.0), |_| 1000.0)
    }

    /// 1000 for 20 min, rising linearly to 3000 over 60 min, then 3000 for 40 min.
    pub fn ramp() -> Scenario {
        Scenario::from_fn(
            "ramp",
            "1000, then +33/min to 3000 from 20 to 80 min, 2 h",
            hours(2.0),
            |minute| 1000.0 + 2000.0 * ((minute - 20.0) / 60.0).clamp(0.0, 1.0),
        )
    }

    /// 1000, jumping to 3000 at 30 min and back to 1000 at 60 min, for 2 h.
    pub fn spike() -> Scenario {
        Scenario::from_fn(
            "spike",
            "1000, 3x (3000) from 30 to 60 min, 2 h",
            hours(2.0),
            |minute| {
                if (30.0..60.0).contains(&minute) {
                    3000.0
                } else {
                    1000.0
                }
            },
        )
    }

    /// A 24 h sine between 250 (at midnight) and 2250 (at noon).
    pub fn diurnal() -> Scenario {
        Scenario::from_fn(
            "diurnal",
            "sine 250..2250, period 24 h, 24 h",
            hours(24.0),
            |minute| 1250.0 - 1000.0 * (2.0 * PI * minute / (24.0 * 60.0)).cos(),
        )
    }

    /// 1000 plus Gaussian noise with a standard deviation of 10 % at every poll, for 2 h,
    /// with the seed fixed for the results table.
    pub fn noisy() -> Scenario {
        Scenario::noisy_seeded(NOISY_SEED)
    }

    /// [`Scenario::noisy`] with another noise seed.
    pub fn noisy_seeded(seed: u64) -> Scenario {
        let mut noise = Noise::new(seed);
        Scenario {
            initial_load: 1000.0,
            ..Scenario::from_fn(
                "noisy",
                "1000 ± 10 % (sd) white noise per poll, 2 h",
                hours(2.0),
                move |_| (1000.0 * (1.0 + 0.1 * noise.gaussian())).max(0.0),
            )
        }
    }

    /// The same scenario cut to its first `duration` (for quick tests).
    pub fn truncated(mut self, duration: Duration) -> Scenario {
        self.demand.truncate(steps(duration));
        self
    }

    pub fn duration(&self) -> Duration {
        STEP.saturating_mul(self.demand.len() as u32)
    }

    fn from_fn(
        name: &'static str,
        description: &'static str,
        duration: Duration,
        mut load_at_minute: impl FnMut(f64) -> f64,
    ) -> Scenario {
        let minutes_per_step = STEP.as_secs_f64() / 60.0;
        let demand: Vec<f64> = (0..steps(duration))
            .map(|step| load_at_minute(step as f64 * minutes_per_step))
            .collect();
        Scenario {
            name,
            description,
            initial_load: demand.first().copied().unwrap_or(0.0),
            demand,
        }
    }
}

fn hours(count: f64) -> Duration {
    Duration::from_secs_f64(count * 3600.0)
}

fn steps(duration: Duration) -> usize {
    (duration.as_millis() / STEP.as_millis()) as usize
}

/// A seeded Gaussian source (SplitMix64 and Box–Muller), so the noisy scenario is the
/// same on every machine and every version of every crate.
struct Noise {
    state: u64,
}

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}
