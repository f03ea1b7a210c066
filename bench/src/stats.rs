//! The statistics every leashed benchmark prints: medians, and a 95 % bootstrap interval of the
//! median of per-pair ratios. Pairs (or rounds) of short blocks run back to back, so each ratio
//! compares clients under the same machine state; the noise between rounds drops out.

/// The median of `values` (not empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The 2.5th and 97.5th percentiles of the median over 10,000 resamples (a fixed xorshift seed,
/// so a run's interval is reproducible from its numbers).
pub fn bootstrap_median_interval(values: &[f64]) -> (f64, f64) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut medians: Vec<f64> = (0..10_000)
        .map(|_| {
            let sample: Vec<f64> = (0..values.len()).map(|_| values[(next() % values.len() as u64) as usize]).collect();
            median(&sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (medians[250], medians[9_749])
}

/// Per-round ratios `a[i] / b[i]`.
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn the_interval_holds_the_median_of_steady_values() {
        let values: Vec<f64> = (0..100).map(|i| 1.0 + f64::from(i % 5) * 0.01).collect();
        let (low, high) = bootstrap_median_interval(&values);
        assert!(low <= median(&values) && median(&values) <= high, "{low} {high}");
    }
}
