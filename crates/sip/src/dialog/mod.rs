//! SIP dialogs (RFC 3261 §12), both sides, and session timers (RFC 4028).
//!
//! A [`Dialog`] is created from an incoming INVITE ([`Dialog::new_uas`]) or, on the
//! calling side, from a tagged response to the INVITE a [`Caller`] sent
//! ([`Caller::dialog_for`]); it builds the
//! responses that carry its tag and Contact, checks in-dialog requests (§12.2.2) and builds
//! the bridge's own in-dialog requests (§12.2.1: BYE, re-INVITE, UPDATE, and the ACK for a
//! re-INVITE's 2xx). [`DialogSet`] finds the dialog of a request, or says 481. Like the
//! transactions, nothing here does I/O or reads the clock: time comes in as `now`.

pub mod session_timer;
mod set;
mod uac;
mod uas;

pub use session_timer::{Refresher, SessionTimer, SessionTimerConfig, SessionTimerEvent};
pub use set::DialogSet;
pub use uac::Caller;
pub use uas::{Dialog, DialogEvent, DialogState, InDialogRequest, LocalAddress};

use crate::Error;
use crate::message::fields;
use rsip::Request;
use rsip::prelude::*;

/// A dialog's identity (§12): Call-ID, our tag, the peer's tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag (the To tag of requests we receive).
    pub local_tag: String,
    /// The peer's tag (the From tag of requests we receive).
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request claims to belong to. A request without a To tag is
    /// not in any dialog: [`Error::NoSuchDialog`]. Missing Call-ID or From tag:
    /// [`Error::BadHeader`].
    pub fn for_incoming(request: &Request) -> Result<Self, Error> {
        let call_id = request
            .call_id_header()
            .map_err(|_| Error::BadHeader("Call-ID"))?
            .value()
            .to_owned();
        // Our own reader of the tags: rsip's refuses a From with an IPv6 host or a quoted
        // parameter, and the peers that send those hang up like any other.
        let remote_tag = fields::from_tag(&request.headers)
            .ok_or(Error::BadHeader("From tag"))?
            .to_owned();
        let local_tag = fields::to_tag(&request.headers)
            .ok_or(Error::NoSuchDialog)?
            .to_owned();
        Ok(Self {
            call_id,
            local_tag,
            remote_tag,
        })
    }
}

/// A fresh tag: 64 random bits in hex (§19.3 asks for at least 32).
pub fn new_tag() -> rsip::param::Tag {
    rsip::param::Tag::new(format!("{:016x}", rand::random::<u64>()))
}
