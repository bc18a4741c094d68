//! The IVR's parsed values: tenant, conference ID, PIN, and the bounded digit
//! buffer keyed digits go into.

use std::fmt;

use crate::Error;
use crate::dtmf::Digit;

/// The longest conference ID or PIN; longer input is cut off here.
pub const MAX_DIGITS: usize = 12;
/// Conference IDs are 6 to 12 digits.
pub const CONFERENCE_ID_DIGITS: std::ops::RangeInclusive<usize> = 6..=MAX_DIGITS;
/// PINs are 4 to 12 digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=MAX_DIGITS;

/// A tenant (organisation) name, as in the config (`contoso`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Wraps a tenant name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A conference ID: 6 to 12 decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConferenceId(Digits);

impl ConferenceId {
    /// Parses `123456789`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        Digits::parse(s, CONFERENCE_ID_DIGITS)
            .map(Self)
            .ok_or(Error::InvalidConferenceId)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conference as the directory names it: the ID within its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConferenceKey {
    /// The tenant that owns the conference.
    pub tenant: TenantId,
    /// The organiser's conference ID.
    pub id: ConferenceId,
}

/// A leader PIN as keyed: 4 to 12 digits. A secret: `Debug` prints `***`, there is no
/// `Display`, and the digits come out only through [`Pin::expose`], for the one
/// comparison against the stored hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Digits);

impl Pin {
    /// Parses a PIN (for directory data and tests; callers key theirs digit by digit).
    pub fn parse(s: &str) -> Result<Self, Error> {
        Digits::parse(s, PIN_DIGITS)
            .map(Self)
            .ok_or(Error::InvalidPin)
    }

    /// The digits, to hash or compare. Never log them.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Up to [`MAX_DIGITS`] ASCII decimal digits, inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Digits {
    bytes: [u8; MAX_DIGITS],
    len: u8,
}

impl Digits {
    const EMPTY: Digits = Digits {
        bytes: [b'0'; MAX_DIGITS],
        len: 0,
    };

    fn parse(s: &str, len: std::ops::RangeInclusive<usize>) -> Option<Self> {
        if !len.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut d = Self::EMPTY;
        for b in s.bytes() {
            d.push(b);
        }
        Some(d)
    }

    /// Appends a digit; beyond [`MAX_DIGITS`] the input is cut off.
    fn push(&mut self, ascii: u8) {
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = ascii;
            self.len += 1;
        }
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Overwrites the digits. Best effort without `unsafe` (no volatile write):
    /// `black_box` keeps the compiler from dropping the stores as dead.
    fn wipe(&mut self) {
        self.bytes = [0; MAX_DIGITS];
        self.len = 0;
        std::hint::black_box(&self.bytes);
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored, so this is always valid UTF-8.
        self.bytes
            .get(..self.len())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller has keyed so far. `Debug` shows only the length, because the
/// same buffer collects PIN digits; cleared digits are overwritten.
#[derive(Default)]
pub(crate) struct DigitBuffer(Option<Digits>);

impl DigitBuffer {
    /// Appends a decimal digit (`*`, `#`, A-D are the caller's to interpret).
    pub(crate) fn push(&mut self, d: Digit) {
        if let Some(v) = d.value() {
            self.0.get_or_insert(Digits::EMPTY).push(b'0' + v);
        }
    }

    pub(crate) fn clear(&mut self) {
        if let Some(d) = self.0.as_mut() {
            d.wipe();
        }
        self.0 = None;
    }

    pub(crate) fn len(&self) -> usize {
        self.0.map_or(0, |d| d.len())
    }

    /// Takes the contents as a conference ID, leaving the buffer empty.
    pub(crate) fn take_conference_id(&mut self) -> Option<ConferenceId> {
        let d = self.0?;
        self.clear();
        CONFERENCE_ID_DIGITS
            .contains(&d.len())
            .then_some(ConferenceId(d))
    }

    /// Takes the contents as a PIN, leaving the buffer empty.
    pub(crate) fn take_pin(&mut self) -> Option<Pin> {
        let d = self.0?;
        self.clear();
        PIN_DIGITS.contains(&d.len()).then_some(Pin(d))
    }
}

impl fmt::Debug for DigitBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigitBuffer({} digits)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conference_id_bounds() {
        assert!(ConferenceId::parse("12345").is_err());
        assert_eq!(ConferenceId::parse("123456").unwrap().as_str(), "123456");
        assert!(ConferenceId::parse("123456789012").is_ok());
        assert!(ConferenceId::parse("1234567890123").is_err());
        assert!(ConferenceId::parse("12345a").is_err());
    }

    #[test]
    fn pin_is_never_in_debug() {
        let pin = Pin::parse("13579").unwrap();
        assert_eq!(format!("{pin:?}"), "***");
        assert_eq!(pin.expose(), "13579");
        assert!(Pin::parse("123").is_err());
        let mut buf = DigitBuffer::default();
        for c in "24680".chars() {
            buf.push(Digit::from_char(c).unwrap());
        }
        assert!(!format!("{buf:?}").contains('2'));
        assert_eq!(format!("{buf:?}"), "DigitBuffer(5 digits)");
    }

    #[test]
    fn buffer_is_bounded() {
        let mut buf = DigitBuffer::default();
        for _ in 0..40 {
            buf.push(Digit::Nine);
        }
        assert_eq!(buf.len(), MAX_DIGITS);
        assert_eq!(buf.take_conference_id().unwrap().as_str(), "999999999999");
        assert_eq!(buf.len(), 0);
    }
}
