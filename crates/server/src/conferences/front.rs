//! A meeting as one node of a cluster sees it. On a node that is not the meeting's home,
//! a front holds the node's callers of it: it mixes them in a room of its own, joins
//! the home through one leg (whose RTP is one more member of that room, so the home
//! hears this node's mix-minus and the node's callers hear the home's), and passes the
//! home's word to each caller. On the home, [`serve_leg`] does the other half: each
//! member a leg brings joins the meeting here as a call would, and what the meeting
//! tells it goes back down the leg.
//!
//! A front whose leg dies (the home crashed: the leg fell silent) claims the home
//! again, naming the dead one, and re-joins its callers wherever the home now is —
//! itself included, when it wins. Its callers keep hearing each other meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dialbridge_conference::room::MemberId;
use dialbridge_media::RoomId;
use tokio::sync::{mpsc, oneshot};

use crate::dial_out::{DialOutId, DialOutRefusal};
use crate::meeting_view::{ConferenceView, LiveError, RecordingView};

use super::{Hub, Join, MemberInfo, Membership, ToMeeting, ToMember, lock};
use crate::cluster::link::LegSender;
use crate::cluster::wire::{self, Answer, Ask, Down, Up};
use crate::cluster::{Cluster, IncomingLeg, Leg, LegEvent, home_name};
use dialbridge_conference::ivr::ConferenceKey;

/// How long a front waits between attempts to find a home it can reach.
const RETRY: Duration = Duration::from_millis(250);
/// Attempts before a front gives up on Redis and holds the meeting itself.
const ATTEMPTS: usize = 8;

/// Joins through this node's front of `conference`, starting one if there is none.
pub(super) fn join(
    hub: &Arc<Hub>,
    conference: ConferenceKey,
    join: Join,
) -> mpsc::UnboundedSender<ToMeeting> {
    let wait_for_leader = join.wait_for_leader;
    super::send_or_start(&hub.fronts, &conference, join.message(), |rx, _| {
        start(hub, conference.clone(), wait_for_leader, rx);
    })
}

fn start(
    hub: &Arc<Hub>,
    conference: ConferenceKey,
    wait_for_leader: bool,
    rx: mpsc::UnboundedReceiver<ToMeeting>,
) {
    let front = Front {
        hub: hub.clone(),
        key: conference,
        first_wait_for_leader: wait_for_leader,
        members: HashMap::new(),
        upstream: Upstream::None,
        room: None,
        dead: None,
        asked: HashMap::new(),
        next_ask: 1,
    };
    tokio::spawn(front.run(rx));
}

/// One of this node's callers, as its front keeps it to join it again elsewhere.
struct Local {
    join: Join,
    admitted: bool,
}

enum Upstream {
    /// Looking for the home.
    None,
    /// This node is the home: its meeting task (started by the first join) decides.
    Here,
    /// Another node is, through this leg.
    There { leg: Leg, home: String },
}

struct Front {
    hub: Arc<Hub>,
    key: ConferenceKey,
    /// The setting a meeting started here takes (the first joiner's lookup).
    first_wait_for_leader: bool,
    members: HashMap<MemberId, Local>,
    upstream: Upstream,
    /// This node's mixing room while the home is elsewhere.
    room: Option<RoomId>,
    /// A home this front could not reach.
    dead: Option<String>,
    /// The admin API's questions sent to the home, by request number.
    asked: HashMap<u64, Asked>,
    next_ask: u64,
}

/// Who waits for the answer to an [`Ask`].
enum Asked {
    Describe(oneshot::Sender<ConferenceView>),
    /// Mute or kick: whether the meeting knew the member.
    Flag(oneshot::Sender<bool>),
    Lock(oneshot::Sender<()>),
    Record(oneshot::Sender<Result<RecordingView, LiveError>>),
    DialOut(oneshot::Sender<Result<DialOutId, DialOutRefusal>>),
}

impl Front {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<ToMeeting>) {
        loop {
            if matches!(self.upstream, Upstream::None) {
                self.find_home().await;
            }
            let event = match &mut self.upstream {
                Upstream::There { leg, .. } => tokio::select! {
                    message = inbox.recv() => Ok(message),
                    event = leg.events.recv() => Err(event),
                },
                _ => Ok(inbox.recv().await),
            };
            match event {
                Ok(Some(message)) => self.handle(message),
                Ok(None) => break,
                Err(Some(LegEvent::Batch(body))) => self.heard_from_home(&body),
                Err(Some(LegEvent::Ended(why))) => self.lost_home(why),
                Err(None) => self.lost_home("the link task is gone"),
            }
            if self.members.is_empty() && self.end_if_idle(&mut inbox) {
                break;
            }
        }
        if let Some(room) = self.room.take() {
            self.hub.media.close_room(room);
        }
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.hub.cluster.get()
    }

    /// Claims the home (taking over a dead one) and joins every caller there.
    async fn find_home(&mut self) {
        let Some(cluster) = self.cluster().cloned() else {
            return self.hold_here();
        };
        let name = home_name(&self.key);
        for _ in 0..ATTEMPTS {
            match cluster.homes.claim(&name, self.dead.as_deref()).await {
                Ok(home) if home.instance == cluster.homes.instance() => return self.hold_here(),
                Ok(home) => match cluster.link.open(home.link, &self.key).await {
                    Ok(leg) => return self.reach(leg, home.instance),
                    Err(e) => {
                        tracing::warn!(meeting = %name, home = %home.instance, error = %e, "the meeting's home cannot be reached: taking it over");
                        self.dead = Some(home.instance);
                    }
                },
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
        tracing::warn!(meeting = %name, "no home found for the meeting: held on this node alone");
        self.hold_here();
    }

    /// This node is the home: its meeting task takes every caller, and the front only
    /// passes their messages on.
    fn hold_here(&mut self) {
        for local in self.members.values_mut() {
            self.hub.join_local(self.key.clone(), local.join.again());
            local.admitted = false;
        }
        tracing::info!(meeting = %home_name(&self.key), "this node is the meeting's home");
        self.upstream = Upstream::Here;
        // The callers move to the meeting's room as it admits them.
        if let Some(room) = self.room.take() {
            self.hub.media.close_room(room);
        }
        self.dead = None;
    }

    /// Another node is the home: the leg joins this node's room and every caller is
    /// asked for there.
    fn reach(&mut self, leg: Leg, home: String) {
        tracing::info!(meeting = %home_name(&self.key), %home, "joined the meeting's home through a leg");
        if let Some(room) = self.room {
            let _ = leg.rtp.join_room(room);
        }
        for local in self.members.values() {
            leg.send(&up_join(&local.join));
        }
        self.upstream = Upstream::There { leg, home };
        self.dead = None;
    }

    fn lost_home(&mut self, why: &str) {
        if let Upstream::There { home, .. } = std::mem::replace(&mut self.upstream, Upstream::None)
        {
            tracing::warn!(meeting = %home_name(&self.key), %home, why, "the leg to the meeting's home is lost: finding a new home");
            self.dead = Some(home);
        }
        // Questions the old home will never answer: their askers hear it ended.
        self.asked.clear();
    }

    fn handle(&mut self, message: ToMeeting) {
        let here = matches!(self.upstream, Upstream::Here);
        match message {
            ToMeeting::Join {
                member,
                role,
                tx,
                info,
            } => {
                let join = Join {
                    member,
                    role,
                    wait_for_leader: self.first_wait_for_leader,
                    tx,
                    info,
                };
                if here {
                    self.hub.join_local(self.key.clone(), join.again());
                } else {
                    self.to_home(up_join(&join));
                }
                self.members.insert(
                    member,
                    Local {
                        join,
                        admitted: false,
                    },
                );
            }
            ToMeeting::Leave { member } => {
                self.members.remove(&member);
                self.pass(ToMeeting::Leave { member }, Up::Leave { member: member.0 });
            }
            ToMeeting::Digit { member, digit } => self.pass(
                ToMeeting::Digit { member, digit },
                Up::Digit {
                    member: member.0,
                    digit,
                },
            ),
            // The meeting here lists itself; its front would list it twice.
            ToMeeting::Describe { .. } if here => {}
            other if here => self.to_meeting(other),
            ToMeeting::Mute {
                member,
                muted,
                reply,
            } => self.ask(
                Ask::Mute {
                    member: member.0,
                    muted,
                },
                Asked::Flag(reply),
            ),
            ToMeeting::Kick { member, reply } => {
                self.ask(Ask::Kick { member: member.0 }, Asked::Flag(reply))
            }
            ToMeeting::Describe { reply } => self.ask(Ask::Describe, Asked::Describe(reply)),
            ToMeeting::Lock { locked, reply } => self.ask(Ask::Lock { locked }, Asked::Lock(reply)),
            ToMeeting::Record { on, reply } => self.ask(Ask::Record { on }, Asked::Record(reply)),
            ToMeeting::DialOut { number, reply } => {
                self.ask(Ask::DialOut { number }, Asked::DialOut(reply))
            }
        }
    }

    /// Asks the home for the admin API (while no leg is up, the asker hears the meeting
    /// is unavailable: its reply is dropped).
    fn ask(&mut self, ask: Ask, asked: Asked) {
        if let Upstream::There { leg, .. } = &self.upstream {
            let req = self.next_ask;
            self.next_ask += 1;
            leg.send(&Up::Ask { req, ask });
            self.asked.insert(req, asked);
        }
    }

    /// The home's answer to a question of the admin API's.
    fn answered(&mut self, req: u64, answer: Answer) {
        let Some(asked) = self.asked.remove(&req) else {
            return;
        };
        match (asked, answer) {
            (Asked::Describe(reply), Answer::View(mut view)) => {
                // What only this node sees of its own callers: talking, and quality.
                for participant in &mut view.participants {
                    if let Some(local) = self.members.get(&MemberId(participant.id)) {
                        let info = &local.join.info;
                        participant.talking =
                            info.activity.as_ref().is_some_and(|a| a.is_talking());
                        participant.quality = info
                            .quality
                            .as_ref()
                            .and_then(crate::metrics::QualityView::current)
                            .map(Into::into);
                    }
                }
                let _ = reply.send(view);
            }
            (Asked::Flag(reply), Answer::Done(known)) => {
                let _ = reply.send(known);
            }
            // The asker's wait ends with the reply dropped: the meeting is unavailable.
            (_, Answer::Gone) => {}
            (Asked::Lock(reply), Answer::Locked) => {
                let _ = reply.send(());
            }
            (Asked::Record(reply), Answer::Recording(result)) => {
                let _ = reply.send(result);
            }
            (Asked::DialOut(reply), Answer::DialOut(result)) => {
                let _ = reply.send(result);
            }
            _ => {
                tracing::warn!(meeting = %home_name(&self.key), req, "an answer of the wrong kind from the home: dropped")
            }
        }
    }

    /// To the meeting here, or up the leg.
    fn pass(&self, local: ToMeeting, up: Up) {
        match self.upstream {
            Upstream::Here => self.to_meeting(local),
            _ => self.to_home(up),
        }
    }

    fn to_meeting(&self, message: ToMeeting) {
        let inbox = lock(&self.hub.meetings).get(&self.key).cloned();
        if let Some(inbox) = inbox {
            let _ = inbox.send(message);
        }
    }

    fn to_home(&self, up: Up) {
        if let Upstream::There { leg, .. } = &self.upstream {
            leg.send(&up);
        }
    }

    /// The home's word to this node's callers.
    fn heard_from_home(&mut self, body: &[u8]) {
        let batch = match wire::decode::<Down>(body) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(meeting = %home_name(&self.key), error = %e, "a leg message that does not parse: ignored");
                return;
            }
        };
        for down in batch {
            let (member, message) = match down {
                Down::Answer { req, answer } => {
                    self.answered(req, answer);
                    continue;
                }
                Down::Admitted { member } => {
                    let room = self.local_room();
                    if let Some(local) = self.members.get_mut(&MemberId(member)) {
                        local.admitted = true;
                    }
                    (member, ToMember::Admitted { room })
                }
                Down::Rejected { member, reason } => (member, ToMember::Rejected { reason }),
                Down::Muted { member, muted } => (member, ToMember::Muted(muted)),
                Down::Play { member, prompt } => (member, ToMember::Play(prompt)),
                Down::Count { member, count } => (member, ToMember::Count(count)),
                Down::Kicked { member } => (member, ToMember::Kicked),
            };
            if let Some(local) = self.members.get(&MemberId(member)) {
                let _ = local.join.tx.try_send(message);
            }
        }
    }

    /// This node's mixing room, made (and the leg put in it) on the first admission.
    fn local_room(&mut self) -> RoomId {
        if let Some(room) = self.room {
            return room;
        }
        // One more seat than the meeting's size: the leg.
        let room = self
            .hub
            .media
            .create_room(self.hub.settings.max_members + 1);
        if let Upstream::There { leg, .. } = &self.upstream {
            let _ = leg.rtp.join_room(room);
        }
        self.room = Some(room);
        room
    }

    /// With nobody left the front ends, unless a join raced in (the registry lock
    /// orders this against [`join`]).
    fn end_if_idle(&mut self, inbox: &mut mpsc::UnboundedReceiver<ToMeeting>) -> bool {
        let mut fronts = lock(&self.hub.fronts);
        if !inbox.is_empty() {
            return false;
        }
        fronts.remove(&self.key);
        inbox.close();
        true
    }
}

fn up_join(join: &Join) -> Up {
    Up::Join {
        member: join.member.0,
        role: join.role,
        wait_for_leader: join.wait_for_leader,
        calling: join.info.calling.clone(),
        dialled: join.info.dialled.clone(),
        organiser: join.info.organiser.clone(),
        organiser_id: join.info.organiser_id.clone(),
        join_leave_tones: join.info.join_leave_tones,
    }
}

/// The home's half of a leg: each member it brings joins the meeting here; what the
/// meeting tells them goes back down. The leg's RTP joins the meeting's room with the
/// first admission. When the leg ends, its members leave.
pub(super) async fn serve_leg(hub: Arc<Hub>, incoming: IncomingLeg) {
    let IncomingLeg { meeting, mut leg } = incoming;
    let (down_tx, mut down) = mpsc::unbounded_channel::<(MemberId, ToMember)>();
    let mut members: HashMap<MemberId, Membership> = HashMap::new();
    let sender = leg.sender();
    loop {
        tokio::select! {
            event = leg.events.recv() => match event {
                Some(LegEvent::Batch(body)) => match wire::decode::<Up>(&body) {
                    Ok(batch) => {
                        for up in batch {
                            from_satellite(&hub, &meeting, &mut members, &down_tx, &sender, up);
                        }
                    }
                    Err(e) => tracing::warn!(meeting = %home_name(&meeting), error = %e, "a leg message that does not parse: ignored"),
                },
                Some(LegEvent::Ended(_)) | None => break,
            },
            Some((member, message)) = down.recv() => {
                if let ToMember::Admitted { room } = &message {
                    let _ = leg.rtp.join_room(*room);
                }
                leg.send(&down_of(member, message));
            }
        }
    }
    tracing::info!(meeting = %home_name(&meeting), members = members.len(), "a leg from another node ended: its members leave");
}

fn from_satellite(
    hub: &Arc<Hub>,
    meeting: &ConferenceKey,
    members: &mut HashMap<MemberId, Membership>,
    down: &mpsc::UnboundedSender<(MemberId, ToMember)>,
    sender: &LegSender,
    up: Up,
) {
    match up {
        Up::Join {
            member,
            role,
            wait_for_leader,
            calling,
            dialled,
            organiser,
            organiser_id,
            join_leave_tones,
        } => {
            let member = MemberId(member);
            if members.contains_key(&member) {
                return;
            }
            // Each member its own channel, as a call has, merged into the leg's.
            let (tx, mut rx) = mpsc::channel::<ToMember>(16);
            let merged = down.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    if merged.send((member, message)).is_err() {
                        break;
                    }
                }
            });
            let info = MemberInfo {
                calling,
                dialled,
                organiser,
                organiser_id,
                activity: None,
                quality: None,
                join_leave_tones,
            };
            lock(&hub.members).insert(member, meeting.clone());
            let inbox = hub.join_local(
                meeting.clone(),
                Join {
                    member,
                    role,
                    wait_for_leader,
                    tx,
                    info,
                },
            );
            members.insert(
                member,
                Membership {
                    member,
                    meeting: inbox,
                    index: hub.members.clone(),
                },
            );
        }
        Up::Leave { member } => {
            members.remove(&MemberId(member));
        }
        Up::Digit { member, digit } => {
            if let Some(membership) = members.get(&MemberId(member)) {
                membership.digit(digit);
            }
        }
        Up::Ask { req, ask } => answer(hub, meeting, sender, req, ask),
    }
}

/// Puts a satellite's question to the meeting here and sends its answer down the leg
/// when it comes ([`Answer::Gone`] when there is no meeting here, or it ended).
fn answer(hub: &Hub, meeting: &ConferenceKey, sender: &LegSender, req: u64, ask: Ask) {
    let sender = sender.clone();
    let reply = move |answer: Answer| sender.send(&Down::Answer { req, answer });
    let Some(inbox) = lock(&hub.meetings).get(meeting).cloned() else {
        return reply(Answer::Gone);
    };
    match ask {
        Ask::Mute { member, muted } => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::Mute {
                member: MemberId(member),
                muted,
                reply: tx,
            });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, Answer::Done)) });
        }
        Ask::Kick { member } => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::Kick {
                member: MemberId(member),
                reply: tx,
            });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, Answer::Done)) });
        }
        Ask::Describe => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::Describe { reply: tx });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, Answer::View)) });
        }
        Ask::Lock { locked } => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::Lock { locked, reply: tx });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, |()| Answer::Locked)) });
        }
        Ask::Record { on } => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::Record { on, reply: tx });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, Answer::Recording)) });
        }
        Ask::DialOut { number } => {
            let (tx, rx) = oneshot::channel();
            let _ = inbox.send(ToMeeting::DialOut { number, reply: tx });
            tokio::spawn(async move { reply(rx.await.map_or(Answer::Gone, Answer::DialOut)) });
        }
    }
}

fn down_of(member: MemberId, message: ToMember) -> Down {
    let member = member.0;
    match message {
        ToMember::Admitted { .. } => Down::Admitted { member },
        ToMember::Rejected { reason } => Down::Rejected { member, reason },
        ToMember::Muted(muted) => Down::Muted { member, muted },
        ToMember::Play(prompt) => Down::Play { member, prompt },
        ToMember::Count(count) => Down::Count { member, count },
        ToMember::Kicked => Down::Kicked { member },
    }
}
