//! Values that change over scenario time: numeric curves (a constant, points joined by
//! straight lines, or a sine wave) and step curves of strings (worker statuses).
//!
//! Each curve has a raw form that serde reads from YAML, keeping every key's position,
//! and a validated form that answers "what is the value at scenario second `t`?".

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::scenario::{Problem, parse_time};

/// A number that changes over scenario time. Times are scenario seconds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Curve {
    Constant(f64),
    /// Sorted by time, at least one point, no two at the same time. Before the first point
    /// the curve holds the first value, after the last point the last value.
    Points(Vec<(f64, f64)>),
    /// `mean + amplitude * sin(2π (t + phase) / period)`.
    Sine {
        mean: f64,
        amplitude: f64,
        period: f64,
        phase: f64,
    },
}

impl Curve {
    pub(super) fn at(&self, t: f64) -> f64 {
        match self {
            Curve::Constant(value) => *value,
            Curve::Points(points) => interpolate(points, t),
            Curve::Sine {
                mean,
                amplitude,
                period,
                phase,
            } => mean + amplitude * (std::f64::consts::TAU * (t + phase) / period).sin(),
        }
    }

    /// The smallest and largest value the curve ever takes.
    fn bounds(&self) -> (f64, f64) {
        match self {
            Curve::Constant(value) => (*value, *value),
            Curve::Points(points) => points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), (_, v)| {
                    (low.min(*v), high.max(*v))
                }),
            Curve::Sine {
                mean, amplitude, ..
            } => (mean - amplitude.abs(), mean + amplitude.abs()),
        }
    }
}

fn interpolate(points: &[(f64, f64)], t: f64) -> f64 {
    let after = points.partition_point(|(time, _)| *time <= t);
    match (after.checked_sub(1).map(|i| points[i]), points.get(after)) {
        (None, Some((_, first))) => *first,
        (Some((_, last)), None) => last,
        (Some((t0, v0)), Some((t1, v1))) => v0 + (v1 - v0) * (t - t0) / (t1 - t0),
        (None, None) => 0.0,
    }
}

/// A string that changes in steps: the value of the latest point at or before `t`, or
/// the first value before the first point.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepCurve {
    /// Sorted by time, at least one point, no two at the same time.
    points: Vec<(f64, String)>,
}

impl StepCurve {
    pub(super) fn constant(value: &str) -> Self {
        StepCurve {
            points: vec![(0.0, value.to_string())],
        }
    }

    pub(super) fn at(&self, t: f64) -> &str {
        let after = self.points.partition_point(|(time, _)| *time <= t);
        &self.points[after.saturating_sub(1)].1
    }

    /// The times at which the value changes, with the new value.
    pub(super) fn steps(&self) -> &[(f64, String)] {
        &self.points
    }
}

/// The allowed range of a numeric curve, named for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) meaning: &'static str,
}

pub(super) const NON_NEGATIVE: Range = Range {
    min: 0.0,
    max: f64::INFINITY,
    meaning: "0 or more",
};

pub(super) const FRACTION: Range = Range {
    min: 0.0,
    max: 1.0,
    meaning: "between 0 and 1",
};

/// A numeric curve as written in YAML.
#[derive(Debug)]
pub(super) enum CurveRaw {
    Constant(f64),
    Points(Vec<(Spanned<String>, Spanned<f64>)>),
    Sine(SineRaw),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SineRaw {
    mean: f64,
    amplitude: f64,
    period: Spanned<String>,
    #[serde(default)]
    phase: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for CurveRaw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CurveVisitor)
    }
}

struct CurveVisitor;

impl<'de> Visitor<'de> for CurveVisitor {
    type Value = CurveRaw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a map of times to numbers (`{0s: 1, 5m: 3}`), or `sine: {mean, amplitude, period}`")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<CurveRaw, E> {
        Ok(CurveRaw::Constant(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<CurveRaw, E> {
        Ok(CurveRaw::Constant(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<CurveRaw, E> {
        Ok(CurveRaw::Constant(value as f64))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CurveRaw, A::Error> {
        let mut points = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            if key.value == "sine" {
                if !points.is_empty() {
                    return Err(de::Error::custom(
                        "`sine` cannot be mixed with time points in one curve",
                    ));
                }
                let sine = map.next_value::<SineRaw>()?;
                if map.next_key::<Spanned<String>>()?.is_some() {
                    return Err(de::Error::custom(
                        "`sine` cannot be mixed with time points in one curve",
                    ));
                }
                return Ok(CurveRaw::Sine(sine));
            }
            points.push((key, map.next_value::<Spanned<f64>>()?));
        }
        Ok(CurveRaw::Points(points))
    }
}

/// A step curve of strings as written in YAML.
#[derive(Debug)]
pub(super) enum StepCurveRaw {
    Constant(String),
    Points(Vec<(Spanned<String>, String)>),
}

impl<'de> Deserialize<'de> for StepCurveRaw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StepCurveVisitor)
    }
}

struct StepCurveVisitor;

impl<'de> Visitor<'de> for StepCurveVisitor {
    type Value = StepCurveRaw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, or a map of times to strings (`{0s: loading, 2m: running}`)")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<StepCurveRaw, E> {
        Ok(StepCurveRaw::Constant(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StepCurveRaw, A::Error> {
        let mut points = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            points.push((key, map.next_value::<String>()?));
        }
        Ok(StepCurveRaw::Points(points))
    }
}

/// Checks a raw numeric curve and turns it into a [`Curve`]. `key` names it in errors.
pub(super) fn validate_curve(
    raw: &Spanned<CurveRaw>,
    key: &str,
    range: Range,
) -> Result<Curve, Problem> {
    let curve = match &raw.value {
        CurveRaw::Constant(value) => Curve::Constant(*value),
        CurveRaw::Points(points) => {
            if points.is_empty() {
                return Err(Problem::at(
                    raw,
                    key,
                    "a curve needs at least one `time: value` point",
                ));
            }
            let mut parsed = Vec::with_capacity(points.len());
            for (time, value) in points {
                parsed.push((parse_time(time, key)?, value.value));
            }
            Curve::Points(sorted_without_repeats(parsed, raw, key)?)
        }
        CurveRaw::Sine(sine) => {
            let period = parse_time(&sine.period, &format!("{key}.sine.period"))?;
            if period <= 0.0 {
                return Err(Problem::at(
                    &sine.period,
                    &format!("{key}.sine.period"),
                    "the period must be longer than 0s",
                ));
            }
            let phase = match &sine.phase {
                Some(phase) => parse_time(phase, &format!("{key}.sine.phase"))?,
                None => 0.0,
            };
            Curve::Sine {
                mean: sine.mean,
                amplitude: sine.amplitude,
                period,
                phase,
            }
        }
    };
    let (low, high) = curve.bounds();
    if !low.is_finite() || !high.is_finite() || low < range.min || high > range.max {
        return Err(Problem::at(
            raw,
            key,
            format!(
                "values must be {} (this curve spans {low} to {high})",
                range.meaning
            ),
        ));
    }
    Ok(curve)
}

/// Checks a raw step curve and turns it into a [`StepCurve`].
pub(super) fn validate_step_curve(
    raw: &Spanned<StepCurveRaw>,
    key: &str,
) -> Result<StepCurve, Problem> {
    match &raw.value {
        StepCurveRaw::Constant(value) => Ok(StepCurve::constant(value)),
        StepCurveRaw::Points(points) => {
            if points.is_empty() {
                return Err(Problem::at(
                    raw,
                    key,
                    "a step curve needs at least one `time: value` point",
                ));
            }
            let mut parsed = Vec::with_capacity(points.len());
            for (time, value) in points {
                parsed.push((parse_time(time, key)?, value.clone()));
            }
            Ok(StepCurve {
                points: sorted_without_repeats(parsed, raw, key)?,
            })
        }
    }
}

fn sorted_without_repeats<T, S>(
    mut points: Vec<(f64, T)>,
    raw: &Spanned<S>,
    key: &str,
) -> Result<Vec<(f64, T)>, Problem> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(pair) = points.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(Problem::at(
            raw,
            key,
            format!("two points are at the same time ({}s)", pair[0].0),
        ));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(curve: &Curve, expected: &[(f64, f64)]) {
        for (t, value) in expected {
            let got = curve.at(*t);
            assert!(
                (got - value).abs() < 1e-9,
                "{curve:?} at {t}s: expected {value}, got {got}"
            );
        }
    }

    #[test]
    fn a_constant_is_the_same_at_every_time() {
        check(
            &Curve::Constant(3.5),
            &[(-10.0, 3.5), (0.0, 3.5), (1e6, 3.5)],
        );
    }

    #[test]
    fn points_interpolate_linearly_and_hold_outside_their_span() {
        let curve = Curve::Points(vec![(60.0, 100.0), (120.0, 300.0), (180.0, 300.0)]);
        check(
            &curve,
            &[
                (0.0, 100.0),
                (60.0, 100.0),
                (90.0, 200.0),
                (120.0, 300.0),
                (150.0, 300.0),
                (1e6, 300.0),
            ],
        );
    }

    #[test]
    fn a_sine_swings_around_its_mean_once_per_period() {
        let curve = Curve::Sine {
            mean: 100.0,
            amplitude: 50.0,
            period: 400.0,
            phase: 0.0,
        };
        check(
            &curve,
            &[
                (0.0, 100.0),
                (100.0, 150.0),
                (200.0, 100.0),
                (300.0, 50.0),
                (400.0, 100.0),
            ],
        );
        assert_eq!(curve.bounds(), (50.0, 150.0));
    }

    #[test]
    fn a_step_curve_takes_the_latest_point_at_or_before_t() {
        let curve = StepCurve {
            points: vec![(30.0, "loading".into()), (120.0, "running".into())],
        };
        for (t, expected) in [
            (0.0, "loading"),
            (30.0, "loading"),
            (119.9, "loading"),
            (120.0, "running"),
            (1e6, "running"),
        ] {
            assert_eq!(curve.at(t), expected, "at {t}s");
        }
    }
}
