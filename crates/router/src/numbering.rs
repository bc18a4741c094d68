//! Reading numbers: the strict `+digits` form of configs and the admin API
//! (`E164: FromStr`), and the normalisation of a dialled number taken from a
//! Request-URI: `sip:`/`sips:` user parts (RFC 3261 §19.1.1, `user=phone`) and `tel:`
//! URIs with visual separators and `;phone-context=` (RFC 3966 §5.1). The number type
//! itself is in `e164.rs`, which names no error, so that `error.rs` can name numbers.

use std::num::NonZeroU64;
use std::str::FromStr;

use crate::e164::E164;
use crate::error::Error;

/// The constructors that can fail report through the crate's one [`Error`], so they live
/// here, beside the other readers of numbers, rather than beside the type.
impl E164 {
    /// Builds a number from its digits (ASCII `0`..`9` values 0..=9).
    fn from_digits(digits: &[u8]) -> Result<Self, Error> {
        if digits.len() > Self::MAX_DIGITS {
            return Err(Error::TooLong);
        }
        if digits.len() < Self::MIN_DIGITS {
            return Err(Error::TooShort(digits.len()));
        }
        if digits.first() == Some(&0) {
            return Err(Error::LeadingZero);
        }
        let value = digits.iter().fold(0u64, |v, d| v * 10 + u64::from(*d));
        NonZeroU64::new(value)
            .map(Self::from_checked)
            .ok_or(Error::LeadingZero)
    }

    /// Builds a number from its digits as an integer, e.g. `E164::from_u64(14255550100)`.
    pub fn from_u64(value: u64) -> Result<Self, Error> {
        let value = NonZeroU64::new(value).ok_or(Error::TooShort(1))?;
        let number = Self::from_checked(value);
        let n = number.len();
        if n < Self::MIN_DIGITS {
            return Err(Error::TooShort(n));
        }
        if n > Self::MAX_DIGITS {
            return Err(Error::TooLong);
        }
        Ok(number)
    }
}

/// Strict parse of the canonical form: `+` and digits, nothing else (config, admin API).
/// Dialled numbers go through [`Numbering::normalise`] instead.
impl FromStr for E164 {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let malformed = |reason| Error::MalformedE164 {
            text: s.to_owned(),
            reason: Box::new(reason),
        };
        let digits = match s.strip_prefix('+') {
            Some(digits) => digits,
            None => {
                let reason = s
                    .chars()
                    .next()
                    .map_or(Error::NoDigits, Error::InvalidCharacter);
                return Err(malformed(reason));
            }
        };
        let mut buf = DigitBuf::new();
        for c in digits.chars() {
            match c.to_digit(10) {
                Some(d) if c.is_ascii_digit() => buf.push(d as u8).map_err(malformed)?,
                _ => return Err(malformed(Error::InvalidCharacter(c))),
            }
        }
        Self::from_digits(buf.as_slice()).map_err(malformed)
    }
}

/// The dialling conventions of the deployment: how national forms are completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbering {
    country_code: Prefix,
    national_prefix: Prefix,
    international_prefixes: Vec<Prefix>,
}

impl Numbering {
    /// Conventions of country code `country_code` (e.g. `"1"`, `"33"`): national prefix
    /// `1` and international prefixes `011` and `00` for the North American plan, national
    /// prefix `0` and international prefix `00` elsewhere (ITU-T E.164 Annex, the common case).
    pub fn new(country_code: &str) -> Result<Self, Error> {
        let cc = Prefix::parse(country_code, 3)
            .filter(|p| p.as_slice().first() != Some(&0))
            .ok_or_else(|| Error::InvalidCountryCode(country_code.to_owned()))?;
        let nanp = cc.as_slice() == [1];
        let national = if nanp { "1" } else { "0" };
        let mut international = vec![Prefix::parse("00", 4).ok_or(Error::NoDigits)?];
        if nanp {
            international.insert(0, Prefix::parse("011", 4).ok_or(Error::NoDigits)?);
        }
        Ok(Self {
            country_code: cc,
            national_prefix: Prefix::parse(national, 4).ok_or(Error::NoDigits)?,
            international_prefixes: international,
        })
    }

    /// Replaces the national (trunk) prefix stripped from national forms; `""` for none.
    pub fn with_national_prefix(mut self, prefix: &str) -> Result<Self, Error> {
        self.national_prefix = if prefix.is_empty() {
            Prefix::EMPTY
        } else {
            Prefix::parse(prefix, 4).ok_or_else(|| Error::InvalidPrefix(prefix.to_owned()))?
        };
        Ok(self)
    }

    /// Replaces the international prefixes (such as `00`, `011`).
    pub fn with_international_prefixes(mut self, prefixes: &[&str]) -> Result<Self, Error> {
        let mut parsed = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            parsed.push(Prefix::parse(p, 4).ok_or_else(|| Error::InvalidPrefix((*p).to_owned()))?);
        }
        // Longest first, so `0011` wins over `00`.
        parsed.sort_by_key(|p| std::cmp::Reverse(p.len));
        self.international_prefixes = parsed;
        Ok(self)
    }

    /// Country code completing national forms, as digits.
    pub fn country_code(&self) -> &[u8] {
        self.country_code.as_slice()
    }

    /// The dialled number of a Request-URI (or of a bare number string), in E.164.
    ///
    /// Accepts `sip:`, `sips:` (the user part) and `tel:` URIs, case-insensitive schemes,
    /// percent-encoding, the visual separators `-` `.` `(` `)` and space, a `+` in front,
    /// `;phone-context=+<digits>` completing a local number (RFC 3966 §5.1.5), an
    /// international prefix, and national forms (with or without the national prefix),
    /// which get the default country code. A domain-name phone-context is treated as
    /// national. Allocates nothing.
    ///
    /// An international number sent without `+` or prefix can only be told from a national
    /// one where the national prefix equals the country code (`1` in North America); elsewhere
    /// it is read as national, as a handset in that country would.
    pub fn normalise(&self, uri: &str) -> Result<E164, Error> {
        let (number, params) = split_uri(uri.trim())?;
        let mut local = DigitBuf::new();
        let plus = collect_digits(number, &mut local)?;
        if local.len == 0 {
            return Err(Error::NoDigits);
        }
        if plus {
            return E164::from_digits(local.as_slice());
        }
        if let Some(context) = global_phone_context(params) {
            let mut full = DigitBuf::new();
            if collect_digits(context, &mut full)? {
                full.extend(local.as_slice())?;
                return E164::from_digits(full.as_slice());
            }
        }
        let digits = local.as_slice();
        for prefix in &self.international_prefixes {
            if let Some(rest) = digits.strip_prefix(prefix.as_slice()) {
                return E164::from_digits(rest);
            }
        }
        let national = match digits.strip_prefix(self.national_prefix.as_slice()) {
            Some(rest) if !rest.is_empty() && !self.national_prefix.is_empty() => rest,
            _ => digits,
        };
        let mut full = DigitBuf::new();
        full.extend(self.country_code.as_slice())?;
        full.extend(national)?;
        E164::from_digits(full.as_slice())
    }
}

/// Splits a URI into the number and its parameters (`;...`), without the scheme and host.
fn split_uri(uri: &str) -> Result<(&str, &str), Error> {
    let uri = uri
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or(uri);
    let user = if let Some(rest) = strip_scheme(uri, "tel:") {
        rest
    } else if let Some(rest) = strip_scheme(uri, "sips:").or_else(|| strip_scheme(uri, "sip:")) {
        let (userinfo, _host) = rest.split_once('@').ok_or(Error::NoUserPart)?;
        // `user:password@` — a password is never part of the number.
        userinfo.split_once(':').map_or(userinfo, |(user, _)| user)
    } else {
        uri
    };
    Ok(user.split_once(';').unwrap_or((user, "")))
}

fn strip_scheme<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    let head = uri.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| uri.get(scheme.len()..))
        .flatten()
}

/// The value of `phone-context` if it is a global number (`+...`), not a domain name.
fn global_phone_context(params: &str) -> Option<&str> {
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("phone-context")
            && value.trim_start().starts_with(['+', '%']))
        .then_some(value)
    })
}

/// Appends the digits of `s` (percent-decoded, separators skipped) to `out`; returns
/// whether a `+` led them.
fn collect_digits(s: &str, out: &mut DigitBuf) -> Result<bool, Error> {
    let bytes = s.as_bytes();
    let mut plus = false;
    let mut seen = false;
    let mut i = 0;
    while i < bytes.len() {
        let mut b = bytes[i];
        i += 1;
        if b == b'%' {
            let hi = bytes.get(i).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => b = (hi * 16 + lo) as u8,
                _ => return Err(Error::BadPercentEncoding),
            }
            i += 2;
        }
        match b {
            b'0'..=b'9' => {
                out.push(b - b'0')?;
                seen = true;
            }
            b'+' if !plus && !seen => plus = true,
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            other => return Err(Error::InvalidCharacter(char::from(other))),
        }
    }
    Ok(plus)
}

/// Digits on the stack: a dialled number never needs a heap allocation.
struct DigitBuf {
    buf: [u8; 24],
    len: usize,
}

impl DigitBuf {
    fn new() -> Self {
        Self {
            buf: [0; 24],
            len: 0,
        }
    }

    fn push(&mut self, digit: u8) -> Result<(), Error> {
        let slot = self.buf.get_mut(self.len).ok_or(Error::TooLong)?;
        *slot = digit;
        self.len += 1;
        Ok(())
    }

    fn extend(&mut self, digits: &[u8]) -> Result<(), Error> {
        digits.iter().try_for_each(|d| self.push(*d))
    }

    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// A short digit string (country code or dialling prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    digits: [u8; 4],
    len: usize,
}

impl Prefix {
    const EMPTY: Self = Self {
        digits: [0; 4],
        len: 0,
    };

    fn parse(s: &str, max: usize) -> Option<Self> {
        if s.is_empty() || s.len() > max.min(4) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut p = Self::EMPTY;
        for (slot, b) in p.digits.iter_mut().zip(s.bytes()) {
            *slot = b - b'0';
        }
        p.len = s.len();
        Some(p)
    }

    fn as_slice(&self) -> &[u8] {
        self.digits.get(..self.len).unwrap_or(&[])
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nanp() -> Numbering {
        Numbering::new("1").unwrap()
    }

    fn e(s: &str) -> E164 {
        s.parse().unwrap()
    }

    #[test]
    fn strict_parse_and_display_round_trip() {
        let n = e("+14255550100");
        assert_eq!(n.to_string(), "+14255550100");
        assert_eq!(n.len(), 11);
        assert_eq!(E164::from_u64(14255550100).unwrap(), n);
        for bad in [
            "14255550100",
            "+1425",
            "+1234567890123456",
            "+04255550100",
            "+1 425",
            "",
        ] {
            assert!(
                matches!(bad.parse::<E164>(), Err(Error::MalformedE164 { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn normalises_the_forms_trunks_send() {
        let n = nanp();
        let want = e("+14255550100");
        for uri in [
            "sip:+14255550100@127.0.0.1;user=phone",
            "SIP:+1-425-555-0100@host",
            "sips:+1.425.555.0100@host:5061;transport=tls",
            "sip:+1%20(425)%20555-0100@host",
            "sip:%2B14255550100@host",
            "tel:+1-425-555-0100",
            "TEL:+14255550100;ext=12",
            "<sip:+14255550100@host>",
            "sip:14255550100@host",
            "sip:4255550100@host",
            "sip:(425) 555-0100@host",
            "sip:01114255550100@host",
            "sip:0014255550100@host",
            "tel:5550100;phone-context=+1-425",
            "sip:5550100;phone-context=+1425@host;user=phone",
            "sip:+14255550100:secret@host",
            "+14255550100",
        ] {
            assert_eq!(n.normalise(uri), Ok(want), "{uri}");
        }
    }

    #[test]
    fn national_forms_elsewhere() {
        let fr = Numbering::new("33").unwrap();
        assert_eq!(fr.normalise("sip:0170000100@h"), Ok(e("+33170000100")));
        assert_eq!(fr.normalise("sip:170000100@h"), Ok(e("+33170000100")));
        assert_eq!(fr.normalise("sip:004930700001@h"), Ok(e("+4930700001")));
        assert_eq!(
            fr.normalise("tel:0170000100;phone-context=example.com"),
            Ok(e("+33170000100"))
        );
        let au = Numbering::new("61")
            .unwrap()
            .with_international_prefixes(&["0011"])
            .unwrap();
        assert_eq!(
            au.normalise("sip:0011442079460000@h"),
            Ok(e("+442079460000"))
        );
        let none = Numbering::new("44")
            .unwrap()
            .with_national_prefix("")
            .unwrap();
        assert_eq!(none.normalise("sip:02079460000@h"), Ok(e("+4402079460000")));
    }

    #[test]
    fn refuses_what_is_no_number() {
        let n = nanp();
        assert_eq!(
            n.normalise("sip:conference@host"),
            Err(Error::InvalidCharacter('c'))
        );
        assert_eq!(n.normalise("sip:host"), Err(Error::NoUserPart));
        assert_eq!(n.normalise("tel:"), Err(Error::NoDigits));
        assert_eq!(n.normalise("sip:+1425%2@h"), Err(Error::BadPercentEncoding));
        assert_eq!(
            n.normalise("sip:+1425++5550100@h"),
            Err(Error::InvalidCharacter('+'))
        );
        assert_eq!(
            n.normalise("sip:425*55@h"),
            Err(Error::InvalidCharacter('*'))
        );
        assert_eq!(n.normalise("tel:+12345"), Err(Error::TooShort(5)));
        assert_eq!(n.normalise("tel:+0123456789"), Err(Error::LeadingZero));
        assert_eq!(n.normalise("tel:+1234567890123456"), Err(Error::TooLong));
        assert_eq!(
            n.normalise(&format!("tel:+{}", "1".repeat(100))),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn numbering_validates_its_codes() {
        assert!(matches!(
            Numbering::new("0"),
            Err(Error::InvalidCountryCode(_))
        ));
        assert!(matches!(
            Numbering::new("1234"),
            Err(Error::InvalidCountryCode(_))
        ));
        assert!(matches!(
            Numbering::new("4a"),
            Err(Error::InvalidCountryCode(_))
        ));
        assert!(matches!(
            nanp().with_national_prefix("x"),
            Err(Error::InvalidPrefix(_))
        ));
        assert!(matches!(
            nanp().with_international_prefixes(&["00000"]),
            Err(Error::InvalidPrefix(_))
        ));
    }

    /// A valid number as digits: first 1-9, 7 to 15 in all.
    fn digits() -> impl Strategy<Value = String> {
        "[1-9][0-9]{6,14}"
    }

    /// `s` with a random visual separator (maybe percent-encoded) after each digit.
    fn decorate(s: &str, seps: &[u8]) -> String {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            out.push(c);
            match seps.get(i).copied().unwrap_or(0) % 8 {
                1 => out.push('-'),
                2 => out.push('.'),
                3 => out.push_str("%20"),
                4 => out.push(' '),
                5 => out.push_str("%2D"),
                _ => {}
            }
        }
        out
    }

    fn wrap(number: &str, scheme: u8) -> String {
        match scheme % 4 {
            0 => format!("sip:{number}@bridge.example;user=phone"),
            1 => format!("sips:{number}@10.0.0.1:5061"),
            2 => format!("tel:{number}"),
            _ => number.to_owned(),
        }
    }

    proptest! {
        #[test]
        fn any_decorated_international_form_normalises(
            d in digits(), seps in proptest::collection::vec(any::<u8>(), 16), scheme in any::<u8>(), form in 0u8..3,
        ) {
            let want: E164 = format!("+{d}").parse().unwrap();
            prop_assert_eq!(want.to_string(), format!("+{d}"));
            let body = match form {
                0 => format!("+{}", decorate(&d, &seps)),
                1 => format!("00{}", decorate(&d, &seps)),
                _ => format!("011{}", decorate(&d, &seps)),
            };
            prop_assert_eq!(nanp().normalise(&wrap(&body, scheme)), Ok(want));
        }

        #[test]
        fn phone_context_completes_local_numbers(d in digits(), cut in 1usize..6, seps in proptest::collection::vec(any::<u8>(), 16)) {
            let cut = cut.min(d.len() - 1);
            let (context, local) = d.split_at(cut);
            let want: E164 = format!("+{d}").parse().unwrap();
            let uri = format!("tel:{};phone-context=+{context}", decorate(local, &seps));
            prop_assert_eq!(Numbering::new("44").unwrap().normalise(&uri), Ok(want));
        }

        #[test]
        fn national_forms_get_the_country_code(national in "[2-9][0-9]{5,13}", with_prefix in any::<bool>(), seps in proptest::collection::vec(any::<u8>(), 16)) {
            let want: E164 = format!("+1{national}").parse().unwrap();
            let body = if with_prefix { format!("1{national}") } else { national.clone() };
            prop_assert_eq!(nanp().normalise(&wrap(&decorate(&body, &seps), 0)), Ok(want));
        }

        #[test]
        fn never_panics_on_any_input(s in ".{0,64}") {
            let _ = nanp().normalise(&s);
            let _ = s.parse::<E164>();
        }

        #[test]
        fn from_u64_round_trips(d in digits()) {
            let n: E164 = format!("+{d}").parse().unwrap();
            prop_assert_eq!(E164::from_u64(n.as_u64()), Ok(n));
            prop_assert_eq!(n.len(), d.len());
        }
    }
}
