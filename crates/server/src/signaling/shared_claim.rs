//! A new call's capacity on every node (`[shared] redis`): once this node's router has
//! admitted it, the same reservation is claimed in Redis before anything else is done
//! for the call. The claim runs on its own task; its outcome comes back as a
//! [`CallReport::SharedCapacity`], so the signaling task never waits on the network.
//! Meanwhile the INVITE's transaction absorbs retransmissions, and a CANCEL ends the
//! wait (the lease, if it comes, is given back when dropped). Redis not answering
//! refuses the call with 503: a call is never admitted without the check.

use std::time::Instant;

use dialbridge_router::RejectReason;
use dialbridge_sip::transaction::{PeerAddr, ServerKey};

use super::Signaling;
use super::admission::{Admission, Refused};
use crate::call_flow::CallReport;
use crate::refusal::{Cause, EndCause};
use crate::shared::{Claim, Lease, SharedCapacity, SharedRefusal};

/// An admitted INVITE waiting for its claim.
pub(super) struct Claiming {
    admission: Box<Admission>,
    peer: PeerAddr,
}

impl Signaling {
    /// Claims `admission`'s number, bridge and trunk on every node.
    pub(super) fn claim_shared(
        &mut self,
        key: ServerKey,
        admission: Admission,
        shared: SharedCapacity,
        peer: PeerAddr,
    ) {
        let grant = &admission.grant;
        let claim = Claim::call(
            &grant.number().to_string(),
            grant.bridge(),
            grant.trunk_name(),
            grant.limits(),
        );
        self.claiming.insert(
            key.clone(),
            Claiming {
                admission: Box::new(admission),
                peer,
            },
        );
        self.spawn_claim(shared, claim, |outcome| CallReport::SharedCapacity {
            key,
            outcome,
        });
    }

    /// Claims `claim` on its own task; the outcome comes back as `report` makes it.
    pub(super) fn spawn_claim(
        &self,
        shared: SharedCapacity,
        claim: Claim,
        report: impl FnOnce(Result<Lease, SharedRefusal>) -> CallReport + Send + 'static,
    ) {
        let reports = self.reports_tx.clone();
        tokio::spawn(async move {
            let outcome = shared.acquire(claim).await;
            let _ = reports.send(report(outcome)).await;
        });
    }

    /// The claim's outcome: the call goes on, or is refused as a full number, bridge or
    /// trunk would be on one node, or with 503 when Redis did not answer.
    pub(super) fn shared_claim_decided(
        &mut self,
        key: ServerKey,
        outcome: Result<Lease, SharedRefusal>,
        now: Instant,
    ) {
        let Some(Claiming { admission, peer }) = self.claiming.remove(&key) else {
            return; // cancelled meanwhile: a lease drops here, given back
        };
        match outcome {
            Ok(lease) => {
                let admission = Admission {
                    lease: Some(lease),
                    ..*admission
                };
                self.proceed(key, admission, peer, now);
            }
            Err(refusal) => {
                let grant = &admission.grant;
                tracing::info!(
                    number = %grant.number(),
                    trunk = grant.trunk_name(),
                    bridge = grant.bridge(),
                    outcome = ?refusal,
                    "call refused by the shared capacity"
                );
                let cause: Cause = match refusal {
                    SharedRefusal::NumberBusy => RejectReason::NumberBusy.into(),
                    SharedRefusal::BridgeOverloaded => RejectReason::BridgeOverloaded.into(),
                    SharedRefusal::TrunkOverloaded => RejectReason::TrunkOverloaded.into(),
                    SharedRefusal::Unavailable => EndCause::SharedStateUnavailable.into(),
                };
                let refused = Refused::cause(admission.session.invite(), cause);
                self.refuse(&key, refused, peer, now);
            }
        }
    }

    /// A CANCEL for an INVITE still waiting for its claim: 487, and the wait ends.
    /// Whether it was one.
    pub(super) fn cancel_claim(&mut self, key: &ServerKey, now: Instant) -> bool {
        let Some(mut claiming) = self.claiming.remove(key) else {
            return false;
        };
        if let Some(response) = claiming.admission.session.handle_cancel(now) {
            self.respond(key, response, now);
        }
        true
    }
}
