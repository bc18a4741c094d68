//! The meter of one call (or one leg): what its owner — the signaling task — drives to
//! pay for it increment by increment, as prepaid telephony does. It is pure but for the
//! ledger operations it makes (decisions in memory; their rows go to the ledger's
//! writer thread) and reads no clock: the owner passes `now` (for increments) and the
//! wall clock (for rows and the pools' month).
//!
//! ```text
//!  open ──(reserve 1st)──> Reserved ──Funded──> answered(now) ──> Running
//!    │                        │                                 │ boundary − 5 s: reserve the next
//!    └─ Err(Refusal):         ├─ close: refund                  │ boundary: settle, next is current
//!       refuse the leg        └─ Refused (a shared database     │ next refused: CannotFund (play the
//!                                refused it): refuse the leg    │   notice), then MustEnd at the boundary
//!                                                               └─ close: settle current, refund next
//! ```
//!
//! With a ledger that other nodes share (PostgreSQL), a reservation the in-memory
//! balances allowed can still be refused when its row is written: the commit comes back
//! as `LedgerError::Refused`. The meter then acts as if the refusal had come at once:
//! the first increment's is [`MeterEvent::Refused`] (refuse the leg as unfunded), a
//! later one's [`MeterEvent::CannotFund`].
//!
//! The owner's part, for an inbound call or a dial-out leg alike:
//!
//! 1. Before answering (or placing) the leg: [`Meter::open`]. `Err(refusal)`: refuse it
//!    (nothing was taken). `Ok(meter)`: if [`Meter::is_funded`] go on at once (a free
//!    leg), else wait for [`MeterEvent::Funded`] — the first increment's row is then
//!    committed — before answering.
//! 2. Every [`Committed`] the `notify` callback receives (on the ledger's writer thread)
//!    goes back to this call's owner and into [`Meter::handle_committed`].
//! 3. When the leg is answered: [`Meter::answered`]; its first increment starts then.
//! 4. Arm a timer at [`Meter::poll_timeout`] and call [`Meter::handle_timeout`] when it
//!    fires; after each call, drain [`Meter::poll_event`].
//! 5. When the leg ends, for any reason: [`Meter::close`], which settles what was used,
//!    refunds what was not, and returns the [`Usage`] for the call record. (Dropping an
//!    open meter closes it on the wall clock.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::LedgerError;
use crate::book::Reservation;
use crate::funding::{Leg, Refusal, Source};
use crate::ledger::{Done, Ledger};
use crate::money::{Amount, Currency};
use crate::number::CountryCode;

/// How long before an increment ends the next one is reserved (at most half the
/// increment): its row is committed long before the audio it pays for starts, and a
/// call that cannot pay hears its notice within what it has paid.
pub const RESERVE_AHEAD: Duration = Duration::from_secs(5);

/// Receives, on the ledger's writer thread, the outcome of each reservation the meter
/// made; the owner hands it back to [`Meter::handle_committed`]. Keep it quick and
/// non-blocking towards the writer's other work (send it on a channel).
pub type Notify = Arc<dyn Fn(Committed) + Send + Sync>;

/// A reservation's row was committed, or its commit failed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Which of the meter's writes (its own numbering).
    pub write: u64,
    pub result: Result<(), LedgerError>,
}

/// Who pays for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub tenant: String,
    pub leg: LegSpec,
    /// The call the reservations are for (written in the reserve rows).
    pub call_id: String,
}

/// A [`Leg`] that owns its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegSpec {
    TollInbound,
    TollFreeInbound { number: String },
    DialOut { destination: String },
}

impl LegSpec {
    pub fn as_leg(&self) -> Leg<'_> {
        match self {
            LegSpec::TollInbound => Leg::TollInbound,
            LegSpec::TollFreeInbound { number } => Leg::TollFreeInbound { number },
            LegSpec::DialOut { destination } => Leg::DialOut { destination },
        }
    }
}

/// What the meter tells its owner.
#[derive(Debug, Clone)]
pub enum MeterEvent {
    /// The first increment's row is committed: the leg may be answered or placed.
    Funded,
    /// The next increment cannot be funded: play the short notice now and end the call
    /// (at the latest, [`MeterEvent::MustEnd`] comes when the paid time is over).
    CannotFund(Refusal),
    /// The paid time is over and nothing pays for more: end the call now.
    MustEnd,
    /// The first increment was refused when its row was written (another node spent
    /// the balance first): refuse the leg as unfunded, as if [`Meter::open`] had.
    Refused(Refusal),
    /// A reservation's row could not be committed: the call cannot be paid for; end it.
    Failed(LedgerError),
}

/// What a leg used, for its call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub currency: Currency,
    /// The pool that paid (a leg's number is in one country at most), and its seconds.
    pub pool: Option<CountryCode>,
    pub pool_seconds: u64,
    /// Seconds paid from credits, and what they cost.
    pub credit_seconds: u64,
    pub cost: Amount,
    /// What paid (or would have paid) the first increment.
    pub first: Source,
}

impl Usage {
    /// Seconds billed, whoever paid.
    pub fn billed_seconds(&self) -> u64 {
        self.pool_seconds + self.credit_seconds
    }

    /// The funding source as records name it: `credits`, `pool +1`, `pool +1, credits`
    /// (the pool ran out during the call), `free`.
    pub fn funding(&self) -> String {
        let first = match self.first {
            Source::Free => "free".to_string(),
            Source::Pool { country } => format!("pool {country}"),
            Source::Credits { .. } => "credits".to_string(),
        };
        match (self.pool, self.credit_seconds > 0) {
            (Some(country), true) => format!("pool {country}, credits"),
            (Some(country), false) => format!("pool {country}"),
            (None, true) => "credits".to_string(),
            (None, false) => first,
        }
    }
}

/// The meter of one leg. See the module doc for how its owner drives it.
pub struct Meter {
    ledger: Ledger,
    account: Account,
    notify: Notify,
    increment: Duration,
    ahead: Duration,
    /// The increment in use (or waiting for the answer).
    current: Option<Slot>,
    /// The next one, reserved ahead.
    next: Option<Slot>,
    /// When the current increment ends; `None` until answered.
    boundary: Option<Instant>,
    /// The next increment was refused: the call ends at the boundary.
    exhausted: bool,
    must_end_told: bool,
    funded: bool,
    closed: bool,
    writes: u64,
    events: VecDeque<MeterEvent>,
    usage: Usage,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    reservation: Reservation,
    write: u64,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("account", &self.account)
            .field("funded", &self.funded)
            .field("boundary", &self.boundary)
            .field("exhausted", &self.exhausted)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// Decides the leg's funding and reserves its first increment (before the answer);
    /// `Err` refuses the leg and takes nothing. `notify` will hear of the reservation's
    /// commit (see [`Notify`]).
    pub fn open(
        ledger: &Ledger,
        account: Account,
        notify: Notify,
        wall: SystemTime,
    ) -> Result<Meter, Refusal> {
        let increment = Duration::from_secs(u64::from(ledger.config().increment_s));
        let currency = ledger
            .config()
            .tenant(&account.tenant)
            .map(|t| t.currency)
            .ok_or(Refusal::UnknownTenant)?;
        let mut meter = Meter {
            ledger: ledger.clone(),
            account,
            notify,
            increment,
            ahead: RESERVE_AHEAD.min(increment / 2),
            current: None,
            next: None,
            boundary: None,
            exhausted: false,
            must_end_told: false,
            funded: false,
            closed: false,
            writes: 0,
            events: VecDeque::new(),
            usage: Usage {
                currency,
                pool: None,
                pool_seconds: 0,
                credit_seconds: 0,
                cost: Amount::ZERO,
                first: Source::Free,
            },
        };
        if meter.account.leg.as_leg().kind().is_none() {
            // A toll leg: nothing to reserve, nothing to wait for.
            meter.funded = true;
            return Ok(meter);
        }
        let slot = meter.reserve(wall)?;
        meter.usage.first = slot.reservation.source;
        meter.current = Some(slot);
        Ok(meter)
    }

    /// Whether the leg may be answered or placed: the first increment is committed (or
    /// the leg is free).
    pub fn is_funded(&self) -> bool {
        self.funded
    }

    /// What paid (or will pay) the first increment.
    pub fn source(&self) -> Source {
        self.usage.first
    }

    /// The account it bills.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// A reservation's commit came back.
    pub fn handle_committed(&mut self, committed: Committed) {
        let is = |slot: &Option<Slot>| slot.is_some_and(|s| s.write == committed.write);
        let current = is(&self.current);
        let first = !self.funded;
        let which = if current {
            &mut self.current
        } else if is(&self.next) {
            &mut self.next
        } else {
            return; // a slot already settled, refunded or forgotten
        };
        match committed.result {
            Ok(()) => {
                if !self.funded {
                    self.funded = true;
                    self.events.push_back(MeterEvent::Funded);
                }
            }
            // Nothing was written: like a failed commit, the slot is forgotten.
            Err(LedgerError::Refused(refusal)) => {
                *which = None;
                if first {
                    self.events.push_back(MeterEvent::Refused(refusal));
                } else if !self.exhausted {
                    self.exhausted = true;
                    self.events.push_back(MeterEvent::CannotFund(refusal));
                    // The refused increment had already started (its boundary passed
                    // before the refusal came back): nothing pays for now, so end now.
                    if current && !self.must_end_told {
                        self.must_end_told = true;
                        self.events.push_back(MeterEvent::MustEnd);
                    }
                }
            }
            Err(e) => {
                // The ledger went back to its rows, where this reservation is not: it
                // must be neither settled nor refunded.
                *which = None;
                self.events.push_back(MeterEvent::Failed(e));
            }
        }
    }

    /// The leg was answered at `now`: its first increment starts.
    pub fn answered(&mut self, now: Instant) {
        if self.closed || self.boundary.is_some() || self.current.is_none() {
            return;
        }
        self.boundary = Some(now + self.increment);
    }

    /// When [`Meter::handle_timeout`] is next due: the next reservation ahead of the
    /// boundary, or the boundary.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed || self.must_end_told {
            return None;
        }
        let boundary = self.boundary?;
        if self.next.is_none() && !self.exhausted {
            return Some(boundary.checked_sub(self.ahead).unwrap_or(boundary));
        }
        Some(boundary)
    }

    /// Does what is due at `now`: reserve the next increment ahead, or at the boundary
    /// settle the current one and start the next (or say the call must end).
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        while !self.closed {
            let Some(boundary) = self.boundary else {
                return;
            };
            if self.next.is_none() && !self.exhausted && now + self.ahead >= boundary {
                match self.reserve(wall) {
                    Ok(slot) => self.next = Some(slot),
                    Err(refusal) => {
                        self.exhausted = true;
                        self.events.push_back(MeterEvent::CannotFund(refusal));
                    }
                }
            }
            if now < boundary {
                return;
            }
            match self.next.take() {
                Some(next) => {
                    self.settle_current(wall);
                    self.current = Some(next);
                    self.boundary = Some(boundary + self.increment);
                }
                None => {
                    if !self.must_end_told {
                        self.must_end_told = true;
                        self.events.push_back(MeterEvent::MustEnd);
                    }
                    return;
                }
            }
        }
    }

    /// What the owner must act on, in order.
    pub fn poll_event(&mut self) -> Option<MeterEvent> {
        self.events.pop_front()
    }

    /// The leg ended at `now`: settles the increment in use if it was answered ("a
    /// started minute is a minute"), refunds what was never used, and returns what the
    /// leg used. Closing again returns the same.
    pub fn close(&mut self, now: Instant, wall: SystemTime) -> Usage {
        if self.closed {
            return self.usage.clone();
        }
        self.closed = true;
        match self.boundary {
            Some(boundary) => {
                // A boundary passed unseen (a late timer): the next increment started.
                if now >= boundary && self.next.is_some() {
                    self.settle_current(wall);
                    self.current = self.next.take();
                }
                self.settle_current(wall);
            }
            None => {
                let unused = self.current.take();
                self.refund(unused, wall);
            }
        }
        let unused = self.next.take();
        self.refund(unused, wall);
        self.usage.clone()
    }

    fn reserve(&mut self, wall: SystemTime) -> Result<Slot, Refusal> {
        self.writes += 1;
        let write = self.writes;
        let notify = self.notify.clone();
        let done: Done = Box::new(move |result| notify(Committed { write, result }));
        let account = &self.account;
        let reservation = self.ledger.reserve(
            &account.tenant,
            account.leg.as_leg(),
            &account.call_id,
            wall,
            done,
        )?;
        Ok(Slot { reservation, write })
    }

    fn settle_current(&mut self, wall: SystemTime) {
        let Some(slot) = self.current.take() else {
            return;
        };
        let r = slot.reservation;
        // A failed settle leaves the reservation open in the rows, where the next start
        // settles it: the writer has logged it.
        if self.ledger.settle(r.id, wall, ignore()).is_ok() {
            let seconds = u64::from(r.seconds);
            match r.source {
                Source::Pool { country } => {
                    self.usage.pool = Some(country);
                    self.usage.pool_seconds += seconds;
                }
                Source::Credits { price, .. } => {
                    self.usage.credit_seconds += seconds;
                    self.usage.cost = self
                        .usage
                        .cost
                        .checked_add(price)
                        .unwrap_or(self.usage.cost);
                }
                Source::Free => {}
            }
        }
    }

    fn refund(&self, slot: Option<Slot>, wall: SystemTime) {
        if let Some(slot) = slot {
            let _ = self.ledger.refund(slot.reservation.id, wall, ignore());
        }
    }
}

impl Drop for Meter {
    /// An owner that forgot to close still pays for what was used and no more.
    fn drop(&mut self) {
        if !self.closed {
            self.close(Instant::now(), SystemTime::now());
        }
    }
}

/// A [`Done`] for rows nobody waits for (settle, refund: the writer logs a failure).
fn ignore() -> Done {
    Box::new(|_| {})
}
