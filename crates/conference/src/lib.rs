//! dialbridge conferences: DTMF from every source, the entry IVR, rooms and the
//! organiser directory.
//!
//! Everything here is pure protocol logic in the quinn style: no I/O, no tokio, and
//! time is an argument (`now: Instant`). Inputs go in through `handle_*`, work comes
//! out through `poll_*`.

pub mod directory;
pub mod dtmf;
mod error;
pub mod guard;
pub mod ivr;
pub mod room;

pub use dtmf::Digit;
pub use error::Error;
