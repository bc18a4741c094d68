//! Conference rooms inside the engine: each room is a [`RoomMix`] of the pure
//! pipeline ([`crate::pipeline`]: jitter buffer, decode, squelch, mix, decimate, encode,
//! packetise), run by the clock over the session table under the table lock; the
//! members' jitter buffers sit behind their own locks, filled by the receive thread.
//!
//! Recording: [`MediaEngine::start_recording`] puts a [`RecordingTap`] on the room;
//! each tick the full mix (all talkers and the room prompt) goes to it at 16 kHz, its
//! thread writing the WAV.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::mixer::MixerSlot;
use crate::pipeline::{Jitter, MemberMedia, Members, Popped, RoomMix};
use crate::recording::{RecorderConfig, RecordingSummary, RecordingTap};
use crate::resampler::SampleRate;
use crate::{Error, Prompt};

use super::outbound::Route;
use super::{MediaEngine, Outbound, RtpSession, Table, lock};

/// A room in a [`MediaEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(u64);

impl RoomId {
    /// The id numbered `raw`. An id the engine did not make names no room: joining it
    /// fails with an error, nothing else happens (what tests of the layers above use).
    pub const fn from_raw(raw: u64) -> RoomId {
        RoomId(raw)
    }
}

impl MediaEngine {
    /// Creates an empty room for up to `capacity` members.
    pub fn create_room(&self, capacity: usize) -> RoomId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.table)
            .rooms
            .insert(id, RoomMix::new(capacity));
        RoomId(id)
    }

    /// Removes a room; its members go back to hearing only their own prompts. A
    /// recording stops, its file finalised by the writer thread (call
    /// [`MediaEngine::stop_recording`] first to wait for it and get its summary).
    pub fn close_room(&self, room: RoomId) {
        let recording = {
            let mut table = lock(&self.inner.table);
            let Some(mut state) = table.rooms.remove(&room.0) else {
                return;
            };
            for (session, _) in state.drain_members() {
                if let Some(o) = table.sessions.get_mut(&session) {
                    o.leave_room();
                }
            }
            state.recording.take()
        };
        // Dropped outside the lock: the tap closes its channel and does not wait.
        drop(recording);
    }

    /// Starts recording the room's full mix (everyone, and the room prompts) to a
    /// 16 kHz mono WAV at `path`, written incrementally on its own thread (a crash
    /// loses at most the last second, see [`crate::recording`]). Fails if there is no
    /// such room, it is already being recorded, or the file cannot be created.
    pub fn start_recording(&self, room: RoomId, path: &Path) -> Result<(), Error> {
        self.check_recordable(room)?;
        // The file is created outside the table lock: the clock never waits on a disk.
        let tap = RecordingTap::start(path, RecorderConfig::new(SampleRate::Hz16000))?;
        let mut table = lock(&self.inner.table);
        let state = table.rooms.get_mut(&room.0).ok_or(Error::NoSuchRoom)?;
        if state.recording.is_some() {
            return Err(Error::AlreadyRecording);
        }
        state.recording = Some(tap);
        Ok(())
    }

    /// Stops recording the room: waits for the writer to finish the file and returns
    /// what it holds, or `None` if the room was not being recorded.
    pub fn stop_recording(&self, room: RoomId) -> Option<Result<RecordingSummary, Error>> {
        let tap = lock(&self.inner.table)
            .rooms
            .get_mut(&room.0)?
            .recording
            .take()?;
        Some(tap.finish())
    }

    /// True while the room is being recorded.
    pub fn is_recording(&self, room: RoomId) -> bool {
        lock(&self.inner.table)
            .rooms
            .get(&room.0)
            .is_some_and(|r| r.recording.is_some())
    }

    fn check_recordable(&self, room: RoomId) -> Result<(), Error> {
        match lock(&self.inner.table).rooms.get(&room.0) {
            None => Err(Error::NoSuchRoom),
            Some(r) if r.recording.is_some() => Err(Error::AlreadyRecording),
            Some(_) => Ok(()),
        }
    }

    /// Rooms currently open.
    pub fn room_count(&self) -> usize {
        lock(&self.inner.table).rooms.len()
    }

    /// Members of a room, or `None` if there is no such room.
    pub fn room_size(&self, room: RoomId) -> Option<usize> {
        lock(&self.inner.table).rooms.get(&room.0).map(RoomMix::len)
    }

    /// Plays `prompt` once to every member of the room (mixed over the conversation),
    /// e.g. [`crate::Tone::join_beep`]. Returns false if there is no such room.
    pub fn play_to_room(&self, room: RoomId, prompt: Arc<Prompt>) -> bool {
        match lock(&self.inner.table).rooms.get_mut(&room.0) {
            Some(r) => {
                r.play(prompt);
                true
            }
            None => false,
        }
    }
}

impl RtpSession {
    /// Joins `room` (leaving any other): from the next tick this participant hears
    /// the room and, unless muted, is heard in it.
    pub fn join_room(&self, room: RoomId) -> Result<(), Error> {
        let mut table = lock(&self.inner.table);
        let current = table.sessions.get(&self.id).and_then(|o| o.room);
        if current.is_some_and(|(r, _)| r == room.0) {
            return Ok(());
        }
        let Table { sessions, rooms } = &mut *table;
        let outbound = sessions.get_mut(&self.id).ok_or(Error::NoSuchRoom)?;
        let state = rooms.get_mut(&room.0).ok_or(Error::NoSuchRoom)?;
        let slot = state.join(self.id, outbound.muted).ok_or(Error::RoomFull)?;
        let previous = outbound.room.replace((room.0, slot));
        outbound.enter_room();
        if let Some((old_room, old_slot)) = previous {
            table.remove_member(old_room, self.id, old_slot);
        }
        Ok(())
    }

    /// Leaves the room, if in one.
    pub fn leave_room(&self) {
        let mut table = lock(&self.inner.table);
        let Some(outbound) = table.sessions.get_mut(&self.id) else {
            return;
        };
        let previous = outbound.room;
        outbound.leave_room();
        if let Some((room, slot)) = previous {
            table.remove_member(room, self.id, slot);
        }
    }

    /// A handle that tells, without locking, whether this participant is talking in
    /// its room right now (it outlives the session: then it says no).
    pub fn activity(&self) -> Activity {
        Activity(self.link.clone())
    }

    /// The room this session is in.
    pub fn room(&self) -> Option<RoomId> {
        lock(&self.inner.table)
            .sessions
            .get(&self.id)
            .and_then(|o| o.room)
            .map(|(r, _)| RoomId(r))
    }

    /// Mutes or unmutes: a muted participant still hears the room but is not mixed.
    /// Kept across rooms.
    pub fn set_muted(&self, muted: bool) {
        let mut table = lock(&self.inner.table);
        let Table { sessions, rooms } = &mut *table;
        let Some(outbound) = sessions.get_mut(&self.id) else {
            return;
        };
        outbound.muted = muted;
        if let Some((room, slot)) = outbound.room
            && let Some(state) = rooms.get_mut(&room)
        {
            state.set_muted(slot, muted);
        }
    }

    /// True when muted.
    pub fn is_muted(&self) -> bool {
        lock(&self.inner.table)
            .sessions
            .get(&self.id)
            .is_some_and(|o| o.muted)
    }
}

impl Table {
    /// Takes a session out of a room's member list and mixer.
    pub(super) fn remove_member(&mut self, room: u64, session: u64, slot: MixerSlot) {
        if let Some(state) = self.rooms.get_mut(&room) {
            state.leave(session, slot);
        }
    }
}

/// The clock reaches a room's members in the session table: the jitter buffer behind
/// the lock the receive thread fills it under, the talking flag published for
/// [`RtpSession::activity`].
impl Members for HashMap<u64, Outbound> {
    type Route = Route;

    fn pop(&mut self, key: u64, now: Instant) -> Option<(&mut MemberMedia, Popped)> {
        let o = self.get_mut(&key)?;
        let popped = lock(&o.link.jitter).pop(now);
        Some((&mut o.media, popped))
    }

    fn heard(&mut self, key: u64, talking: bool) -> Option<(&mut MemberMedia, &Route)> {
        let o = self.get_mut(&key)?;
        o.link.talking.store(talking, Ordering::Relaxed);
        Some((&mut o.media, &o.route))
    }
}

impl Outbound {
    fn enter_room(&mut self) {
        // A fresh buffer: whatever arrived before belongs to no conversation. Joining
        // is rare, so the allocation is not on the per-packet path.
        let steady = self.link.steady.load(Ordering::Relaxed);
        *lock(&self.link.jitter) = Jitter::tuned(self.media.codec(), steady);
        self.media.enter_room();
        self.link.in_room.store(true, Ordering::Release);
    }

    fn leave_room(&mut self) {
        self.link.in_room.store(false, Ordering::Release);
        self.link.talking.store(false, Ordering::Relaxed);
        self.room = None;
    }
}

/// Whether a participant is talking, as the clock last saw it ([`RtpSession::activity`]).
#[derive(Debug, Clone)]
pub struct Activity(Arc<super::endpoint::Link>);

impl Activity {
    /// True when the participant's level was above the voice threshold on the last tick.
    pub fn is_talking(&self) -> bool {
        self.0.talking.load(Ordering::Relaxed)
    }
}
