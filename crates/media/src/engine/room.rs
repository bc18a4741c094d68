//! Conference rooms inside the engine: each tick the clock pulls one frame per member
//! from its jitter buffer, decodes it into the room's [`Mixer`], mixes at 16 kHz, and
//! sends each member what it hears in its codec.
//!
//! Cost per member and tick, G.711 (the thousands): decode 160 bytes into the mixer's
//! narrowband input, where the mixer measures its level and upsamples it only if it
//! is one of the few talkers mixed. Non-talkers all hear the shared mix, decimated to
//! 8 kHz once per room and encoded once per G.711 codec, the bytes reused for every
//! one of them. Talkers' own mixes are decimated each with the member's converter.
//! G.722 and Opus members decode into the 16 kHz input and encode what they hear
//! with their own codec state (stateful encoders share nothing).
//!
//! Comfort noise (RFC 3389): a CN packet (PT 13) takes its place in the member's
//! jitter buffer like audio; when played it sets the member's noise generator, and
//! until the next audio packet the member is heard as that noise — not concealed,
//! not counted lost, not silent.
//!
//! In-band DTMF: a member without RFC 4733 telephone-events keys its digits into the
//! audio; its decoded frames pass through its [`DtmfSquelch`] (one tick of delay, key
//! presses silenced) so the room never hears them — a G.711 member's as they are
//! (about 1,300 multiply-adds per tick), a G.722 or Opus member's decided on the
//! frame decimated to 8 kHz, the 16 kHz frame delayed alongside. Members with
//! telephone-events skip it.
//!
//! Recording: [`MediaEngine::start_recording`] puts a [`RecordingTap`] on the room;
//! each tick the full mix (all talkers and the room prompt) goes to it at 16 kHz, its
//! thread writing the WAV.
//!
//! Assumes 20 ms packets (160 G.711 or G.722 bytes, one Opus frame), as our SDP
//! answer asks with `a=ptime:20`; a longer packet is cut to one frame.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::comfort_noise::ComfortNoise;
use crate::dtmf_squelch::DtmfSquelch;
use crate::halfband::{Downsampler2, Upsampler2};
use crate::jitter::{Concealer, Playout};
use crate::mixer::{
    DEFAULT_MAX_TALKERS, Frame, Heard, MIX_SILENCE, MixFrame, Mixer, MixerSlot, SILENCE,
};
use crate::recording::{RecorderConfig, RecordingSummary, RecordingTap};
use crate::resampler::SampleRate;
use crate::{AudioCodec, Codec, Error, FRAME_SAMPLES, Playback, Prompt};

use super::endpoint::{Jitter, Payload, Popped};
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
    /// The room prompt's 8 → 16 kHz converter.
    prompt_up: Upsampler2,
    /// The shared mix's 16 → 8 kHz converter, for the G.711 members.
    shared_down: Downsampler2,
    /// The WAV the full mix goes to, while recording.
    recording: Option<RecordingTap>,
}

impl MediaEngine {
    /// Creates an empty room for up to `capacity` members.
    pub fn create_room(&self, capacity: usize) -> RoomId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let room = RoomState {
            mixer: Mixer::new(capacity, DEFAULT_MAX_TALKERS),
            members: Vec::with_capacity(capacity),
            playback: None,
            prompt_up: Upsampler2::default(),
            shared_down: Downsampler2::default(),
            recording: None,
        };
        lock(&self.inner.table).rooms.insert(id, room);
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
            for (session, _) in state.members.drain(..) {
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

        // The room prompt, once for everybody, at the mix rate.
        let mut room_prompt = None;
        if let Some(playback) = self.playback.as_mut() {
            let mut frame = SILENCE;
            playback.fill(&mut frame);
            let mut wide = MIX_SILENCE;
            self.prompt_up.process(&frame, &mut wide);
            room_prompt = Some(wide);
            if playback.finished() {
                self.playback = None;
                self.prompt_up.reset();
            }
        }

        // What every non-talker hears: all talkers and the room prompt.
        let mut shared = *self.mixer.shared();
        if let Some(extra) = room_prompt.as_ref() {
            add_saturating(&mut shared, extra);
        }
        if let Some(tap) = self.recording.as_mut() {
            tap.push(&shared);
        }

        let mut cache = SharedCache::new(&shared, &mut self.shared_down);
        for &(session, slot) in &self.members {
            let (Some(o), Some(heard)) = (sessions.get_mut(&session), self.mixer.output(slot))
            else {
                continue;
            };
            o.link
                .talking
                .store(self.mixer.is_talking(slot), Ordering::Relaxed);
            o.send_heard(heard, room_prompt.as_ref(), &mut cache, scratch);
        }
        cache.finish();
    }
}

/// The shared mix of one tick: decimated to 8 kHz at most once and encoded at most
/// once per G.711 codec.
#[derive(Debug)]
struct SharedCache<'a> {
    wide: &'a MixFrame,
    down: &'a mut Downsampler2,
    narrow: Option<Frame>,
    pcmu: Option<[u8; FRAME_SAMPLES]>,
    pcma: Option<[u8; FRAME_SAMPLES]>,
}

impl<'a> SharedCache<'a> {
    fn new(wide: &'a MixFrame, down: &'a mut Downsampler2) -> Self {
        Self {
            wide,
            down,
            narrow: None,
            pcmu: None,
            pcma: None,
        }
    }

    /// The shared mix at 8 kHz.
    fn narrow(&mut self) -> &Frame {
        let Self {
            wide, down, narrow, ..
        } = self;
        narrow.get_or_insert_with(|| decimate(down, wide))
    }

    /// The shared mix encoded in `codec`.
    fn encoded(&mut self, codec: Codec) -> &[u8; FRAME_SAMPLES] {
        let Self {
            wide,
            down,
            narrow,
            pcmu,
            pcma,
        } = self;
        let entry = match codec {
            Codec::Pcmu => pcmu,
            Codec::Pcma => pcma,
        };
        entry.get_or_insert_with(|| {
            let pcm = narrow.get_or_insert_with(|| decimate(down, wide));
            let mut bytes = [0u8; FRAME_SAMPLES];
            codec.encode_frame(pcm, &mut bytes);
            bytes
        })
    }

    /// Keeps the converter's history whole when nobody needed the 8 kHz mix.
    fn finish(self) {
        if self.narrow.is_none() {
            self.down.push(self.wide);
        }
    }
}

impl Outbound {
    fn enter_room(&mut self) {
        // A fresh buffer: whatever arrived before belongs to no conversation. Joining
        // is rare, so the allocation is not on the per-packet path.
        *lock(&self.link.jitter) = Jitter::new(self.codec);
        self.concealer = Concealer::default();
        self.noise_active = false;
        if let Some(squelch) = self.squelch.as_mut() {
            squelch.reset();
        }
        if let Some(squelch) = self.wide_squelch.as_mut() {
            squelch.reset();
        }
        self.link.in_room.store(true, Ordering::Release);
    }

    fn leave_room(&mut self) {
        self.link.in_room.store(false, Ordering::Release);
        self.link.talking.store(false, Ordering::Relaxed);
        self.room = None;
    }

    /// Moves this tick's frame from the jitter buffer into the mixer: G.711 into the
    /// narrowband input, G.722 and Opus into the 16 kHz one.
    fn feed(&mut self, mixer: &mut Mixer, slot: MixerSlot, now: std::time::Instant) {
        let popped = lock(&self.link.jitter).pop(now);
        match popped {
            Popped::Compact(playout) => self.play_out(playout, mixer, slot),
            Popped::Large(playout) => self.play_out(playout, mixer, slot),
        }
    }

    /// Feeds the mixer what the jitter buffer gave for this tick.
    fn play_out<const N: usize>(
        &mut self,
        playout: Playout<Payload<N>>,
        mixer: &mut Mixer,
        slot: MixerSlot,
    ) {
        match playout {
            Playout::Frame { item, .. } if item.comfort_noise => {
                // RFC 3389 §4: a SID frame; an empty or malformed one keeps the level.
                if let Some(cn) = ComfortNoise::parse(item.as_slice()) {
                    self.noise.set(&cn);
                }
                self.noise_active = true;
                self.fill_noise(mixer, slot);
            }
            Playout::Frame { item, .. } => {
                self.noise_active = false;
                match (self.codec, self.state.as_mut()) {
                    (AudioCodec::G711(codec), _) => {
                        if let Some(input) = mixer.narrow_input_mut(slot) {
                            let n = codec.decode_frame(item.as_slice(), input);
                            if let Some(rest) = input.get_mut(n..) {
                                rest.fill(0);
                            }
                            self.concealer.good(input);
                            squelch(self.squelch.as_deref_mut(), input);
                        }
                    }
                    (_, Some(state)) => {
                        if let Some(input) = mixer.input_mut(slot) {
                            let n = state.decode_frame(item.as_slice(), input);
                            if let Some(rest) = input.get_mut(n..) {
                                rest.fill(0);
                            }
                            self.concealer.good(input);
                            wide_squelch(self.wide_squelch.as_deref_mut(), input);
                        }
                    }
                    (_, None) => {}
                }
            }
            Playout::Conceal | Playout::Buffering if self.noise_active => {
                self.fill_noise(mixer, slot);
            }
            Playout::Conceal => match (self.codec, self.state.as_mut()) {
                (AudioCodec::G711(_), _) => {
                    if let Some(input) = mixer.narrow_input_mut(slot) {
                        self.concealer.conceal(input);
                        squelch(self.squelch.as_deref_mut(), input);
                    }
                }
                (_, state) => {
                    if let Some(input) = mixer.input_mut(slot) {
                        // Opus conceals from its own state; G.722 repeats and fades.
                        if state.is_none_or(|s| s.conceal(input) == 0) {
                            self.concealer.conceal(input);
                        }
                        wide_squelch(self.wide_squelch.as_deref_mut(), input);
                    }
                }
            },
            // Nothing to play yet: not mixed this tick.
            Playout::Buffering => {}
        }
    }

    /// This tick's input is the far end's comfort noise.
    fn fill_noise(&mut self, mixer: &mut Mixer, slot: MixerSlot) {
        match self.codec {
            AudioCodec::G711(_) => {
                if let Some(input) = mixer.narrow_input_mut(slot) {
                    self.noise.fill(input);
                    squelch(self.squelch.as_deref_mut(), input);
                }
            }
            // The CN model is an 8 kHz one (RFC 3389 §1); its level is what matters.
            _ => {
                if let Some(input) = mixer.input_mut(slot) {
                    self.noise.fill(input);
                    wide_squelch(self.wide_squelch.as_deref_mut(), input);
                }
            }
        }
    }

    /// Sends what this member hears, plus the room prompt and its own prompt.
    fn send_heard(
        &mut self,
        heard: Heard<'_>,
        room_prompt: Option<&MixFrame>,
        shared: &mut SharedCache<'_>,
        scratch: &mut Scratch,
    ) {
        match (self.codec, heard) {
            (AudioCodec::G711(codec), Heard::Shared(_)) if self.playback.is_none() => {
                let wide = shared.wide;
                let bytes = shared.encoded(codec);
                self.send_g711_encoded(bytes, wide, scratch);
            }
            (AudioCodec::G711(_), Heard::Shared(_)) => {
                scratch.pcm = *shared.narrow();
                self.down.push(shared.wide);
                self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
                let pcm = scratch.pcm;
                self.encode_and_send(&pcm, scratch);
            }
            (AudioCodec::G711(_), Heard::Own(own)) => {
                scratch.wide = *own;
                if let Some(extra) = room_prompt {
                    add_saturating(&mut scratch.wide, extra);
                }
                if self.playback.is_some() {
                    let wide = scratch.wide;
                    self.down.process(&wide, &mut scratch.pcm);
                    self.mix_prompt(&mut scratch.pcm, &mut scratch.prompt);
                    let pcm = scratch.pcm;
                    self.encode_and_send(&pcm, scratch);
                } else {
                    let wide = scratch.wide;
                    self.encode_wide_and_send(&wide, scratch);
                }
            }
            (_, heard) => {
                scratch.wide = match heard {
                    Heard::Shared(_) => *shared.wide,
                    Heard::Own(own) => {
                        let mut wide = *own;
                        if let Some(extra) = room_prompt {
                            add_saturating(&mut wide, extra);
                        }
                        wide
                    }
                };
                if self.playback.is_some() {
                    self.mix_prompt_wide(scratch);
                }
                let wide = scratch.wide;
                self.encode_wide_and_send(&wide, scratch);
            }
        }
    }
}

/// `wide` at 8 kHz.
fn decimate(down: &mut Downsampler2, wide: &MixFrame) -> Frame {
    let mut pcm = SILENCE;
    down.process(wide, &mut pcm);
    pcm
}

/// In-band DTMF (G.711 without telephone-events): the frame mixed is the squelch's
/// output, one tick late and silenced around key presses.
fn squelch(squelch: Option<&mut DtmfSquelch>, input: &mut Frame) {
    if let Some(squelch) = squelch {
        squelch.process(input);
    }
}

/// In-band DTMF of a wideband member (G.722, Opus without telephone-events): the
/// squelch decides on the frame decimated to 8 kHz, and the 16 kHz frame goes
/// through a one-tick delay line of its own, silenced when the squelch silences.
#[derive(Debug, Clone)]
pub(super) struct WideSquelch {
    dtmf: DtmfSquelch,
    down: Downsampler2,
    held: MixFrame,
}

impl Default for WideSquelch {
    fn default() -> Self {
        Self {
            dtmf: DtmfSquelch::new(),
            down: Downsampler2::default(),
            held: MIX_SILENCE,
        }
    }
}

impl WideSquelch {
    /// Replaces `input` with the previous tick's frame, silenced around key presses.
    fn process(&mut self, input: &mut MixFrame) {
        let mut narrow = SILENCE;
        self.down.process(input, &mut narrow);
        let silenced = self.dtmf.process(&mut narrow);
        std::mem::swap(&mut self.held, input);
        if silenced {
            input.fill(0);
        }
    }

    fn reset(&mut self) {
        self.dtmf.reset();
        self.down.reset();
        self.held = MIX_SILENCE;
    }
}

fn wide_squelch(squelch: Option<&mut WideSquelch>, input: &mut MixFrame) {
    if let Some(squelch) = squelch {
        squelch.process(input);
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
