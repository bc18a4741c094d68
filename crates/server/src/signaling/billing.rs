//! Money in the signaling task: each billed call's [`Meter`] (the ledger crate's), driven
//! by the call's one owner like its session and its core. A toll-free call's funding is
//! decided before its answer (a refusal is a 4xx through `refusal.rs`), its answer waits
//! until the first increment's row is committed, its increments are reserved ahead and
//! settled as they pass, and when the next cannot be paid for the caller hears the
//! notice and the call ends (a BYE with the cause's Reason). Toll calls, and every call
//! when `[money]` is not configured, have no meter.
//!
//! The ledger's writer thread reports each commit as a [`CallReport::Billing`]; nothing
//! here waits for the disk. Dial-out legs use the same [`Meter`]: open it with
//! `LegSpec::DialOut` before placing the leg, place it on `MeterEvent::Funded`, call
//! `answered` on its 200, and drive it with the calls' timers as below.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dialbridge_ledger::{Account, Committed, LegSpec, Meter, MeterEvent, Notify, Refusal, Usage};
use dialbridge_router::Charge;
use dialbridge_sip::dialog::DialogId;
use dialbridge_sip::rsip;

use super::Signaling;
use super::admission::{Admission, Refused};
use super::call::Call;
use crate::call_flow::CallReport;
use crate::cdr::EndedBy;
use crate::refusal::EndCause;

/// How long a call waits for its first increment's row before it is refused: far more
/// than a commit takes (milliseconds), far less than a caller waits for an answer.
const FUNDING_WAIT: Duration = Duration::from_secs(10);
/// The ring time given to the session of a call whose answer waits for the ledger: the
/// 200 is sent from here once funded, never by the session's own timer.
const ANSWER_HELD: Duration = Duration::from_secs(24 * 3600);

/// A billed call's meter, and its answer while it waits for the first commit.
#[derive(Debug)]
pub(super) struct Billing {
    pub meter: Meter,
    waiting: Option<Waiting>,
}

/// An answer held until the first increment is committed.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// When the ring time is over.
    answer_at: Instant,
    /// When to stop waiting for the ledger.
    give_up_at: Instant,
}

impl Billing {
    pub fn new(meter: Meter) -> Billing {
        Billing {
            meter,
            waiting: None,
        }
    }

    /// The next deadline: giving up on the ledger, the held answer, or the meter's.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.waiting {
            Some(w) if self.meter.is_funded() => Some(w.answer_at),
            Some(w) => Some(w.give_up_at),
            None => self.meter.poll_timeout(),
        }
    }
}

impl Signaling {
    /// Who pays for an admitted call, before any port is opened: a meter with the first
    /// increment reserved, `None` for a call nobody bills, or the refusal (counted).
    pub(super) fn open_billing(&self, admission: &Admission) -> Result<Option<Meter>, Refused> {
        let grant = &admission.grant;
        if grant.charge() != Charge::TollFree {
            return Ok(None);
        }
        let id = admission.session.dialog().id();
        let leg = LegSpec::TollFreeInbound {
            number: grant.number().to_string(),
        };
        self.open_meter(id, grant.tenant(), leg).map_err(|refusal| {
            tracing::info!(
                tenant = grant.tenant(),
                number = %grant.number(),
                reason = refusal.as_str(),
                "toll-free call refused: nothing pays for it"
            );
            Refused::cause(admission.session.invite(), refusal)
        })
    }

    /// A meter for the leg `id` of `tenant` (a dial-out leg too: `LegSpec::DialOut`),
    /// its first increment reserved; its commits come back as [`CallReport::Billing`]
    /// for `id`. `Ok(None)` without `[money]`; a refusal is counted for `/metrics`.
    pub(super) fn open_meter(
        &self,
        id: &DialogId,
        tenant: &str,
        leg: LegSpec,
    ) -> Result<Option<Meter>, Refusal> {
        let dialog = id.clone();
        self.open_meter_reporting(&id.call_id, tenant, leg, move |committed| {
            CallReport::Billing {
                id: dialog.clone(),
                committed,
            }
        })
    }

    /// [`Self::open_meter`], its commits reported as `report` makes them (a dial-out's
    /// come before it has a dialog).
    pub(super) fn open_meter_reporting(
        &self,
        call_id: &str,
        tenant: &str,
        leg: LegSpec,
        report: impl Fn(Committed) -> CallReport + Send + Sync + 'static,
    ) -> Result<Option<Meter>, Refusal> {
        let Some(ledger) = &self.services.ledger else {
            return Ok(None);
        };
        let account = Account {
            tenant: tenant.to_string(),
            leg,
            call_id: call_id.to_string(),
        };
        let reports = self.reports_tx.clone();
        // Runs on the ledger's writer thread (never inside the runtime), so it may wait
        // while the signaling task catches up; once the task is gone it returns at once.
        let notify: Notify = Arc::new(move |committed: Committed| {
            let _ = reports.blocking_send(report(committed));
        });
        Meter::open(ledger, account, notify, SystemTime::now())
            .map(Some)
            .inspect_err(|refusal| self.services.money_refusals.count(*refusal))
    }

    /// The first response of a new call whose answer waits for its first increment's
    /// commit: 180 (the session rings until billing answers), or `None` when it need
    /// not wait.
    pub(super) fn hold_answer(
        call: &mut Call,
        answer_after: Duration,
        now: Instant,
    ) -> Option<rsip::Response> {
        let billing = call.billing.as_mut().filter(|b| !b.meter.is_funded())?;
        billing.waiting = Some(Waiting {
            answer_at: now + answer_after,
            give_up_at: now + FUNDING_WAIT,
        });
        Some(call.session.uas_mut()?.ring(now + ANSWER_HELD, now))
    }

    /// A reservation's commit came back from the ledger.
    pub(super) fn handle_billing_commit(
        &mut self,
        id: &DialogId,
        committed: Committed,
        now: Instant,
    ) {
        let Some(billing) = self.calls.get_mut(id).and_then(|c| c.billing.as_mut()) else {
            return; // the call ended meanwhile (its meter closed then)
        };
        billing.meter.handle_committed(committed);
        self.run_billing(id, now);
        self.settle(id, now);
    }

    /// The call's billing deadline may be due.
    pub(super) fn billing_timeout(&mut self, id: &DialogId, now: Instant) {
        let Some(billing) = self.calls.get_mut(id).and_then(|c| c.billing.as_mut()) else {
            return;
        };
        match billing.waiting {
            Some(w) if !billing.meter.is_funded() && now >= w.give_up_at => {
                tracing::error!(call_id = %id.call_id, "the ledger did not commit the call's first minute in time");
                self.hang_up(id, EndCause::BillingUnavailable.into(), EndedBy::Error, now);
                return;
            }
            Some(w) if billing.meter.is_funded() && now >= w.answer_at => {
                billing.waiting = None;
                self.answer_funded(id, now);
            }
            Some(_) => {}
            None => billing.meter.handle_timeout(now, SystemTime::now()),
        }
        self.run_billing(id, now);
    }

    /// The session answered: the first increment starts.
    pub(super) fn billing_answered(&mut self, id: &DialogId, now: Instant) {
        if let Some(billing) = self.calls.get_mut(id).and_then(|c| c.billing.as_mut()) {
            billing.meter.answered(now);
        }
    }

    /// Acts on what the meter said.
    fn run_billing(&mut self, id: &DialogId, now: Instant) {
        loop {
            let Some(call) = self.calls.get_mut(id) else {
                return;
            };
            let Some(billing) = call.billing.as_mut() else {
                return;
            };
            let Some(event) = billing.meter.poll_event() else {
                break;
            };
            match event {
                MeterEvent::Funded => {
                    if billing.waiting.is_some_and(|w| now >= w.answer_at) {
                        billing.waiting = None;
                        self.answer_funded(id, now);
                    }
                }
                MeterEvent::CannotFund(refusal) => {
                    self.services.money_refusals.count(refusal);
                    tracing::info!(call_id = %id.call_id, reason = refusal.as_str(), "the call's next minute cannot be paid for: it ends");
                    call.core.handle_cannot_fund();
                }
                MeterEvent::MustEnd => {
                    self.hang_up(id, EndCause::CreditsExhausted.into(), EndedBy::Bridge, now);
                    return;
                }
                MeterEvent::Refused(refusal) => {
                    // The shared ledger's database refused the first minute the book had
                    // allowed (another node spent the credits): refused as unfunded,
                    // with the cause an immediate refusal has. The call already rings, so
                    // the session's final answer carries it in its Reason.
                    self.services.money_refusals.count(refusal);
                    tracing::info!(call_id = %id.call_id, reason = refusal.as_str(), "toll-free call refused: nothing pays for it");
                    self.hang_up(id, refusal.into(), EndedBy::Bridge, now);
                    return;
                }
                MeterEvent::Failed(e) => {
                    tracing::error!(call_id = %id.call_id, error = %e, "the ledger could not record what pays for the call: it ends");
                    self.hang_up(id, EndCause::BillingUnavailable.into(), EndedBy::Error, now);
                    return;
                }
            }
        }
        self.run_steps(id, now);
    }

    /// The 200 of a call whose answer waited for its funding.
    fn answer_funded(&mut self, id: &DialogId, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Some(key) = call.session.invite_key().cloned() else {
            return;
        };
        let Some(session) = call.session.uas_mut() else {
            return;
        };
        let response = session.answer(now);
        self.respond(&key, response, now);
    }
}

/// Closes the call's meter (if billed) and returns what it used, for its record.
pub(super) fn close(call: &mut Call) -> Option<Usage> {
    let billing = call.billing.as_mut()?;
    Some(billing.meter.close(Instant::now(), SystemTime::now()))
}
