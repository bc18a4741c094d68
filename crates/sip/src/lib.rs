//! SIP for dialbridge (RFC 3261 and friends).
//!
//! The core is pure: [`message`] turns bytes into rsip messages (making up for what
//! rsip 0.4 gets wrong with real traffic), [`transaction`] and [`dialog`] are state
//! machines driven by events and an `Instant` the caller passes in, [`sdp`] does
//! offer/answer and [`auth`] digest authentication. Sockets live behind the `tokio`
//! feature in [`transport`].

pub mod auth;
pub mod dialog;
mod error;
pub mod message;
pub mod sdp;
pub mod session;
pub mod transaction;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod uas;

pub use error::Error;
pub use rsip;
