//! A new INVITE, from the first look to the answer: who is calling (trunk by TLS client
//! certificate or source address, under its security policy, or a softphone by digest),
//! then [`Signaling::admit`] — where to (the router's decision and its grant) and with
//! what media (the offer, under the trunk's SRTP policy), no I/O, an [`Admission`] or a
//! typed [`Refused`] — then the one I/O of admission, the call's RTP port, and 180 or
//! 200.

use std::time::{Instant, SystemTime};

use dialbridge_conference::ivr::{IvrConfig, TenantId};
use std::net::{IpAddr, SocketAddr};

use dialbridge_media::{AudioCodec, RtpSession, SrtpKeys};
use dialbridge_router::Grant;
use dialbridge_router::TrunkId;
use dialbridge_sip::auth::{Attempt, Failure, Lockout, Verdict};
use dialbridge_sip::dialog::LocalAddress;
use dialbridge_sip::message::uri::NameAddr;
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::prelude::*;
use dialbridge_sip::rsip::{self, Header};
use dialbridge_sip::sdp::{Codec, LocalMedia, Negotiated, Proto};
use dialbridge_sip::session::UasSession;
use dialbridge_sip::transaction::{PeerAddr, ServerKey, TransportKind};

use super::Signaling;
use super::call::{Call, CallRecord, Capacity};
use super::leg::Leg;
use super::origin::Origin;
use super::trunk_security;
use crate::answers;
use crate::call_flow::{self, CallCore};
use crate::refusal::{self, Cause, EndCause};

/// What admission decided for a new INVITE, before any port is opened.
pub(super) struct Admission {
    pub session: UasSession,
    pub grant: Grant,
    pub codec: AudioCodec,
    pub negotiated: Negotiated,
    /// The SRTP keys, when the offer was RTP/SAVP.
    pub keys: Option<SrtpKeys>,
    /// The signalling peer's IP when the call's media latches (symmetric RTP).
    pub latching: Option<IpAddr>,
    /// Where the call's RTP goes first (`latch::first_target`).
    pub target: SocketAddr,
    /// The user part of From: the calling number from a trunk, the account from a
    /// softphone.
    pub calling: Option<String>,
    /// The account a softphone proved by digest.
    pub account: Option<String>,
    /// Who pays, when the call is billed (`billing.rs`), its first increment reserved.
    pub billing: Option<dialbridge_ledger::Meter>,
    /// The reservation on every node, when capacity is shared (`shared_claim.rs`).
    pub lease: Option<crate::shared::Lease>,
    /// The caller's IP (behind a trusted proxy, the one it names: `origin.rs`).
    pub source: IpAddr,
}

/// Why admission refused: the domain cause (rendered by the one mapping), or `None` for
/// an answer of the SIP crate's (400, 422, 488 for the SDP), and the response to send.
#[derive(Debug)]
pub(super) struct Refused {
    pub cause: Option<Cause>,
    pub response: Box<rsip::Response>,
}

impl Refused {
    pub(super) fn cause(request: &rsip::Request, cause: impl Into<Cause>) -> Refused {
        let cause = cause.into();
        Refused {
            cause: Some(cause),
            response: Box::new(refusal::refuse(request, cause)),
        }
    }

    fn answer(response: rsip::Response) -> Refused {
        Refused {
            cause: None,
            response: Box::new(response),
        }
    }
}

impl Signaling {
    pub(super) fn handle_new_invite(
        &mut self,
        key: ServerKey,
        invite: rsip::Request,
        peer: PeerAddr,
        now: Instant,
    ) {
        // Who called: the packet's source, or the caller a trusted proxy names for this
        // very INVITE (a miss reads as the packet's source with no certificate: never
        // let in on a name it did not show).
        let origin = match self.origin.take() {
            Some((for_key, origin)) if for_key == key => origin,
            _ => Origin::direct(peer, None),
        };
        let Some((trunk, account)) = self.identify(&key, &invite, &origin, now) else {
            return;
        };
        let admitted = self
            .admit(invite, trunk, &origin, peer, now)
            .map(|admission| Admission {
                account,
                ..admission
            });
        match (admitted, self.services.shared_capacity.clone()) {
            // Other nodes share the capacity: the answer waits for Redis (`shared_claim.rs`).
            (Ok(admission), Some(shared)) => self.claim_shared(key, admission, shared, peer),
            (Ok(admission), None) => self.proceed(key, admission, peer, now),
            (Err(refused), _) => self.refuse(&key, refused, peer, now),
        }
    }

    /// An admission whose capacity is held (here, and on every node when shared): who
    /// pays, then the RTP port, then the answer.
    pub(super) fn proceed(
        &mut self,
        key: ServerKey,
        admission: Admission,
        peer: PeerAddr,
        now: Instant,
    ) {
        let opened = self
            .open_billing(&admission)
            .map(|billing| Admission {
                billing,
                ..admission
            })
            .and_then(|admission| Ok((self.open_media(&admission)?, admission)));
        match opened {
            Ok((rtp, admission)) => self.start_call(key, admission, rtp, peer, now),
            Err(refused) => self.refuse(&key, refused, peer, now),
        }
    }

    pub(super) fn refuse(
        &mut self,
        key: &ServerKey,
        refused: Refused,
        peer: PeerAddr,
        now: Instant,
    ) {
        tracing::debug!(peer = %peer.addr, cause = ?refused.cause, "call refused");
        self.respond(key, *refused.response, now);
    }

    /// The decision on a new INVITE from `trunk`, without I/O: the router's grant (a
    /// reservation of the number's, bridge's and trunk's capacity, given back when the
    /// admission is dropped), the invite session, and what the offer settles. `origin`
    /// is who called (its transport is the trunk policy's), `peer` where the answer goes.
    pub(super) fn admit(
        &self,
        invite: rsip::Request,
        trunk: TrunkId,
        origin: &Origin,
        peer: PeerAddr,
        now: Instant,
    ) -> Result<Admission, Refused> {
        let request_uri = invite.uri.to_string();
        let grant = self
            .services
            .router
            .route(trunk, &request_uri)
            .map_err(|rejection| Refused::cause(&invite, rejection.reason))?;
        let calling = from_user(&invite);
        let policy = self.services.router.trunk_policy(trunk);
        let local = self.local_address(peer);
        let mut session = UasSession::new(invite, local, &self.session_timers, now)
            .map_err(|refused| Refused::answer(*refused))?;
        // Our SDES key for this call (RFC 4568): it goes into the answer only when the
        // offer is RTP/SAVP, as Direct-Routing-style trunks require encrypted media.
        let sdes_key = SrtpKeys::encode_inline(&SrtpKeys::random_key_salt());
        let mut offered = LocalMedia::g711(self.services.media.address(), 0, 0);
        // Wideband too (the rooms mix at 16 kHz): G.722 for SBCs, Opus for softphones.
        // The answer takes the offer's first codec we list (RFC 3264 §6.1), so the
        // offerer's preference decides.
        offered.codecs.extend([Codec::G722, Codec::OPUS]);
        // Our key is offered only where it may travel: an SRTP m-line cannot be taken
        // otherwise, and the policy says why.
        offered.sdes_inline_key =
            trunk_security::sdes_allowed(policy, origin.transport).then(|| sdes_key.clone());
        let offers_srtp = session
            .offer()
            .is_ok_and(|o| o.media.iter().any(|m| m.proto == Proto::RtpSavp));
        // The offer is taken before any port is opened: a call without a common codec
        // costs no socket.
        let negotiated = session.accept_offer(offered);
        let srtp = negotiated.as_ref().ok().map(|n| n.remote_crypto.is_some());
        if let Some(cause) =
            trunk_security::media_refusal(policy, origin.transport, offers_srtp, srtp)
        {
            return Err(Refused::cause(session.invite(), cause));
        }
        let negotiated =
            negotiated.map_err(|e| Refused::answer(session.reject(session.invite(), &e.into())))?;
        let Some(codec) = super::media_codec(&negotiated.codec, negotiated.payload_type) else {
            return Err(Refused::cause(session.invite(), EndCause::NoCommonCodec));
        };
        let keys = match &negotiated.remote_crypto {
            None => None,
            Some(crypto) => {
                let keys = crypto
                    .key_params
                    .first()
                    .filter(|k| k.mki.is_none())
                    .and_then(|k| SrtpKeys::from_sdes(&crypto.suite, &sdes_key, &k.key_salt).ok());
                match keys {
                    Some(keys) => Some(keys),
                    None => {
                        return Err(Refused::cause(session.invite(), EndCause::UnusableSdesKey));
                    }
                }
            }
        };
        // Symmetric RTP (per trunk; softphones by default): media latches to where the
        // caller's media comes from, and goes first to the signalling IP when the SDP
        // address is not it.
        let latching = self
            .services
            .router
            .symmetric_rtp(trunk)
            .then(|| origin.addr.ip().to_canonical());
        let target = dialbridge_media::latch::first_target(negotiated.remote_rtp, latching);
        Ok(Admission {
            session,
            grant,
            codec,
            negotiated,
            keys,
            latching,
            target,
            calling,
            account: None,
            billing: None,
            lease: None,
            source: origin.addr.ip().to_canonical(),
        })
    }

    /// The call's RTP session (the one I/O of admission): a port of the family its
    /// first target needs. No port left: refused with 503.
    fn open_media(&self, admission: &Admission) -> Result<RtpSession, Refused> {
        let Admission {
            negotiated,
            codec,
            keys,
            latching,
            target,
            ..
        } = admission;
        let target = *target;
        let media = &self.services.media;
        let event = negotiated.telephone_event;
        let opened = match (*latching, keys.clone()) {
            (Some(signalling_ip), keys) => {
                media.open_latching(target, *codec, event, keys, signalling_ip)
            }
            (None, None) => media.open(target, *codec, event),
            (None, Some(keys)) => media.open_srtp(target, *codec, event, keys),
        };
        opened.map_err(|e| {
            tracing::warn!(error = %e, "no media port for a call");
            Refused::cause(admission.session.invite(), EndCause::NoMediaCapacity)
        })
    }

    /// An admitted call with its media: the answer is written, the call is kept, and it
    /// rings or is answered.
    fn start_call(
        &mut self,
        key: ServerKey,
        admission: Admission,
        rtp: RtpSession,
        peer: PeerAddr,
        now: Instant,
    ) {
        let Admission {
            mut session,
            grant,
            negotiated,
            latching,
            target,
            calling,
            account,
            billing,
            lease,
            source,
            ..
        } = admission;
        let session_id = u64::from(rand::random::<u32>());
        if let Err(e) = session.bind_media(rtp.local_addr().ip(), rtp.local_port(), session_id) {
            let response = session.reject(session.invite(), &e.into());
            self.respond(&key, response, now);
            return;
        }
        rtp.set_remote_rtcp(dialbridge_media::latch::first_target(
            negotiated.remote_rtcp,
            latching,
        ));
        let id = session.dialog().id().clone();
        let asserted = asserted_user(session.invite());
        tracing::info!(
            call_id = %id.call_id,
            number = %grant.number(),
            trunk = grant.trunk_name(),
            tenant = grant.tenant(),
            bridge = grant.bridge(),
            codec = negotiated.codec.name,
            srtp = rtp.is_srtp(),
            latching = latching.is_some(),
            media = %target,
            %source,
            "call admitted"
        );
        // The guessing defence counts per caller, keyed on what the caller cannot choose
        // freely: the trunk, and the identity it asserts (RFC 3325) or passes as the
        // calling number; a softphone's proven account.
        let caller = dialbridge_conference::guard::CallerKey(format!(
            "{}/{}",
            grant.trunk_name(),
            account
                .or(asserted)
                .or_else(|| calling.clone())
                .unwrap_or_else(|| source.to_string())
        ));
        let calling = calling.unwrap_or_default();
        let media =
            call_flow::media::spawn(id.clone(), rtp, &self.services, self.reports_tx.clone());
        let session = session.with_headers(answers::BRIDGE.identity(), answers::BRIDGE.headers());
        let call = Call {
            session: Leg::In {
                session: Box::new(session),
                invite_key: key.clone(),
            },
            peer,
            latching,
            core: CallCore::new(self.ivr_config(grant.tenant()), now),
            grant: Capacity::In {
                grant,
                _lease: lease,
            },
            media,
            caller,
            membership: None,
            play_seq: 0,
            arrived: now,
            armed: None,
            billing: billing.map(super::billing::Billing::new),
            record: CallRecord {
                calling,
                arrived: SystemTime::now(),
                answered: None,
                joined: None,
            },
            dial_out: None,
        };
        self.by_invite.insert(key.clone(), id.clone());
        self.calls.insert(id.clone(), call);
        let answer_after = self.config.sip.answer_after;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let response = if let Some(ringing) = Self::hold_answer(call, answer_after, now) {
            ringing // the answer waits for the ledger's commit (billing.rs)
        } else if let Some(session) = call.session.uas_mut() {
            if answer_after.is_zero() {
                session.answer(now)
            } else {
                session.ring(now + answer_after, now)
            }
        } else {
            return;
        };
        self.respond(&key, response, now);
        // The 200 or 180 out, the welcome prompt started.
        self.settle(&id, now);
    }

    /// The entry IVR's settings for a call to a bridge of `tenant`: conference IDs are
    /// looked up in that tenant only.
    fn ivr_config(&self, tenant: &str) -> IvrConfig {
        let ivr = &self.services.ivr;
        let mut config = IvrConfig::new(TenantId::new(tenant.to_string()));
        config.first_digit_timeout = ivr.first_digit_timeout;
        config.inter_digit_timeout = ivr.inter_digit_timeout;
        let attempts = u8::try_from(ivr.max_attempts).unwrap_or(u8::MAX);
        config.max_id_attempts = attempts;
        config.max_pin_attempts = attempts;
        config
    }

    /// The trunk a request came over: by its verified TLS client certificate or its
    /// source address, under the trunk's policy, else a softphone that proves itself by
    /// digest (with the account it proved). `None` means a challenge or a refusal has
    /// been sent.
    fn identify(
        &mut self,
        key: &ServerKey,
        request: &rsip::Request,
        origin: &Origin,
        now: Instant,
    ) -> Option<(TrunkId, Option<String>)> {
        let router = &self.services.router;
        let names = origin.names.clone();
        let by_certificate = names
            .as_deref()
            .map(|n| router.trunks_by_certificate(n))
            .unwrap_or_default();
        let identified = trunk_security::identify(
            &by_certificate,
            names.is_some(),
            router.identify_trunk(origin.addr.ip()),
            origin.transport,
            |trunk| router.trunk_policy(trunk),
        );
        match identified {
            Ok(Some(trunk)) => return Some((trunk, None)),
            Ok(None) => {}
            Err(cause) => {
                // Debug only: a spoofed source address must not flood the log.
                tracing::debug!(source = %origin.addr, ?cause, names = ?names, "trunk refused by its security policy");
                let response = refusal::refuse(request, cause);
                self.respond(key, response, now);
                return None;
            }
        }
        let source = origin.addr.ip().to_canonical();
        let wall = Self::wall_clock();
        let from_user = from_user(request);
        let authorization = request.headers.iter().find_map(|h| match h {
            Header::Authorization(a) => Some(a.value().to_string()),
            _ => None,
        });
        let Some(authorization) = authorization else {
            // A locked-out source (or From user) gets no nonce to try again with.
            let locked =
                self.auth
                    .lockout(self.auth_state.as_mut(), source, from_user.as_deref(), wall);
            match locked {
                Some(lockout) => self.refuse_locked(key, request, &lockout, now),
                None => {
                    let prefer_sha256 = from_user
                        .as_deref()
                        .is_some_and(|u| self.auth.prefers_sha256(u));
                    self.challenge(key, request, false, prefer_sha256, now);
                }
            }
            return None;
        };
        let method = request.method.to_string();
        let request_uri = request.uri.to_string();
        let attempt = Attempt {
            method: &method,
            request_uri: &request_uri,
            authorization: &authorization,
            source,
        };
        let counters = self.observers.auth.clone();
        match self.auth.verify(self.auth_state.as_mut(), &attempt, wall) {
            Verdict::Authenticated { user } => {
                counters.authenticated.inc();
                tracing::debug!(%user, source = %origin.addr, "softphone authenticated");
                match self.services.router.softphone_trunk() {
                    Some(trunk) => Some((trunk, Some(user))),
                    None => {
                        let response = refusal::refuse(request, EndCause::SoftphonesNotAccepted);
                        self.respond(key, response, now);
                        None
                    }
                }
            }
            Verdict::Stale { user, nonce } => {
                counters.stale(nonce);
                tracing::debug!(%user, source = %origin.addr, stale = nonce.as_str(), "softphone nonce refused: challenged again");
                let sha = self.auth.prefers_sha256(&user);
                self.challenge(key, request, true, sha, now);
                None
            }
            Verdict::Failed { failure, lockouts } => {
                counters.failure(failure);
                tracing::info!(source = %origin.addr, from_user = from_user.as_deref().unwrap_or(""), failure = failure.as_str(), "softphone authentication failed");
                for lockout in &lockouts {
                    counters.lockout(&lockout.subject);
                    tracing::warn!(
                        locked = %lockout.subject,
                        minutes = self.config.auth.lockout.as_secs() / 60,
                        "too many failed softphone authentications: locked out"
                    );
                }
                let response = match failure {
                    // RFC 7616 §3.4.6 (as RFC 2617 §3.2.2.5): the uri names another
                    // resource than the Request-Line, "SHOULD return a 400".
                    Failure::WrongUri => answers::BRIDGE
                        .bad_request(request, "Digest uri does not match the Request-URI"),
                    _ => answers::BRIDGE.forbidden(request),
                };
                self.respond(key, response, now);
                None
            }
            Verdict::LockedOut(lockout) => {
                self.refuse_locked(key, request, &lockout, now);
                None
            }
            Verdict::Malformed { reason } => {
                let response = answers::BRIDGE.bad_request(request, reason);
                self.respond(key, response, now);
                None
            }
        }
    }

    /// 403 during a lock-out: no challenge, no hash computed, one debug line (an
    /// attacker at line rate must not flood the log).
    fn refuse_locked(
        &mut self,
        key: &ServerKey,
        request: &rsip::Request,
        lockout: &Lockout,
        now: Instant,
    ) {
        self.observers.auth.refused_locked.inc();
        tracing::debug!(locked = %lockout.subject, "softphone request refused during a lock-out");
        let response = answers::BRIDGE.locked_out(request);
        self.respond(key, response, now);
    }

    fn challenge(
        &mut self,
        key: &ServerKey,
        request: &rsip::Request,
        stale: bool,
        prefer_sha256: bool,
        now: Instant,
    ) {
        let mut challenges = vec![
            self.auth
                .challenge(Self::wall_clock(), stale, prefer_sha256),
        ];
        if prefer_sha256 {
            // Clients that only know MD5 pick the second challenge (RFC 8760 §2.4).
            challenges.push(self.auth.challenge(Self::wall_clock(), stale, false));
        }
        let response = answers::BRIDGE.challenge(request, &challenges);
        self.respond(key, response, now);
    }

    /// How we name ourselves towards `peer`: Contact and Via on the transport and the
    /// address family it used.
    pub(super) fn local_address(&self, peer: PeerAddr) -> LocalAddress {
        let mut local = self.wire.local_addr(peer.transport, peer.addr.ip());
        if let Some(host) = self.config.sip.contact_host
            && host.is_ipv4() == local.is_ipv4()
        {
            local.set_ip(host);
        }
        let transport = match peer.transport {
            TransportKind::Udp => rsip::Transport::Udp,
            TransportKind::Tcp => rsip::Transport::Tcp,
            TransportKind::Tls => rsip::Transport::Tls,
        };
        LocalAddress::new("dialbridge", local, transport)
    }
}

/// The user part of the first P-Asserted-Identity (RFC 3325): the caller's identity as
/// a trusted trunk asserts it.
fn asserted_user(request: &rsip::Request) -> Option<String> {
    let value = request.headers.iter().find_map(|h| match h {
        Header::Other(name, value) if name.eq_ignore_ascii_case("P-Asserted-Identity") => {
            Some(value.as_str())
        }
        _ => None,
    })?;
    let first = value.split(',').next()?;
    NameAddr::parse(first.trim())
        .ok()
        .and_then(|a| a.uri.user().map(str::to_owned))
}

/// The user part of the From URI: the calling number from a trunk, the account from a
/// softphone.
fn from_user(request: &rsip::Request) -> Option<String> {
    let from = request.from_header().ok()?;
    NameAddr::parse(from.value())
        .ok()
        .and_then(|f| f.uri.user().map(str::to_owned))
}
