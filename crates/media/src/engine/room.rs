//! Conference rooms inside the engine: each room is a [`RoomMix`] of the pure
//! pipeline ([`crate::pipeline`]: jitter buffer, decode, squelch, mix, decimate, encode,
//! packetise), run by its shard's clock over the shard's session table under the table
//! lock. A room lives in one shard, named in the low bits of its id; a session that
//! joins it moves there.
//!
//! Recording: [`MediaEngine::start_recording`] puts a [`RecordingTap`] on the room;
//! each tick the full mix (all talkers and the room prompt) goes to it at 16 kHz, its
//! thread writing the WAV.

use std::path::Path;
use std::sync::Arc;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use crate::pipeline::{Jitter, RoomMix};
use crate::recording::{RecorderConfig, RecordingSummary, RecordingTap};
use crate::resampler::SampleRate;
use crate::{Error, Prompt};

use super::shard::{self, SHARD_BITS, Table};
use super::{Inner, MediaEngine, Outbound, RtpSession, lock};

/// A room in a [`MediaEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(u64);

impl RoomId {
    /// The id numbered `raw`. An id the engine did not make names no room: joining it
    /// fails with an error, nothing else happens (what tests of the layers above use).
    pub const fn from_raw(raw: u64) -> RoomId {
        RoomId(raw)
    }

    /// The shard the room lives in.
    fn shard(self) -> usize {
        (self.0 & ((1 << SHARD_BITS) - 1)) as usize
    }
}

impl Inner {
    /// The table of the shard `room` lives in (locked), if the id can name one.
    fn room_table(&self, room: RoomId) -> Option<MutexGuard<'_, Table>> {
        self.shards.get(room.shard()).map(|s| lock(&s.table))
    }
}

impl MediaEngine {
    /// Creates an empty room for up to `capacity` members, in the shard carrying the
    /// fewest sessions (its members will move there as they join).
    pub fn create_room(&self, capacity: usize) -> RoomId {
        let shards = &self.inner.shards;
        let shard = (0..shards.len())
            .min_by_key(|&i| {
                shards.get(i).map_or((usize::MAX, usize::MAX), |s| {
                    let table = lock(&s.table);
                    (table.sessions.len(), table.rooms.len())
                })
            })
            .unwrap_or(0);
        let number = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let room = RoomId((number << SHARD_BITS) | shard as u64);
        if let Some(mut table) = self.inner.room_table(room) {
            table.rooms.insert(room.0, RoomMix::new(capacity));
        }
        room
    }

    /// Removes a room; its members go back to hearing only their own prompts. A
    /// recording stops, its file finalised by the writer thread (call
    /// [`MediaEngine::stop_recording`] first to wait for it and get its summary).
    pub fn close_room(&self, room: RoomId) {
        let recording = {
            let Some(mut guard) = self.inner.room_table(room) else {
                return;
            };
            let table = &mut *guard;
            let Some(mut state) = table.rooms.remove(&room.0) else {
                return;
            };
            for (index, _) in state.drain_members() {
                if let Some(o) = table.sessions.at(index) {
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
        let mut table = self.inner.room_table(room).ok_or(Error::NoSuchRoom)?;
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
        let tap = self
            .inner
            .room_table(room)?
            .rooms
            .get_mut(&room.0)?
            .recording
            .take()?;
        Some(tap.finish())
    }

    /// True while the room is being recorded.
    pub fn is_recording(&self, room: RoomId) -> bool {
        self.inner
            .room_table(room)
            .is_some_and(|t| t.rooms.get(&room.0).is_some_and(|r| r.recording.is_some()))
    }

    fn check_recordable(&self, room: RoomId) -> Result<(), Error> {
        let table = self.inner.room_table(room).ok_or(Error::NoSuchRoom)?;
        match table.rooms.get(&room.0) {
            None => Err(Error::NoSuchRoom),
            Some(r) if r.recording.is_some() => Err(Error::AlreadyRecording),
            Some(_) => Ok(()),
        }
    }

    /// Rooms currently open.
    pub fn room_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(&s.table).rooms.len())
            .sum()
    }

    /// Members of a room, or `None` if there is no such room.
    pub fn room_size(&self, room: RoomId) -> Option<usize> {
        self.inner
            .room_table(room)?
            .rooms
            .get(&room.0)
            .map(RoomMix::len)
    }

    /// Plays `prompt` once to every member of the room (mixed over the conversation),
    /// e.g. [`crate::Tone::join_beep`]. Returns false if there is no such room.
    pub fn play_to_room(&self, room: RoomId, prompt: Arc<Prompt>) -> bool {
        match self
            .inner
            .room_table(room)
            .as_mut()
            .and_then(|t| t.rooms.get_mut(&room.0))
        {
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
    /// the room and, unless muted, is heard in it. The session moves to the room's
    /// shard.
    pub fn join_room(&self, room: RoomId) -> Result<(), Error> {
        let inner = &self.inner;
        let to = room.shard();
        let target = inner.shards.get(to).ok_or(Error::NoSuchRoom)?;
        loop {
            let home = self.link.home.load(Ordering::Acquire);
            let from = shard::shard_of(home);
            let index = shard::index_of(home);
            if from == to {
                let mut table = lock(&target.table);
                if table.sessions.get(index, self.id).is_none() {
                    if self.link.home.load(Ordering::Acquire) != home {
                        continue;
                    }
                    return Err(Error::NoSuchRoom);
                }
                return self.join_here(&mut table, index, room);
            }
            // Both tables, in shard order (every holder of two locks takes them so).
            let source = inner.shards.get(from).ok_or(Error::NoSuchRoom)?;
            let (mut a, mut b) = if from < to {
                let a = lock(&source.table);
                (a, lock(&target.table))
            } else {
                let b = lock(&target.table);
                (lock(&source.table), b)
            };
            let (old, new) = (&mut *a, &mut *b);
            if self.link.home.load(Ordering::Acquire) != home {
                continue;
            }
            if !new.rooms.contains_key(&room.0) {
                return Err(Error::NoSuchRoom);
            }
            if new.rooms.get(&room.0).is_some_and(RoomMix::is_full) {
                return Err(Error::RoomFull);
            }
            let Some(mut outbound) = old.sessions.remove(index, self.id) else {
                return Err(Error::NoSuchRoom);
            };
            if let Some((old_room, slot)) = outbound.room.take() {
                old.remove_member(old_room, index, slot);
            }
            let moved = new.sessions.insert(outbound);
            self.link
                .home
                .store(shard::home(to, moved), Ordering::Release);
            let joined = self.join_here(new, moved, room);
            drop((a, b));
            inner.move_reader(&self.link, self.id, to);
            return joined;
        }
    }

    /// Joins `room` of the table the session is in, at slab `index`.
    fn join_here(&self, table: &mut Table, index: u32, room: RoomId) -> Result<(), Error> {
        let Table { sessions, rooms } = table;
        let outbound = sessions.get_mut(index, self.id).ok_or(Error::NoSuchRoom)?;
        if outbound.room.is_some_and(|(r, _)| r == room.0) {
            return Ok(());
        }
        let state = rooms.get_mut(&room.0).ok_or(Error::NoSuchRoom)?;
        let slot = state
            .join(u64::from(index), outbound.muted)
            .ok_or(Error::RoomFull)?;
        let previous = outbound.room.replace((room.0, slot));
        outbound.enter_room();
        if let Some((old_room, old_slot)) = previous {
            table.remove_member(old_room, index, old_slot);
        }
        Ok(())
    }

    /// Leaves the room, if in one.
    pub fn leave_room(&self) {
        let id = self.id;
        self.inner.with_session(&self.link, id, |table, index| {
            let Some(outbound) = table.sessions.get_mut(index, id) else {
                return;
            };
            let previous = outbound.room;
            outbound.leave_room();
            if let Some((room, slot)) = previous {
                table.remove_member(room, index, slot);
            }
        });
    }

    /// A handle that tells, without locking, whether this participant is talking in
    /// its room right now (it outlives the session: then it says no).
    pub fn activity(&self) -> Activity {
        Activity(self.link.clone())
    }

    /// The room this session is in.
    pub fn room(&self) -> Option<RoomId> {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.room)
            .flatten()
            .map(|(r, _)| RoomId(r))
    }

    /// Mutes or unmutes: a muted participant still hears the room but is not mixed.
    /// Kept across rooms.
    pub fn set_muted(&self, muted: bool) {
        let id = self.id;
        self.inner.with_session(&self.link, id, |table, index| {
            let Table { sessions, rooms } = table;
            let Some(outbound) = sessions.get_mut(index, id) else {
                return;
            };
            outbound.muted = muted;
            if let Some((room, slot)) = outbound.room
                && let Some(state) = rooms.get_mut(&room)
            {
                state.set_muted(slot, muted);
            }
        });
    }

    /// True when muted.
    pub fn is_muted(&self) -> bool {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.muted)
            .unwrap_or(false)
    }
}

impl Outbound {
    fn enter_room(&mut self) {
        // A fresh buffer: whatever arrived before belongs to no conversation. Joining
        // is rare, so the allocation is not on the per-packet path.
        let steady = self.link.steady.load(Ordering::Relaxed);
        self.jitter = Jitter::tuned(self.media.codec(), steady);
        self.media.enter_room();
        self.link.in_room.store(true, Ordering::Release);
    }

    fn leave_room(&mut self) {
        self.link.in_room.store(false, Ordering::Release);
        self.show_talking(false);
        self.room = None;
    }
}

/// Whether a participant is talking, as the clock last saw it ([`RtpSession::activity`]).
#[derive(Debug, Clone)]
pub struct Activity(Arc<super::endpoint::Link>);

impl Activity {
    /// True when the participant's level was above the voice threshold on the last tick.
    pub fn is_talking(&self) -> bool {
        self.0.published.talking.load(Ordering::Relaxed)
    }
}
