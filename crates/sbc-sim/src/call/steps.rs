//! The script as the call runs it (waits, keys as RFC 4733 or INFO, hangup), the hold
//! time after it, and how the call ends from our side: BYE, or CANCEL before an answer.

use std::time::Instant;

use dialbridge_sip::rsip::Method;
use dialbridge_sip::session::UacPhase;
use dialbridge_sip::transaction::ClientKey;

use super::{BYE_REASON, CANCEL_REASON, Call, HANGUP_WAIT, INFO_GAP};
use crate::dtmf::{self, DtmfMode};
use crate::outcome::EndedBy;
use crate::script::Step;

impl Call<'_> {
    /// Starts the next script step (each one waits: for time, for keys, or for BYE).
    pub(super) fn advance_script(&mut self, now: Instant) -> Result<(), String> {
        if self.session.phase() != UacPhase::Confirmed {
            return Ok(());
        }
        let Some(step) = self.config.script.steps.get(self.script.index) else {
            if self.script.hold_started {
                return self.hangup(BYE_REASON, now);
            }
            self.script.hold_started = true;
            self.script.wake = Some(now + self.config.hold);
            return Ok(());
        };
        match step {
            Step::Wait(d) => self.script.wake = Some(now + *d),
            Step::Keys(keys) => {
                self.say(&format!("keys {keys}"));
                match self.config.dtmf {
                    DtmfMode::Rfc4733 => {
                        let media = self.media.as_ref().ok_or("no media")?;
                        self.script.keys_done = Some(media.keys(keys));
                    }
                    DtmfMode::Info => {
                        self.script.info_queue.extend(keys.chars());
                        self.send_next_info(now)?;
                    }
                    DtmfMode::InBand | DtmfMode::InBandWithTelephoneEvent => {
                        let media = self.media.as_ref().ok_or("no media")?;
                        self.script.keys_done = Some(media.keys_in_band(keys));
                    }
                }
            }
            Step::Hangup => return self.hangup(BYE_REASON, now),
        }
        Ok(())
    }

    /// The current step has finished: move on, starting the latency clock after the
    /// last keys.
    pub(super) fn step_done(&mut self) {
        if self.script.marks_after == Some(self.script.index)
            && let Some(media) = &self.media
        {
            media.mark();
        }
        if self.script.index < self.config.script.steps.len() {
            self.script.index += 1;
        } else {
            // The hold time is over.
            self.script.index = usize::MAX;
        }
    }

    pub(super) fn send_next_info(&mut self, now: Instant) -> Result<(), String> {
        let Some(key) = self.script.info_queue.pop_front() else {
            self.step_done();
            return self.advance_script(now);
        };
        let body = dtmf::info_body(key, dtmf::KEY_MS);
        let info = self
            .session
            .request(
                Method::Info,
                Some(("application/dtmf-relay", body.into_bytes())),
                now,
            )
            .ok_or("no dialog for INFO")?;
        self.say(&format!("→ INFO {key}"));
        let tx = self
            .layer
            .send_request(info, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.script.info_in_flight = Some(tx);
        Ok(())
    }

    pub(super) fn info_answered(&mut self, key: &ClientKey, now: Instant) -> Result<(), String> {
        if self.script.info_in_flight.as_ref() == Some(key) {
            self.script.info_in_flight = None;
            self.script.info_next = Some(now + INFO_GAP);
        }
        Ok(())
    }

    /// Our BYE with `reason` (RFC 3326), once answered.
    pub(super) fn hangup(&mut self, reason: &str, now: Instant) -> Result<(), String> {
        if self.session.phase() != UacPhase::Confirmed {
            return Ok(());
        }
        let bye = self
            .session
            .hang_up(reason, now)
            .ok_or("no dialog for BYE")?;
        self.say("→ BYE");
        self.layer
            .send_request(bye, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.ended_by.get_or_insert(EndedBy::Caller);
        self.hanging_up = true;
        self.deadline = Some(now + HANGUP_WAIT);
        self.script.wake = None;
        self.script.info_next = None;
        Ok(())
    }

    /// CANCEL for the INVITE still unanswered at the setup timeout; its 487 (or a 2xx
    /// that crosses it) ends the call.
    pub(super) fn cancel(&mut self, now: Instant) -> Result<(), String> {
        let Some(cancel) = self.session.hang_up(CANCEL_REASON, now) else {
            self.done = true;
            return Ok(());
        };
        self.say("→ CANCEL");
        self.layer
            .send_request(cancel, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.hanging_up = true;
        self.deadline = Some(now + HANGUP_WAIT);
        Ok(())
    }
}
