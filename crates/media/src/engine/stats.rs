//! Engine-wide measurements the metrics read without taking any lock: the tick
//! lateness histogram (how late each 20 ms tick started against its schedule) and
//! the counters of packets lost inside the bridge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram buckets: 50 µs wide up to 10 ms, then 1 ms wide up to 100 ms, then one
/// overflow bucket. Fine where the target lives (p99 < 5 ms), coarse beyond.
const FINE_US: u64 = 50;
const FINE_BUCKETS: usize = 200; // 0..10 ms
const COARSE_US: u64 = 1000;
const COARSE_BUCKETS: usize = 90; // 10..100 ms
const BUCKETS: usize = FINE_BUCKETS + COARSE_BUCKETS + 1;

/// A lock-free latency histogram: `record` is a few relaxed atomic adds, so the clock
/// thread never waits on a metrics reader.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one sample.
    pub fn record(&self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let us = ns / 1000;
        let index = if us < FINE_US * FINE_BUCKETS as u64 {
            (us / FINE_US) as usize
        } else {
            let coarse = ((us - FINE_US * FINE_BUCKETS as u64) / COARSE_US) as usize;
            FINE_BUCKETS + coarse.min(COARSE_BUCKETS)
        };
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Forgets every sample (e.g. to measure a window after a ramp-up). Not atomic
    /// across buckets: a sample recorded meanwhile may survive.
    pub fn reset(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }

    /// The summary: count, p50, p99 (upper bound of the bucket holding them), max.
    pub fn summary(&self) -> LatencySummary {
        let counts: [u64; BUCKETS] =
            std::array::from_fn(|i| self.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed)));
        let total: u64 = counts.iter().sum();
        let max = Duration::from_nanos(self.max_ns.load(Ordering::Relaxed));
        let quantile = |q: f64| -> Duration {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper(i).min(max);
                }
            }
            max
        };
        LatencySummary {
            count: total,
            p50: quantile(0.50),
            p99: quantile(0.99),
            max,
        }
    }
}

/// The upper bound of bucket `i`.
fn bucket_upper(i: usize) -> Duration {
    if i < FINE_BUCKETS {
        Duration::from_micros(FINE_US * (i as u64 + 1))
    } else if i < FINE_BUCKETS + COARSE_BUCKETS {
        Duration::from_micros(
            FINE_US * FINE_BUCKETS as u64 + COARSE_US * (i - FINE_BUCKETS) as u64 + COARSE_US,
        )
    } else {
        Duration::MAX
    }
}

/// Percentiles of a [`LatencyHistogram`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median (bucket upper bound: 50 µs resolution below 10 ms).
    pub p50: Duration,
    /// 99th percentile, same resolution.
    pub p99: Duration,
    /// Largest sample, exact.
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_buckets() {
        let h = LatencyHistogram::default();
        assert_eq!(h.summary(), LatencySummary::default());
        for _ in 0..98 {
            h.record(Duration::from_micros(120)); // bucket 100..150 µs
        }
        h.record(Duration::from_micros(3_210)); // bucket 3.2..3.25 ms
        h.record(Duration::from_millis(250)); // overflow
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_micros(150));
        assert_eq!(s.p99, Duration::from_micros(3_250));
        assert_eq!(s.max, Duration::from_millis(250));
        h.record(Duration::from_millis(42));
        assert_eq!(bucket_upper(FINE_BUCKETS + 32), Duration::from_millis(43));
    }
}
