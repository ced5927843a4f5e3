//! Summaries of measured durations, and how many requests of a set were made one after another.

use std::time::{Duration, Instant};

/// Order statistics of a set of durations (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub min: Duration,
    pub median: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// `None` for an empty set.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            min: *sorted.first()?,
            median: percentile(&sorted, 50),
            p95: percentile(&sorted, 95),
            p99: percentile(&sorted, 99),
            max: *sorted.last()?,
        })
    }
}

/// The nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Milliseconds with two decimals, for reports.
pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// The largest number of the given requests (`(sent, answered)`) that ran strictly one after
/// another: the longest chain in which each starts only after the previous one was answered.
/// Requests that overlap in time were in flight together, so they count once; this is the
/// number of sequential round trips the requests cost.
pub fn sequential_round_trips(requests: &[(Instant, Instant)]) -> usize {
    let mut by_end = requests.to_vec();
    by_end.sort_unstable_by_key(|&(_, answered)| answered);
    let mut chain = 0;
    let mut free_from: Option<Instant> = None;
    for (sent, answered) in by_end {
        if free_from.is_none_or(|free| sent >= free) {
            chain += 1;
            free_from = Some(answered);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn summary_uses_nearest_rank() {
        let samples = millis(&(1..=100).rev().collect::<Vec<_>>());
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.min, Duration::from_millis(1));
        assert_eq!(summary.median, Duration::from_millis(50));
        assert_eq!(summary.p95, Duration::from_millis(95));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
    }

    #[test]
    fn summary_of_few_samples() {
        let one = Summary::of(&millis(&[7])).unwrap();
        assert_eq!((one.median, one.p95), (one.min, one.max));
        let three = Summary::of(&millis(&[30, 10, 20])).unwrap();
        assert_eq!(three.median, Duration::from_millis(20));
        assert_eq!(three.p95, Duration::from_millis(30));
        assert_eq!(Summary::of(&[]), None);
    }

    fn spans(pairs: &[(u64, u64)]) -> Vec<(Instant, Instant)> {
        let t0 = Instant::now();
        pairs
            .iter()
            .map(|&(a, b)| (t0 + Duration::from_millis(a), t0 + Duration::from_millis(b)))
            .collect()
    }

    #[test]
    fn one_request_then_a_concurrent_burst_is_two_round_trips() {
        let mut requests = vec![(0, 6)];
        requests.extend((0..26).map(|i| (7, 13 + i)));
        requests.push((7, 14));
        assert_eq!(sequential_round_trips(&spans(&requests)), 2);
    }

    #[test]
    fn a_loop_is_as_many_round_trips_as_requests() {
        let requests: Vec<_> = (0..26).map(|i| (i * 7, i * 7 + 6)).collect();
        assert_eq!(sequential_round_trips(&spans(&requests)), 26);
    }

    #[test]
    fn back_to_back_requests_are_sequential() {
        assert_eq!(sequential_round_trips(&spans(&[(0, 5), (5, 10)])), 2);
        assert_eq!(sequential_round_trips(&spans(&[(0, 5), (4, 10)])), 1);
        assert_eq!(sequential_round_trips(&[]), 0);
    }
}
