//! The script as the call runs it (waits, keys as RFC 4733 or INFO, hangup), the hold
//! time after it, and how the call ends from our side: BYE, or CANCEL before an answer.

use std::time::Instant;

use dialbridge_sip::transaction::ClientKey;

use super::{Call, HANGUP_WAIT, INFO_GAP, Phase};
use crate::dtmf::{self, DtmfMode};
use crate::outcome::EndedBy;
use crate::script::Step;

impl Call<'_> {
    /// Starts the next script step (each one waits: for time, for keys, or for BYE).
    pub(super) fn advance_script(&mut self, now: Instant) -> Result<(), String> {
        if self.phase != Phase::Established {
            return Ok(());
        }
        let Some(step) = self.config.script.steps.get(self.script.index) else {
            if self.script.hold_started {
                return self.hangup(now);
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
                    DtmfMode::InBand => {
                        let media = self.media.as_ref().ok_or("no media")?;
                        self.script.keys_done = Some(media.keys_in_band(keys));
                    }
                }
            }
            Step::Hangup => return self.hangup(now),
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
            .dialog
            .info("application/dtmf-relay", &body)
            .map_err(|e| e.to_string())?;
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

    pub(super) fn hangup(&mut self, now: Instant) -> Result<(), String> {
        if self.phase != Phase::Established {
            return Ok(());
        }
        let bye = self.dialog.bye().map_err(|e| e.to_string())?;
        self.say("→ BYE");
        self.layer
            .send_request(bye, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.ended_by.get_or_insert(EndedBy::Caller);
        self.phase = Phase::HangingUp;
        self.phase_deadline = Some(now + HANGUP_WAIT);
        self.script.wake = None;
        self.script.info_next = None;
        Ok(())
    }

    pub(super) fn cancel(&mut self, now: Instant) -> Result<(), String> {
        let Some(cancel) = self.dialog.cancel() else {
            self.phase = Phase::Done;
            return Ok(());
        };
        self.say("→ CANCEL");
        self.layer
            .send_request(cancel, self.peer, now)
            .map_err(|e| e.to_string())?;
        self.phase = Phase::Cancelling;
        self.phase_deadline = Some(now + HANGUP_WAIT);
        Ok(())
    }
}
