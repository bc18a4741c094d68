//! The E.164 number (ITU-T E.164) as a type. It names no error: the fallible readers
//! (`from_u64`, `FromStr`, [`crate::Numbering::normalise`]) are in `numbering.rs`, so
//! the crate's error can carry numbers without a circle between the two files.

use std::fmt;
use std::num::NonZeroU64;

/// An international number: country code and national number, 7 to 15 digits, the first
/// not 0. Stored as its digits read as an integer (a leading 0 is impossible, so the
/// integer determines the digits), which makes it `Copy`, 8 bytes and quick to hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(NonZeroU64);

impl E164 {
    /// Fewest digits accepted (small numbering plans such as Niue's have 7).
    pub const MIN_DIGITS: usize = 7;
    /// Most digits E.164 allows.
    pub const MAX_DIGITS: usize = 15;

    /// Wraps a value whose digit count the caller in `numbering.rs` checks (before
    /// handing it out) against [`Self::MIN_DIGITS`] and [`Self::MAX_DIGITS`].
    pub(crate) const fn from_checked(value: NonZeroU64) -> Self {
        Self(value)
    }

    /// The digits as an integer (no `+`), e.g. 14255550100.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }

    /// Number of digits.
    pub fn len(self) -> usize {
        let mut n = 1;
        let mut v = self.0.get();
        while v >= 10 {
            v /= 10;
            n += 1;
        }
        n
    }

    /// Never true; present because `len` is.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164(+{})", self.0)
    }
}
