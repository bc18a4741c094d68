//! Counters of calls in progress and of refusals, and the snapshot the metrics endpoint
//! renders. Every counter is an atomic: updating one takes no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::decision::RejectReason;
use crate::e164::E164;

/// Calls in progress on one trunk or bridge (the reservation counter), plus its totals.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    in_use: AtomicU32,
    admitted: AtomicU64,
    rejected: Rejections,
}

impl Gauge {
    /// Takes one unit if fewer than `limit` are taken. A compare-and-swap loop, so
    /// concurrent callers can never push the count past `limit`.
    pub(crate) fn try_acquire(&self, limit: u32) -> bool {
        try_acquire(&self.in_use, limit)
    }

    pub(crate) fn release(&self) {
        release(&self.in_use);
    }

    pub(crate) fn admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        self.rejected.add(reason);
    }

    pub(crate) fn in_use(&self) -> u32 {
        self.in_use.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self, name: Arc<str>, capacity: Option<u32>) -> ResourceStats {
        ResourceStats {
            name,
            in_progress: self.in_use(),
            capacity,
            admitted: self.admitted.load(Ordering::Relaxed),
            rejected: self.rejected.counts(),
        }
    }
}

/// Compare-and-swap increment bounded by `limit`.
pub(crate) fn try_acquire(counter: &AtomicU32, limit: u32) -> bool {
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        if current >= limit {
            return false;
        }
        match counter.compare_exchange_weak(
            current,
            current + 1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(actual) => current = actual,
        }
    }
}

/// Gives one unit back; saturates at 0 so that a bug cannot wrap a gauge to 4 billion.
pub(crate) fn release(counter: &AtomicU32) -> u32 {
    match counter.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| v.checked_sub(1)) {
        Ok(previous) => previous - 1,
        Err(_) => {
            debug_assert!(false, "capacity released more often than acquired");
            0
        }
    }
}

/// Refusal counters by reason.
#[derive(Debug, Default)]
pub(crate) struct Rejections([AtomicU64; RejectReason::COUNT]);

impl Rejections {
    pub(crate) fn add(&self, reason: RejectReason) {
        if let Some(c) = self.0.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn counts(&self) -> ReasonCounts {
        ReasonCounts(std::array::from_fn(|i| {
            self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
        }))
    }
}

/// Refusals by reason, indexed by [`RejectReason::index`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReasonCounts(pub [u64; RejectReason::COUNT]);

impl ReasonCounts {
    /// Refusals for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` pairs with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .zip(self.0.iter())
            .filter(|(_, c)| **c > 0)
            .map(|(r, c)| (*r, *c))
    }
}

/// A trunk's or a bridge's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStats {
    /// Its name.
    pub name: Arc<str>,
    /// Calls in progress (gauge).
    pub in_progress: u32,
    /// Current capacity; `None` once it left the plan (its calls may still be up).
    pub capacity: Option<u32>,
    /// Calls admitted since start (counter).
    pub admitted: u64,
    /// Calls refused since start, by reason (counters).
    pub rejected: ReasonCounts,
}

/// A number's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberStats {
    /// The number.
    pub number: E164,
    /// Calls in progress (gauge).
    pub in_progress: u32,
    /// Current capacity; `None` once it left the plan.
    pub capacity: Option<u32>,
    /// Calls refused since start, by reason (counters; unknown numbers are counted only
    /// in the totals, to keep the label set bounded).
    pub rejected: ReasonCounts,
}

/// Everything the metrics endpoint renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Calls admitted since start.
    pub admitted: u64,
    /// Calls refused since start, by reason.
    pub rejected: ReasonCounts,
    /// Every trunk the router has known, the softphone pseudo-trunk included.
    pub trunks: Vec<ResourceStats>,
    /// Every bridge the router has known.
    pub bridges: Vec<ResourceStats>,
    /// Numbers with calls in progress or refusals counted (not the idle millions).
    pub numbers: Vec<NumberStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_stops_at_the_limit_and_release_gives_back() {
        let g = Gauge::default();
        assert!(g.try_acquire(2));
        assert!(g.try_acquire(2));
        assert!(!g.try_acquire(2));
        assert_eq!(g.in_use(), 2);
        g.release();
        assert!(g.try_acquire(2));
        assert!(
            !g.try_acquire(1),
            "a lowered limit admits nobody until calls end"
        );
        g.reject(RejectReason::NumberBusy);
        let s = g.stats("x".into(), Some(2));
        assert_eq!(s.in_progress, 2);
        assert_eq!(s.rejected.get(RejectReason::NumberBusy), 1);
        assert_eq!(
            s.rejected.iter().collect::<Vec<_>>(),
            vec![(RejectReason::NumberBusy, 1)]
        );
    }
}
