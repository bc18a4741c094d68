//! A call's own task: it plays the prompts, turns what the caller keys (RFC 4733 events
//! on RTP, SIP INFO relayed by the signaling task) into digits for the entry IVR, asks
//! the organiser directory what the IVR wants to know, and reports back when the call
//! must end. Time and decisions live in the IVR; this task only moves events.

use std::sync::Arc;
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{
    CallDtmf, Combiner, DEFAULT_EVENT_TIMEOUT, GoertzelConfig, GoertzelDetector,
    TelephoneEventDecoder, parse_info,
};
use dialbridge_conference::guard::CallerKey;
use dialbridge_conference::ivr::{
    Action, Ivr, IvrConfig, LookupResult, PinResult, PromptId, TenantId,
};
use dialbridge_media::{PlayDone, RtpSession};
use dialbridge_sip::dialog::DialogId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::services::Services;
use crate::signaling::CallInput;
use crate::signaling::CallReport;

/// What an asynchronous directory question came back with.
enum Answer {
    Lookup(LookupResult),
    Pin(PinResult, dialbridge_conference::ivr::ConferenceKey),
}

pub(crate) async fn run(
    id: DialogId,
    mut session: RtpSession,
    services: Arc<Services>,
    tenant: String,
    caller: CallerKey,
    mut inputs: mpsc::Receiver<CallInput>,
    reports: mpsc::Sender<CallReport>,
) {
    let now = Instant::now();
    let mut config = IvrConfig::new(TenantId::new(tenant));
    config.first_digit_timeout = services.ivr.first_digit_timeout;
    config.inter_digit_timeout = services.ivr.inter_digit_timeout;
    let attempts = u8::try_from(services.ivr.max_attempts).unwrap_or(u8::MAX);
    config.max_id_attempts = attempts;
    config.max_pin_attempts = attempts;
    let mut ivr = Ivr::new(config, now);
    let telephone_event = session.telephone_event_pt();
    let codec = session.codec();
    // Digits from RFC 4733 events, SIP INFO and, for trunks that offer no
    // telephone-event, tones detected in the audio; one press counts once.
    let mut dtmf = CallDtmf::new(
        TelephoneEventDecoder::new(DEFAULT_EVENT_TIMEOUT),
        GoertzelDetector::new(GoertzelConfig::default()),
        Combiner::default(),
    );
    let mut pcm = [0i16; dialbridge_media::FRAME_SAMPLES];
    let Some(mut inbound) = session.take_inbound() else {
        return;
    };
    let mut playing: Option<(PromptId, PlayDone)> = None;
    let mut questions: JoinSet<Answer> = JoinSet::new();

    loop {
        // Carry out everything the IVR asked for before waiting again.
        while let Some(action) = ivr.poll_action() {
            match action {
                Action::PlayPrompt { prompt, .. } => {
                    if let Some(audio) = services.prompts.get(prompt) {
                        playing = Some((prompt, session.play(audio, false)));
                    }
                }
                Action::StopPrompt => {
                    session.stop();
                    playing = None;
                }
                Action::LookupConference {
                    tenant,
                    conference_id,
                } => {
                    if !services.guard_allows_id(&caller) {
                        // A caller past the guessing threshold learns nothing more.
                        ivr.handle_lookup_result(LookupResult::NotFound, Instant::now());
                        continue;
                    }
                    let directory = services.directory.clone();
                    questions.spawn_blocking(move || {
                        Answer::Lookup(match directory.lookup(&tenant, &conference_id) {
                            Ok(Some(info)) => LookupResult::Found(info.key()),
                            Ok(None) => LookupResult::NotFound,
                            Err(e) => {
                                tracing::warn!(error = %e, "directory lookup failed");
                                LookupResult::Failed
                            }
                        })
                    });
                }
                Action::VerifyPin { conference, pin } => {
                    if !services.guard_allows_pin(&caller, &conference) {
                        ivr.handle_pin_result(PinResult::Refused, Instant::now());
                        continue;
                    }
                    let directory = services.directory.clone();
                    questions.spawn_blocking(move || {
                        let result =
                            match directory.verify_pin(&conference.tenant, &conference.id, &pin) {
                                Ok(true) => PinResult::Valid,
                                Ok(false) => PinResult::Invalid,
                                Err(e) => {
                                    tracing::warn!(error = %e, "PIN check failed");
                                    PinResult::Failed
                                }
                            };
                        Answer::Pin(result, conference)
                    });
                }
                Action::Join { conference, role } => {
                    tracing::info!(
                        call_id = %id.call_id,
                        tenant = conference.tenant.as_str(),
                        conference = conference.id.as_str(),
                        ?role,
                        "caller joins the meeting"
                    );
                    if let Some(audio) = services.prompts.get(PromptId::Joined) {
                        playing = None;
                        drop(session.play(audio, false));
                    }
                }
                Action::Hangup { reason } => {
                    let _ = reports
                        .send(CallReport::HangUp {
                            id: id.clone(),
                            reason: reason.header_value(),
                        })
                        .await;
                    return;
                }
            }
        }
        let deadline = [ivr.poll_timeout(), dtmf.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let prompt_done = async {
            match playing.as_mut() {
                Some((prompt, done)) => {
                    let _ = done.await;
                    *prompt
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            packet = inbound.recv() => {
                let Some(packet) = packet else { return };
                let now = Instant::now();
                let digit = if Some(packet.payload_type) == telephone_event {
                    dtmf.handle_telephone_event(
                        &packet.payload, packet.timestamp, packet.sequence, packet.marker, now,
                    )
                    .ok()
                    .flatten()
                } else if telephone_event.is_none() && packet.payload_type == codec.payload_type() {
                    let n = codec.decode_frame(&packet.payload, &mut pcm);
                    dtmf.handle_audio(pcm.get(..n).unwrap_or_default(), now)
                } else {
                    None
                };
                if let Some(digit) = digit {
                    ivr.handle_digit(digit, now);
                }
            }
            input = inputs.recv() => match input {
                Some(CallInput::Digit(digit)) => {
                    let now = Instant::now();
                    if let Some(digit) = dtmf.handle_info_digit(digit, now) {
                        ivr.handle_digit(digit, now);
                    }
                }
                Some(CallInput::Hold(held)) => {
                    // On hold the caller hears nothing we could play; the IVR's timers
                    // keep running, as a caller on hold keys nothing.
                    tracing::debug!(call_id = %id.call_id, held, "hold state changed");
                    if held {
                        session.stop();
                        playing = None;
                    }
                }
                None => return,
            },
            prompt = prompt_done => {
                playing = None;
                ivr.handle_prompt_finished(prompt, Instant::now());
            }
            Some(answer) = questions.join_next(), if !questions.is_empty() => {
                let now = Instant::now();
                match answer {
                    Ok(Answer::Lookup(result)) => {
                        if result == LookupResult::NotFound {
                            services.guard_wrong_id(&caller);
                        }
                        ivr.handle_lookup_result(result, now)
                    }
                    Ok(Answer::Pin(result, conference)) => {
                        services.guard_pin_result(&caller, &conference, result);
                        ivr.handle_pin_result(result, now)
                    }
                    Err(_) => ivr.handle_lookup_result(LookupResult::Failed, now),
                }
            }
            _ = sleep => {
                let now = Instant::now();
                dtmf.handle_timeout(now);
                ivr.handle_timeout(now);
            }
        }
    }
}

/// The digit a SIP INFO carries: `Ok(None)` for an INFO that is not DTMF at all,
/// `Err` for a DTMF body that does not parse.
pub(crate) fn info_digit(content_type: &str, body: &[u8]) -> Result<Option<Digit>, &'static str> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/dtmf-relay")
        && !media_type.eq_ignore_ascii_case("application/dtmf")
    {
        return Ok(None);
    }
    parse_info(content_type, body)
        .map(|info| Some(info.digit))
        .map_err(|_| "malformed DTMF INFO body")
}
