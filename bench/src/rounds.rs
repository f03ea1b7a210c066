//! Rounds: each round runs one block of every client of a workload, in an order that rotates
//! from round to round, and records each client's time per operation. A row then shows each
//! client's median, and its ratio to the baseline (the first client): the median of the
//! per-round ratios with a 95 % bootstrap interval.

use crate::stats::{bootstrap_median_interval, median, ratios};
use std::time::Duration;

/// The per-operation times of each client, one entry per round.
pub struct Samples {
    pub names: Vec<&'static str>,
    pub per_op: Vec<Vec<f64>>,
}

impl Samples {
    pub fn new(names: &[&'static str]) -> Samples {
        Samples { names: names.to_vec(), per_op: vec![Vec::new(); names.len()] }
    }

    /// Records that client `which` took `elapsed` for `ops` operations.
    pub fn record(&mut self, which: usize, elapsed: Duration, ops: u32) {
        self.per_op[which].push(elapsed.as_secs_f64() / f64::from(ops));
    }

    /// The order clients run in during round `round`: rotated, so none always goes first.
    pub fn order(&self, round: usize) -> Vec<usize> {
        let n = self.names.len();
        (0..n).map(|i| (i + round) % n).collect()
    }

    /// One printed row: `workload`, then each client's median, and its ratio to the first.
    pub fn row(&self, workload: &str) -> String {
        let mut row = format!("{workload:<46}");
        for (i, name) in self.names.iter().enumerate() {
            if self.per_op[i].is_empty() {
                continue;
            }
            let typical = median(&self.per_op[i]);
            row.push_str(&format!(" | {name} {}", human(typical)));
            if i > 0 && !self.per_op[0].is_empty() {
                let r = ratios(&self.per_op[i], &self.per_op[0]);
                let (low, high) = bootstrap_median_interval(&r);
                row.push_str(&format!(" = {:.2}x {} (95 %: {low:.2}-{high:.2})", median(&r), self.names[0]));
            } else if self.names.len() == 1 {
                let (low, high) = bootstrap_median_interval(&self.per_op[0]);
                row.push_str(&format!(" (95 %: {}-{})", human(low), human(high)));
            }
        }
        row
    }
}

/// Seconds as us, ms or s.
pub fn human(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} us", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rotates_and_covers_every_client() {
        let samples = Samples::new(&["a", "b", "c"]);
        assert_eq!(samples.order(0), vec![0, 1, 2]);
        assert_eq!(samples.order(1), vec![1, 2, 0]);
    }

    #[test]
    fn a_row_shows_the_ratio_to_the_first_client() {
        let mut samples = Samples::new(&["native", "leashed"]);
        for _ in 0..5 {
            samples.record(0, Duration::from_micros(400), 10);
            samples.record(1, Duration::from_micros(800), 10);
        }
        let row = samples.row("SELECT 1");
        assert!(row.contains("native 40.0 us") && row.contains("leashed 80.0 us = 2.00x native"), "{row}");
    }
}
