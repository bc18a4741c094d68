//! Conference rooms inside the engine: each tick the clock pulls one frame per member
//! from its jitter buffer, decodes it into the room's [`Mixer`], mixes, and sends each
//! member what it hears. Non-talkers all hear the shared mix, which is encoded once
//! per codec per tick and the bytes reused for every one of them.
//!
//! Assumes 20 ms packets (160 G.711 bytes), as our SDP answer asks with `a=ptime:20`;
//! a longer packet is cut to one frame.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::jitter::{Concealer, JitterBuffer, JitterConfig, Playout};
use crate::mixer::{DEFAULT_MAX_TALKERS, Frame, Heard, Mixer, MixerSlot, SILENCE};
use crate::{Codec, Error, FRAME_SAMPLES, Playback, Prompt};

use super::{MediaEngine, Outbound, RtpSession, Scratch, Table, add_saturating, lock};

/// A room in a [`MediaEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(u64);

#[derive(Debug)]
pub(super) struct RoomState {
    mixer: Mixer,
    /// (session id, its slot); capacity reserved at creation.
    members: Vec<(u64, MixerSlot)>,
    /// A prompt every member hears (join and leave beeps).
    playback: Option<Playback>,
}

impl MediaEngine {
    /// Creates an empty room for up to `capacity` members.
    pub fn create_room(&self, capacity: usize) -> RoomId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let room = RoomState {
            mixer: Mixer::new(capacity, DEFAULT_MAX_TALKERS),
            members: Vec::with_capacity(capacity),
            playback: None,
        };
        lock(&self.inner.table).rooms.insert(id, room);
        RoomId(id)
    }

    /// Removes a room; its members go back to hearing only their own prompts.
    pub fn close_room(&self, room: RoomId) {
        let mut table = lock(&self.inner.table);
        let Some(state) = table.rooms.remove(&room.0) else {
            return;
        };
        for (session, _) in state.members {
            if let Some(o) = table.sessions.get_mut(&session) {
                o.leave_room();
            }
        }
    }

    /// Rooms currently open.
    pub fn room_count(&self) -> usize {
        lock(&self.inner.table).rooms.len()
    }

    /// Members of a room, or `None` if there is no such room.
    pub fn room_size(&self, room: RoomId) -> Option<usize> {
        lock(&self.inner.table)
            .rooms
            .get(&room.0)
            .map(|r| r.members.len())
    }

    /// Plays `prompt` once to every member of the room (mixed over the conversation),
    /// e.g. [`crate::Tone::join_beep`]. Returns false if there is no such room.
    pub fn play_to_room(&self, room: RoomId, prompt: Arc<Prompt>) -> bool {
        match lock(&self.inner.table).rooms.get_mut(&room.0) {
            Some(r) => {
                r.playback = Some(Playback::new(prompt, false));
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
        let slot = state.mixer.join().ok_or(Error::RoomFull)?;
        state.members.push((self.id, slot));
        state.mixer.set_muted(slot, outbound.muted);
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
            state.mixer.set_muted(slot, muted);
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
            state.mixer.leave(slot);
            state.members.retain(|&(s, _)| s != session);
        }
    }
}

impl RoomState {
    /// One tick of one room.
    pub(super) fn tick(
        &mut self,
        sessions: &mut std::collections::HashMap<u64, Outbound>,
        scratch: &mut Scratch,
        now: std::time::Instant,
    ) {
        for &(session, slot) in &self.members {
            if let Some(o) = sessions.get_mut(&session) {
                o.feed(&mut self.mixer, slot, now);
            }
        }
        self.mixer.mix();

        // The room prompt, once for everybody.
        let mut room_prompt = None;
        if let Some(playback) = self.playback.as_mut() {
            let mut frame = SILENCE;
            playback.fill(&mut frame);
            room_prompt = Some(frame);
            if playback.finished() {
                self.playback = None;
            }
        }

        let mut shared = SharedCache::default();
        for &(session, slot) in &self.members {
            let (Some(o), Some(heard)) = (sessions.get_mut(&session), self.mixer.output(slot))
            else {
                continue;
            };
            o.link
                .talking
                .store(self.mixer.is_talking(slot), Ordering::Relaxed);
            o.send_heard(heard, room_prompt.as_ref(), &mut shared, scratch);
        }
    }
}

/// The shared mix of one tick, encoded at most once per codec.
#[derive(Debug, Default)]
struct SharedCache {
    pcmu: Option<[u8; FRAME_SAMPLES]>,
    pcma: Option<[u8; FRAME_SAMPLES]>,
}

impl SharedCache {
    fn encoded(
        &mut self,
        codec: Codec,
        shared: &Frame,
        extra: Option<&Frame>,
    ) -> &[u8; FRAME_SAMPLES] {
        let entry = match codec {
            Codec::Pcmu => &mut self.pcmu,
            Codec::Pcma => &mut self.pcma,
        };
        entry.get_or_insert_with(|| {
            let mut pcm = *shared;
            if let Some(extra) = extra {
                add_saturating(&mut pcm, extra);
            }
            let mut bytes = [0u8; FRAME_SAMPLES];
            codec.encode_frame(&pcm, &mut bytes);
            bytes
        })
    }
}

impl Outbound {
    fn enter_room(&mut self) {
        // A fresh buffer: whatever arrived before belongs to no conversation. Joining
        // is rare, so the allocation is not on the per-packet path.
        *lock(&self.link.jitter) = JitterBuffer::new(JitterConfig::default());
        self.concealer = Concealer::default();
        self.link.in_room.store(true, Ordering::Release);
    }

    fn leave_room(&mut self) {
        self.link.in_room.store(false, Ordering::Release);
        self.link.talking.store(false, Ordering::Relaxed);
        self.room = None;
    }

    /// Moves this tick's frame from the jitter buffer into the mixer.
    fn feed(&mut self, mixer: &mut Mixer, slot: MixerSlot, now: std::time::Instant) {
        let playout = lock(&self.link.jitter).pop(now);
        match playout {
            Playout::Frame { item, .. } => {
                if let Some(input) = mixer.input_mut(slot) {
                    let n = self.codec.decode_frame(item.as_slice(), input);
                    if let Some(rest) = input.get_mut(n..) {
                        rest.fill(0);
                    }
                    self.concealer.good(input);
                }
            }
            Playout::Conceal => {
                if let Some(input) = mixer.input_mut(slot) {
                    self.concealer.conceal(input);
                }
            }
            // Nothing to play yet: not mixed this tick.
            Playout::Buffering => {}
        }
    }

    /// Sends what this member hears, plus the room prompt and its own prompt.
    fn send_heard(
        &mut self,
        heard: Heard<'_>,
        room_prompt: Option<&Frame>,
        shared: &mut SharedCache,
        scratch: &mut Scratch,
    ) {
        match heard {
            Heard::Shared(frame) if self.playback.is_none() => {
                let bytes = shared.encoded(self.codec, frame, room_prompt);
                scratch.payload_mut().copy_from_slice(bytes);
                self.send(scratch);
            }
            _ => {
                scratch.pcm = *heard.frame();
                if let Some(extra) = room_prompt {
                    add_saturating(&mut scratch.pcm, extra);
                }
                self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
                let pcm = scratch.pcm;
                self.encode_and_send(&pcm, scratch);
            }
        }
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
