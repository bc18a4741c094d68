//! The dialogs of an endpoint, looked up by [`DialogId`] (RFC 3261 §12.2.2: unknown → 481).

use super::{Dialog, DialogEvent, DialogId};
use crate::Error;
use rsip::{Request, Response};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// All dialogs of the bridge, by id.
#[derive(Debug, Default)]
pub struct DialogSet {
    dialogs: HashMap<DialogId, Dialog>,
    events: VecDeque<(DialogId, DialogEvent)>,
}

impl DialogSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dialog; returns the one it replaced, if its id was taken.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.dialogs.insert(dialog.id().clone(), dialog)
    }

    /// The dialog an in-dialog request belongs to. [`Error::NoSuchDialog`] means: answer
    /// 481 ([`Self::no_such_dialog`]); [`Error::BadHeader`]: answer 400.
    pub fn find_for_request(&mut self, request: &Request) -> Result<&mut Dialog, Error> {
        let id = DialogId::for_incoming(request)?;
        self.dialogs.get_mut(&id).ok_or(Error::NoSuchDialog)
    }

    /// The 481 for a request in a dialog we do not have (§12.2.2).
    pub fn no_such_dialog(request: &Request) -> Response {
        crate::message::fields::response_for(request, 481, None, None)
    }

    /// A dialog by id.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// A dialog by id, mutable.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    /// Removes a dialog (after BYE).
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// The earliest session-timer deadline of all dialogs. A scan: session timers fire
    /// minutes apart, so this runs rarely compared with per-packet work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dialogs.values().filter_map(Dialog::poll_timeout).min()
    }

    /// Fire every dialog deadline due at `now`; the results come out of
    /// [`Self::poll_event`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, dialog) in &mut self.dialogs {
            if let Some(ev) = dialog.handle_timeout(now) {
                self.events.push_back((id.clone(), ev));
            }
        }
    }

    /// The next dialog event (send a refresh, or the session expired: send BYE).
    pub fn poll_event(&mut self) -> Option<(DialogId, DialogEvent)> {
        self.events.pop_front()
    }
}
