//! Spoken counts for the `*3` control: "There are forty-two people in the meeting",
//! joined at run time from word prompts (fixtures/prompts/count/, made by
//! scripts/make-prompts.sh). Loaded once; an announcement is built per request
//! (a rare event, so the one allocation it makes is not on a hot path).

use std::path::Path;

use crate::{Error, Prompt};

/// Counts above this are spoken as this (no room holds ten thousand people).
pub const MAX_SPOKEN: usize = 9999;

/// The word prompts for counts.
#[derive(Debug, Clone)]
pub struct CountAnnouncer {
    only_you: Prompt,
    there_are: Prompt,
    people: Prompt,
    hundred: Prompt,
    thousand: Prompt,
    /// "0" to "19".
    units: Vec<Prompt>,
    /// "20", "30" ... "90".
    tens: Vec<Prompt>,
}

/// One spoken word of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// 0..=19.
    Unit(u8),
    /// 20, 30, ... 90, as 2..=9.
    Ten(u8),
    /// "hundred".
    Hundred,
    /// "thousand".
    Thousand,
}

impl CountAnnouncer {
    /// Loads every word from `dir` (e.g. fixtures/prompts/count).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let load = |stem: &str| Prompt::load(dir.join(format!("{stem}.wav")));
        Ok(Self {
            only_you: load("only-you")?,
            there_are: load("there-are")?,
            people: load("people")?,
            hundred: load("hundred")?,
            thousand: load("thousand")?,
            units: (0..20)
                .map(|n| load(&n.to_string()))
                .collect::<Result<_, _>>()?,
            tens: (2..10)
                .map(|n| load(&(n * 10).to_string()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The announcement for `count` people in the meeting, the listener included:
    /// "You are the only person in the meeting." for 1 (or 0),
    /// "There are N people in the meeting." otherwise.
    pub fn announce(&self, count: usize) -> Prompt {
        if count <= 1 {
            return self.only_you.clone();
        }
        let mut samples = Vec::new();
        samples.extend_from_slice(self.there_are.samples());
        for word in number_words(count) {
            samples.extend_from_slice(self.word(word).samples());
        }
        samples.extend_from_slice(self.people.samples());
        Prompt::from_samples(samples)
    }

    fn word(&self, word: Word) -> &Prompt {
        let found = match word {
            Word::Unit(n) => self.units.get(usize::from(n)),
            Word::Ten(n) => self.tens.get(usize::from(n).wrapping_sub(2)),
            Word::Hundred => Some(&self.hundred),
            Word::Thousand => Some(&self.thousand),
        };
        // number_words only yields units 0..=19 and tens 2..=9, all loaded.
        found.unwrap_or(&self.there_are)
    }
}

/// The words of `n` (clamped to [`MAX_SPOKEN`]), British style without "and":
/// 342 → three hundred forty two.
pub fn number_words(n: usize) -> Vec<Word> {
    let n = n.min(MAX_SPOKEN);
    let mut words = Vec::with_capacity(6);
    if n == 0 {
        words.push(Word::Unit(0));
        return words;
    }
    let thousands = n / 1000;
    let hundreds = n / 100 % 10;
    let rest = n % 100;
    if thousands > 0 {
        words.push(Word::Unit(thousands as u8));
        words.push(Word::Thousand);
    }
    if hundreds > 0 {
        words.push(Word::Unit(hundreds as u8));
        words.push(Word::Hundred);
    }
    if rest >= 20 {
        words.push(Word::Ten((rest / 10) as u8));
        if !rest.is_multiple_of(10) {
            words.push(Word::Unit((rest % 10) as u8));
        }
    } else if rest > 0 {
        words.push(Word::Unit(rest as u8));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use Word::*;

    #[test]
    fn words_of_numbers() {
        assert_eq!(number_words(0), vec![Unit(0)]);
        assert_eq!(number_words(7), vec![Unit(7)]);
        assert_eq!(number_words(13), vec![Unit(13)]);
        assert_eq!(number_words(20), vec![Ten(2)]);
        assert_eq!(number_words(42), vec![Ten(4), Unit(2)]);
        assert_eq!(number_words(100), vec![Unit(1), Hundred]);
        assert_eq!(number_words(342), vec![Unit(3), Hundred, Ten(4), Unit(2)]);
        assert_eq!(number_words(1005), vec![Unit(1), Thousand, Unit(5)]);
        assert_eq!(number_words(2019), vec![Unit(2), Thousand, Unit(19)]);
        assert_eq!(number_words(usize::MAX), number_words(9999));
        assert_eq!(
            number_words(9999),
            vec![Unit(9), Thousand, Unit(9), Hundred, Ten(9), Unit(9)]
        );
    }

    #[test]
    fn announces_from_the_committed_words() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/prompts/count");
        let a = CountAnnouncer::load(&dir).unwrap();
        assert_eq!(a.announce(1), a.only_you);
        assert_eq!(a.announce(0), a.only_you);
        let three = a.announce(3);
        let expected = a.there_are.len() + a.units[3].len() + a.people.len();
        assert_eq!(three.len(), expected);
        assert_eq!(&three.samples()[..a.there_are.len()], a.there_are.samples());
        let big = a.announce(342);
        assert_eq!(
            big.len(),
            a.there_are.len()
                + a.units[3].len()
                + a.hundred.len()
                + a.tens[2].len()
                + a.units[2].len()
                + a.people.len()
        );
        assert!(three.duration().as_secs_f64() < 3.0);
        assert!(matches!(
            CountAnnouncer::load("/nonexistent"),
            Err(Error::Wav { .. })
        ));
    }
}
