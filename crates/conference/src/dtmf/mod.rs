//! DTMF digits from every source: RFC 4733 telephone-events, SIP INFO bodies and
//! in-band tones (Goertzel), merged by a combiner so one key press counts once.

mod call;
mod combiner;
mod goertzel;
mod info;
mod listener;
mod rfc4733;

pub use call::CallDtmf;
pub use combiner::{Combiner, DEFAULT_DUPLICATE_WINDOW};
pub use goertzel::{BLOCK_SAMPLES, GoertzelConfig, GoertzelDetector, SAMPLE_RATE, signal};
pub use info::{InfoDtmf, MAX_INFO_BODY, parse_info};
pub use listener::ToneListener;
pub use rfc4733::{DEFAULT_EVENT_TIMEOUT, TelephoneEventDecoder, encode as encode_telephone_event};

/// One DTMF key: 0-9, `*`, `#` and the A-D column of military/test keypads.
///
/// The discriminants are the RFC 4733 §3.2 event codes (10 = `*`, 11 = `#`,
/// 12-15 = A-D), so conversion to and from the wire is a table lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Digit {
    /// `0`
    Zero = 0,
    /// `1`
    One = 1,
    /// `2`
    Two = 2,
    /// `3`
    Three = 3,
    /// `4`
    Four = 4,
    /// `5`
    Five = 5,
    /// `6`
    Six = 6,
    /// `7`
    Seven = 7,
    /// `8`
    Eight = 8,
    /// `9`
    Nine = 9,
    /// `*`
    Star = 10,
    /// `#`
    Pound = 11,
    /// `A`
    A = 12,
    /// `B`
    B = 13,
    /// `C`
    C = 14,
    /// `D`
    D = 15,
}

/// All sixteen digits in event-code order.
pub const ALL_DIGITS: [Digit; 16] = [
    Digit::Zero,
    Digit::One,
    Digit::Two,
    Digit::Three,
    Digit::Four,
    Digit::Five,
    Digit::Six,
    Digit::Seven,
    Digit::Eight,
    Digit::Nine,
    Digit::Star,
    Digit::Pound,
    Digit::A,
    Digit::B,
    Digit::C,
    Digit::D,
];

impl Digit {
    /// The digit for an RFC 4733 event code; `None` for the non-DTMF events (16 and up:
    /// flash, modem and fax tones).
    pub fn from_event(code: u8) -> Option<Digit> {
        ALL_DIGITS.get(usize::from(code)).copied()
    }

    /// The RFC 4733 event code.
    pub fn event(self) -> u8 {
        self as u8
    }

    /// The digit for a keypad character (`0-9 * # A-D`, letters in either case).
    pub fn from_char(c: char) -> Option<Digit> {
        let code = match c {
            '0'..='9' => c as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => c as u8 - b'A' + 12,
            'a'..='d' => c as u8 - b'a' + 12,
            _ => return None,
        };
        Digit::from_event(code)
    }

    /// The keypad character.
    pub fn as_char(self) -> char {
        b"0123456789*#ABCD"
            .get(usize::from(self.event()))
            .map_or('?', |b| char::from(*b))
    }

    /// The numeric value of 0-9; `None` for `*`, `#` and A-D.
    pub fn value(self) -> Option<u8> {
        let code = self.event();
        (code <= 9).then_some(code)
    }
}

/// Where a digit came from; the combiner uses it to recognise one press seen twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// RFC 4733 telephone-event in the RTP stream.
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Info,
    /// Tones in the audio, found by the Goertzel detector.
    InBand,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_and_chars_round_trip() {
        for (code, d) in ALL_DIGITS.iter().enumerate() {
            assert_eq!(usize::from(d.event()), code);
            assert_eq!(Digit::from_event(d.event()), Some(*d));
            assert_eq!(Digit::from_char(d.as_char()), Some(*d));
        }
        assert_eq!(Digit::from_event(10), Some(Digit::Star));
        assert_eq!(Digit::from_event(11), Some(Digit::Pound));
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit::from_char('b'), Some(Digit::B));
        assert_eq!(Digit::from_char('e'), None);
        assert_eq!(Digit::Seven.value(), Some(7));
        assert_eq!(Digit::Pound.value(), None);
    }
}
