//! The media pipeline of a conference room as a pure type: jitter buffer → decode →
//! in-band DTMF squelch → level and top-3 talkers → 16 kHz N-1 mix → decimate →
//! encode once per codec → RTP packets. [`RoomPipeline`] takes received datagrams
//! through [`RoomPipeline::handle_datagram`] and gives each tick's datagrams through
//! [`RoomPipeline::tick`]; time is an argument, never read from the OS; there are no
//! sockets, locks or threads, and nothing is allocated per packet or per tick once
//! the output has grown to the member count.
//!
//! The engine (feature `tokio`) runs the same code — [`RoomMix`] and [`MemberMedia`] —
//! over each shard's session table: its receive threads hand each packet's payload to
//! the shard, whose clock fills each member's [`Jitter`] and mixes; it reaches the
//! members through [`Members`] and sends through [`Sink`]. What it adds is threads, sockets, locks,
//! latching, RTCP and the 20 ms timing. The benches drive [`RoomPipeline`], so their
//! figures are those of the code that runs.

mod member;
mod room;
mod shared;
#[cfg(test)]
mod tests;

use std::time::Instant;

pub use member::{
    COMPACT_PAYLOAD, InBandListener, Jitter, MAX_PAYLOAD, MemberMedia, PACKET_LEN, Payload, Popped,
    Scratch, SentCounts, room_payload,
};
pub use room::{Members, RoomMix, Sink};

use crate::srtp::{SrtpContext, SrtpKeys};
use crate::{AudioCodec, Error, MixerSlot, RtpSender, RtpView};

/// A member of a [`RoomPipeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId(u64);

impl MemberId {
    /// The member's index in its pipeline (slots are reused after a member leaves).
    pub fn index(self) -> u64 {
        self.0
    }
}

/// Why [`RoomPipeline::handle_datagram`] dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No such member.
    NoSuchMember,
    /// SRTP: not authenticated, replayed or truncated.
    Unauthenticated,
    /// Not an RTP packet.
    Malformed,
}

/// One room's media: its members (jitter buffer, codec state, squelch, packetiser)
/// and its mixer. See the [module](self) documentation.
#[derive(Debug)]
pub struct RoomPipeline {
    room: RoomMix,
    roster: Roster,
    scratch: Scratch,
}

/// The pipeline's own members, indexed by [`MemberId`].
#[derive(Debug, Default)]
struct Roster(Vec<Option<Member>>);

#[derive(Debug)]
struct Member {
    media: MemberMedia,
    jitter: Jitter,
    srtp_in: Option<SrtpContext>,
    slot: MixerSlot,
    id: MemberId,
    talking: bool,
}

impl Members for Roster {
    type Route = MemberId;

    fn pop(&mut self, key: u64, now: Instant) -> Option<(&mut MemberMedia, Popped)> {
        let member = self.get_mut(key)?;
        let popped = member.jitter.pop(now);
        Some((&mut member.media, popped))
    }

    fn heard(&mut self, key: u64, talking: bool) -> Option<(&mut MemberMedia, &MemberId)> {
        let member = self.get_mut(key)?;
        member.talking = talking;
        Some((&mut member.media, &member.id))
    }
}

impl Roster {
    fn get_mut(&mut self, key: u64) -> Option<&mut Member> {
        self.0.get_mut(usize::try_from(key).ok()?)?.as_mut()
    }

    fn get(&self, id: MemberId) -> Option<&Member> {
        self.0.get(usize::try_from(id.0).ok()?)?.as_ref()
    }
}

impl RoomPipeline {
    /// An empty room for up to `capacity` members.
    pub fn new(capacity: usize) -> Self {
        Self {
            room: RoomMix::new(capacity),
            roster: Roster(Vec::with_capacity(capacity)),
            scratch: Scratch::default(),
        }
    }

    /// Adds a member sending and receiving `codec`; with `telephone_event` (RFC 4733
    /// negotiated) its audio is mixed as it comes, without, through the in-band DTMF
    /// squelch. With `keys`, its packets are SRTP (ours protected with the local key,
    /// its own authenticated with the remote one). Fails when the room is full or the
    /// codec cannot be set up.
    pub fn add_member(
        &mut self,
        codec: impl Into<AudioCodec>,
        telephone_event: bool,
        keys: Option<&SrtpKeys>,
    ) -> Result<MemberId, Error> {
        let codec = codec.into();
        let sender = RtpSender::new(codec.payload_type())?;
        let srtp_out = keys.map(|k| SrtpContext::new(k.suite, &k.local_key_salt));
        let media = MemberMedia::new(codec, telephone_event, sender, srtp_out)?;
        let index = self
            .roster
            .0
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.roster.0.len());
        let id = MemberId(index as u64);
        let slot = self.room.join(id.0, false).ok_or(Error::RoomFull)?;
        let member = Member {
            media,
            jitter: Jitter::new(codec),
            srtp_in: keys.map(|k| SrtpContext::new(k.suite, &k.remote_key_salt)),
            slot,
            id,
            talking: false,
        };
        match self.roster.0.get_mut(index) {
            Some(entry) => *entry = Some(member),
            None => self.roster.0.push(Some(member)),
        }
        Ok(id)
    }

    /// Removes a member; false if there was none.
    pub fn remove_member(&mut self, id: MemberId) -> bool {
        let Some(member) = usize::try_from(id.0)
            .ok()
            .and_then(|i| self.roster.0.get_mut(i))
            .and_then(Option::take)
        else {
            return false;
        };
        self.room.leave(id.0, member.slot);
        true
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.room.len()
    }

    /// True when the room is empty.
    pub fn is_empty(&self) -> bool {
        self.room.is_empty()
    }

    /// Mutes or unmutes a member (it still hears the room).
    pub fn set_muted(&mut self, id: MemberId, muted: bool) {
        if let Some(member) = self.roster.get_mut(id.0) {
            self.room.set_muted(member.slot, muted);
        }
    }

    /// Plays `prompt` once to every member, over the conversation.
    pub fn play_to_room(&mut self, prompt: std::sync::Arc<crate::Prompt>) {
        self.room.play(prompt);
    }

    /// Sets what hears the member's decoded audio (in-band DTMF detection).
    pub fn set_listener(&mut self, id: MemberId, listener: Option<Box<dyn InBandListener>>) {
        if let Some(member) = self.roster.get_mut(id.0) {
            member.media.set_listener(listener);
        }
    }

    /// Whether the member was talking on the last tick.
    pub fn is_talking(&self, id: MemberId) -> bool {
        self.roster.get(id).is_some_and(|m| m.talking)
    }

    /// A member's media state (codec, SSRC, frames concealed).
    pub fn media(&self, id: MemberId) -> Option<&MemberMedia> {
        self.roster.get(id).map(|m| &m.media)
    }

    /// A member's jitter buffer (depth, counters).
    pub fn jitter(&self, id: MemberId) -> Option<&Jitter> {
        self.roster.get(id).map(|m| &m.jitter)
    }

    /// One datagram received from member `id` at `now`: unprotected (SRTP, in place),
    /// parsed, and its audio or comfort noise put in the member's jitter buffer; other
    /// payload types (RFC 4733 events) are the caller's. Returns the packet's view.
    pub fn handle_datagram<'a>(
        &mut self,
        id: MemberId,
        now: Instant,
        datagram: &'a mut [u8],
    ) -> Result<RtpView<'a>, Dropped> {
        let member = self.roster.get_mut(id.0).ok_or(Dropped::NoSuchMember)?;
        let len = match member.srtp_in.as_mut() {
            Some(srtp) => srtp
                .unprotect_rtp(datagram)
                .map_err(|_| Dropped::Unauthenticated)?,
            None => datagram.len(),
        };
        let datagram: &'a [u8] = datagram;
        let plain = datagram.get(..len).ok_or(Dropped::Malformed)?;
        let view = RtpView::parse(plain).map_err(|_| Dropped::Malformed)?;
        if let Some(comfort_noise) =
            room_payload(view.payload_type, member.media.codec().payload_type())
        {
            member.jitter.push(
                view.sequence,
                view.timestamp,
                view.payload(),
                comfort_noise,
                now,
            );
        }
        Ok(view)
    }

    /// One 20 ms tick at `now`: each member's frame from its jitter buffer, the mix,
    /// and each member's packet appended to `out`.
    pub fn tick(&mut self, now: Instant, out: &mut Datagrams) {
        self.room
            .tick(now, &mut self.roster, &mut self.scratch, out);
    }
}

/// The datagrams of a tick, for their members. Keeps its capacity when cleared: no
/// allocation once it has grown to the member count.
#[derive(Debug, Default)]
pub struct Datagrams {
    packets: Vec<Datagram>,
}

/// One datagram for one member.
#[derive(Debug, Clone)]
pub struct Datagram {
    member: MemberId,
    len: usize,
    bytes: [u8; PACKET_LEN],
}

impl Datagram {
    /// Whom it is for.
    pub fn member(&self) -> MemberId {
        self.member
    }

    /// The datagram (RTP, SRTP-protected for a keyed member).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Datagrams {
    /// Empties it, keeping its capacity.
    pub fn clear(&mut self) {
        self.packets.clear();
    }

    /// The datagrams, in the order built.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Datagram> {
        self.packets.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

impl Sink<MemberId> for Datagrams {
    fn push(&mut self, route: &MemberId, packet: &[u8; PACKET_LEN], len: usize) {
        self.packets.push(Datagram {
            member: *route,
            len,
            bytes: *packet,
        });
    }
}
