//! The capacity reservations of calls: [`Grant`], an admitted call's, gives back the
//! number's, the bridge's and the trunk's capacity exactly once, when dropped — whatever
//! ended the call: BYE from either side, CANCEL, a failed answer, a timeout, a transport
//! error, or a panic in the call's task (unwinding drops it too). [`DialOutGrant`] does
//! the same for a dial-out, which holds no number of ours: the bridge's and the trunk's
//! capacity, the very counters inbound calls take, so a full trunk refuses both ways.
//! Both say the [`Limits`] they were taken under, for a check shared with other nodes.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::e164::E164;
use crate::live::{NumberLive, Shared, Topology};
use crate::model::{BridgeId, Charge, NumberKind, Provider, TenantId, TrunkId};

/// An admitted call's reservation, and what the rest of the call needs to know about it.
///
/// Not `Clone`: one grant, one release. It holds the plan snapshot it was admitted under,
/// so it releases into the counters it took from even after a reload or a number move.
pub struct Grant {
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    number: E164,
    live: NumberLive,
    bridge: BridgeId,
    tenant: TenantId,
    trunk: TrunkId,
}

impl Grant {
    pub(crate) fn new(
        shared: Arc<Shared>,
        topology: Arc<Topology>,
        number: E164,
        live: NumberLive,
        bridge: BridgeId,
        tenant: TenantId,
        trunk: TrunkId,
    ) -> Self {
        Self {
            shared,
            topology,
            number,
            live,
            bridge,
            tenant,
            trunk,
        }
    }

    /// The dialled number.
    pub fn number(&self) -> E164 {
        self.number
    }

    /// Service or user number.
    pub fn kind(&self) -> NumberKind {
        self.live.kind
    }

    /// Toll or toll-free (who pays: billing needs it).
    pub fn charge(&self) -> Charge {
        self.live.charge
    }

    /// The number's provider.
    pub fn provider(&self) -> Option<&Provider> {
        self.topology.provider(self.live.provider)
    }

    /// The tenant owning the bridge (conference IDs are looked up within it).
    pub fn tenant(&self) -> &str {
        self.topology.tenant_name(self.tenant)
    }

    /// The bridge the call reached.
    pub fn bridge(&self) -> &str {
        self.topology.bridge_name(self.bridge)
    }

    /// The trunk (or softphone pseudo-trunk) the call came over.
    pub fn trunk(&self) -> TrunkId {
        self.trunk
    }

    /// The trunk's name.
    pub fn trunk_name(&self) -> &str {
        self.topology.trunk_name(self.trunk)
    }

    /// Whether the call came from a digest-authenticated softphone.
    pub fn via_softphone(&self) -> bool {
        self.topology
            .trunk_live(self.trunk)
            .is_some_and(|(_, live)| live.provider.is_none())
    }

    pub(crate) fn bridge_id(&self) -> BridgeId {
        self.bridge
    }

    /// The number's, the bridge's and the trunk's limits as the plan had them when this
    /// grant was taken: what a check across nodes holds the same call to.
    pub fn limits(&self) -> Limits {
        Limits {
            number: Some(self.live.capacity.get()),
            ..limits(&self.topology, self.bridge, self.trunk)
        }
    }
}

/// The concurrent-call limits a reservation was taken under (`number`: `None` for a
/// dial-out, which holds no number of ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub number: Option<u32>,
    pub bridge: u32,
    pub trunk: u32,
}

/// The bridge's and trunk's limits in `topology` (0, refusing all, for one gone since:
/// a grant is only ever made while both are in the plan).
fn limits(topology: &Topology, bridge: BridgeId, trunk: TrunkId) -> Limits {
    Limits {
        number: None,
        bridge: topology.bridge_live(bridge).map_or(0, |b| b.capacity.get()),
        trunk: topology
            .trunk_live(trunk)
            .map_or(0, |(_, t)| t.max_sessions.get()),
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(trunk) = self.topology.trunks.get(self.trunk.index()) {
            trunk.gauge.release();
        }
        if let Some(bridge) = self.topology.bridges.get(self.bridge.index()) {
            bridge.gauge.release();
        }
        self.shared.release_number(self.number);
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("number", &self.number)
            .field("tenant", &self.tenant())
            .field("bridge", &self.bridge())
            .field("trunk", &self.trunk_name())
            .finish()
    }
}

/// A dial-out's reservation of its bridge's and its trunk's capacity, with where its
/// INVITE goes. Not `Clone`: one reservation, one release, on drop. Like [`Grant`], it
/// holds the plan snapshot it was made under and releases into the same gauges after a
/// reload.
pub struct DialOutGrant {
    topology: Arc<Topology>,
    bridge: BridgeId,
    tenant: TenantId,
    trunk: TrunkId,
    target: SocketAddr,
}

impl DialOutGrant {
    pub(crate) fn new(
        topology: Arc<Topology>,
        bridge: BridgeId,
        tenant: TenantId,
        trunk: TrunkId,
        target: SocketAddr,
    ) -> Self {
        Self {
            topology,
            bridge,
            tenant,
            trunk,
            target,
        }
    }

    /// The trunk the dial-out leaves through.
    pub fn trunk(&self) -> TrunkId {
        self.trunk
    }

    /// The trunk's name.
    pub fn trunk_name(&self) -> &str {
        self.topology.trunk_name(self.trunk)
    }

    /// The trunk's outbound target as the plan had it when reserved: where the INVITE
    /// goes (UDP).
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The trunk's provider.
    pub fn provider(&self) -> Option<&Provider> {
        let (_, live) = self.topology.trunk_live(self.trunk)?;
        self.topology.provider(live.provider?)
    }

    /// The bridge of the meeting that dials out.
    pub fn bridge(&self) -> &str {
        self.topology.bridge_name(self.bridge)
    }

    /// The tenant owning the bridge.
    pub fn tenant(&self) -> &str {
        self.topology.tenant_name(self.tenant)
    }

    /// The bridge's and the trunk's limits as the plan had them when reserved.
    pub fn limits(&self) -> Limits {
        limits(&self.topology, self.bridge, self.trunk)
    }
}

impl Drop for DialOutGrant {
    fn drop(&mut self) {
        if let Some(trunk) = self.topology.trunks.get(self.trunk.index()) {
            trunk.gauge.release();
        }
        if let Some(bridge) = self.topology.bridges.get(self.bridge.index()) {
            bridge.gauge.release();
        }
    }
}

impl fmt::Debug for DialOutGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialOutGrant")
            .field("tenant", &self.tenant())
            .field("bridge", &self.bridge())
            .field("trunk", &self.trunk_name())
            .field("target", &self.target)
            .finish()
    }
}
