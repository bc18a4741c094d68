//! What the bridge itself tells a caller, outside the entry IVR and the meeting (whose
//! prompts are the conference crate's `PromptId`): each a recorded WAV under the
//! prompts directory, named by its [`Notice::file_stem`] (`scripts/make-prompts.sh`).

/// A notice of the bridge's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// "Your communications credits have run out. Goodbye.": the call's next minute
    /// cannot be paid for, and the call ends when this has played.
    CreditsExhausted,
}

impl Notice {
    /// Every notice (each is loaded at start-up).
    pub const ALL: [Notice; 1] = [Notice::CreditsExhausted];

    /// The file stem under the prompts directory.
    pub fn file_stem(self) -> &'static str {
        match self {
            Notice::CreditsExhausted => "credits-exhausted",
        }
    }
}
