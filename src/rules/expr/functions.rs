//! The function table (names, parameters, where each may be used) and the numeric helpers
//! behind aggregates and window functions.

/// A function an expression can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Abs,
    Least,
    Greatest,
    Default,
    Present,
    Extra,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Median,
    Quantile,
    AvgOver,
    MinOver,
    MaxOver,
    CountOver,
    Delta,
    Rate,
    Slope,
    Predict,
}

impl Function {
    pub const ALL: [Function; 21] = [
        Function::Abs,
        Function::Least,
        Function::Greatest,
        Function::Default,
        Function::Present,
        Function::Extra,
        Function::Count,
        Function::Sum,
        Function::Avg,
        Function::Min,
        Function::Max,
        Function::Median,
        Function::Quantile,
        Function::AvgOver,
        Function::MinOver,
        Function::MaxOver,
        Function::CountOver,
        Function::Delta,
        Function::Rate,
        Function::Slope,
        Function::Predict,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Abs => "abs",
            Function::Least => "least",
            Function::Greatest => "greatest",
            Function::Default => "default",
            Function::Present => "present",
            Function::Extra => "extra",
            Function::Count => "count",
            Function::Sum => "sum",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
            Function::Median => "median",
            Function::Quantile => "quantile",
            Function::AvgOver => "avg_over",
            Function::MinOver => "min_over",
            Function::MaxOver => "max_over",
            Function::CountOver => "count_over",
            Function::Delta => "delta",
            Function::Rate => "rate",
            Function::Slope => "slope",
            Function::Predict => "predict",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|function| function.name() == name)
    }

    /// Parameter names, as the docs and messages write them.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Function::Abs
            | Function::Present
            | Function::Sum
            | Function::Avg
            | Function::Min
            | Function::Max
            | Function::Median => &["x"],
            Function::Count => &["pred"],
            Function::Extra => &["name"],
            Function::Least | Function::Greatest => &["a", "b"],
            Function::Default => &["x", "v"],
            Function::Quantile => &["q", "x"],
            Function::AvgOver
            | Function::MinOver
            | Function::MaxOver
            | Function::Delta
            | Function::Rate
            | Function::Slope => &["x", "d"],
            Function::CountOver => &["pred", "d"],
            Function::Predict => &["x", "d", "horizon"],
        }
    }

    /// `avg_over(x, d)`: how a message shows a correct call.
    pub fn signature(self) -> String {
        format!("{}({})", self.name(), self.params().join(", "))
    }

    /// Aggregates over the workers of a snapshot: fleet scope only, argument in worker scope.
    pub fn is_aggregate(self) -> bool {
        matches!(
            self,
            Function::Count
                | Function::Sum
                | Function::Avg
                | Function::Min
                | Function::Max
                | Function::Median
                | Function::Quantile
        )
    }
}

/// The `q`-quantile of `values` (sorted here) by linear interpolation between closest
/// ranks, as PromQL's `quantile`; NaN when there are no values.
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let rank = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let fraction = rank - lower as f64;
    values[lower] + (values[upper] - values[lower]) * fraction
}

/// A least-squares line through `(t, y)` points, accumulated one point at a time
/// (Welford's method, which stays accurate when `t` or `y` are large).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Regression {
    count: f64,
    mean_t: f64,
    mean_y: f64,
    /// Sum of (t - mean_t) * (y - mean_y).
    co_moment: f64,
    /// Sum of (t - mean_t)^2.
    t_moment: f64,
}

impl Regression {
    pub fn add(&mut self, t: f64, y: f64) {
        self.count += 1.0;
        let dt = t - self.mean_t;
        self.mean_t += dt / self.count;
        self.mean_y += (y - self.mean_y) / self.count;
        self.co_moment += dt * (y - self.mean_y);
        self.t_moment += dt * (t - self.mean_t);
    }

    /// Change of y per unit of t; NaN with fewer than two distinct times.
    pub fn slope(&self) -> f64 {
        if self.count < 2.0 || self.t_moment <= 0.0 {
            return f64::NAN;
        }
        self.co_moment / self.t_moment
    }

    /// The line's value at `t`.
    pub fn at(&self, t: f64) -> f64 {
        let slope = self.slope();
        self.mean_y + slope * (t - self.mean_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&mut [5.0], 0.9), 5.0);
        assert_eq!(quantile(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.0), 1.0);
        assert_eq!(quantile(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 1.0), 5.0);
        assert_eq!(quantile(&mut [0.0, 10.0], 0.9), 9.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn regression_fits_a_line_and_needs_two_distinct_times() {
        let mut line = Regression::default();
        for (t, y) in [(-20.0, 1.0), (-10.0, 2.0), (0.0, 3.0)] {
            line.add(t, y);
        }
        assert!((line.slope() - 0.1).abs() < 1e-12);
        assert!((line.at(60.0) - 9.0).abs() < 1e-9);

        let mut single = Regression::default();
        single.add(0.0, 5.0);
        assert!(single.slope().is_nan());
        single.add(0.0, 6.0);
        assert!(single.slope().is_nan());
    }

    #[test]
    fn every_function_round_trips_its_name() {
        for function in Function::ALL {
            assert_eq!(Function::from_name(function.name()), Some(function));
        }
    }
}
