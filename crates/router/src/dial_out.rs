//! Dial-outs from meetings: which trunks a tenant's (or an organiser's) dial-out may
//! leave through, in order, under its licence (shared/DOMAIN.md: Audio Conferencing
//! Standard through Microsoft or an operator, as the admin chooses; Operator Connect
//! Conferencing through operators only), and the capacity a dial-out reserves.
//!
//! A route is checked twice: when the plan is built (a route the licence forbids, or
//! naming a trunk with no outbound target, is a config fault) and at every decision (a
//! licence changed through the admin API, or a trunk gone in a reload, is filtered out
//! then). The route's order is the admin's; trunk health is not the router's business:
//! the server skips the trunks it found down.

use std::sync::Arc;

use crate::decision::{RejectReason, Rejection};
use crate::error::Error;
use crate::grant::DialOutGrant;
use crate::live::Topology;
use crate::model::{BridgeId, TrunkId};
use crate::plan::Plan;
use crate::router::Router;

impl Plan {
    /// Sets the dial-out route of `tenant` (added before): its trunks (added before, each
    /// with an outbound target, each allowed by the tenant's licence, none twice), in the
    /// order they are tried. An empty route means the tenant places no dial-outs. A
    /// tenant without one gets the default: every allowed trunk with an outbound target,
    /// Microsoft's first, then the operators' in plan order.
    pub fn set_dial_out_route(&mut self, tenant: &str, trunks: &[&str]) -> Result<(), Error> {
        let index = self.tenant_index(tenant)?;
        let route = self.checked_route(index, &format!("tenant \"{tenant}\""), trunks)?;
        if let Some(def) = self.tenants.get_mut(index) {
            def.dial_out_route = Some(route);
        }
        Ok(())
    }

    /// Gives one organiser of `tenant` (by sign-in name, without case) a dial-out route
    /// of their own, checked as [`Plan::set_dial_out_route`] checks a tenant's.
    pub fn add_dial_out_override(
        &mut self,
        tenant: &str,
        organiser: &str,
        trunks: &[&str],
    ) -> Result<(), Error> {
        let index = self.tenant_index(tenant)?;
        let key = organiser_key(organiser);
        if key.is_empty() {
            return Err(Error::EmptyOrganiser(tenant.to_owned()));
        }
        let key: Arc<str> = key.into();
        if self.dial_out_overrides.contains_key(&(index, key.clone())) {
            return Err(Error::DuplicateOverride {
                tenant: tenant.to_owned(),
                organiser: organiser.to_owned(),
            });
        }
        let owner = format!("organiser \"{organiser}\" of tenant \"{tenant}\"");
        let route = self.checked_route(index, &owner, trunks)?;
        self.dial_out_overrides.insert((index, key), route);
        Ok(())
    }

    fn tenant_index(&self, tenant: &str) -> Result<usize, Error> {
        self.tenant_names
            .get(tenant)
            .copied()
            .ok_or_else(|| Error::NoSuchTenant(tenant.to_owned()))
    }

    /// `trunks` as plan indices, each checked; `owner` names the route in faults.
    fn checked_route(
        &self,
        tenant: usize,
        owner: &str,
        trunks: &[&str],
    ) -> Result<Vec<usize>, Error> {
        let tenant = self
            .tenants
            .get(tenant)
            .ok_or_else(|| Error::NoSuchTenant(owner.to_owned()))?;
        let mut route = Vec::with_capacity(trunks.len());
        for &name in trunks {
            let (owner, trunk) = (owner.to_owned(), name.to_owned());
            let Some((index, def)) = self
                .trunk_names
                .get(name)
                .and_then(|&i| Some((i, self.trunks.get(i)?)))
            else {
                return Err(Error::UnknownRouteTrunk { owner, trunk });
            };
            if def.outbound.is_none() {
                return Err(Error::TrunkWithoutOutbound { owner, trunk });
            }
            let allowed = self
                .providers
                .get(usize::from(def.provider))
                .is_some_and(|p| tenant.licence.dials_out_through(p));
            if !allowed {
                let tenant = tenant.name.to_string();
                return Err(Error::LicenceForbidsDialOutTrunk {
                    owner,
                    trunk,
                    tenant,
                });
            }
            if route.contains(&index) {
                return Err(Error::DuplicateRouteTrunk { owner, trunk });
            }
            route.push(index);
        }
        Ok(route)
    }
}

impl Router {
    /// The trunks a dial-out of `tenant`'s meeting (organised by `organiser`, whose own
    /// route comes first when there is one) may leave through, in the order to try:
    /// licence-filtered, each with an outbound target. Refused as
    /// [`RejectReason::NoDialOutRoute`] when there is none (or no such tenant).
    pub fn dial_out_trunks(
        &self,
        tenant: &str,
        organiser: Option<&str>,
    ) -> Result<Vec<TrunkId>, Rejection> {
        let trunks = self
            .shared
            .topology
            .load()
            .dial_out_route(tenant, organiser);
        if trunks.is_empty() {
            let reason = RejectReason::NoDialOutRoute;
            self.shared.rejected.add(reason);
            tracing::info!(tenant, outcome = reason.as_str(), "dial-out refused");
            return Err(Rejection {
                reason,
                number: None,
            });
        }
        Ok(trunks)
    }

    /// Reserves a dial-out from a meeting on `bridge` through `trunk`: one session of the
    /// bridge's capacity and of the trunk's `max_sessions`, the counters inbound calls
    /// take (and show in the same gauges), held until the grant is dropped. Checks, in
    /// order: the trunk is in the plan, the bridge is, the trunk has an outbound target,
    /// the tenant's licence allows the trunk's provider, the bridge is enabled, then
    /// the capacities. It does not check the route: [`Router::dial_out_trunks`] orders
    /// the candidates, this guards the licence whatever the caller picked.
    pub fn reserve_dial_out(
        &self,
        bridge: &str,
        trunk: TrunkId,
    ) -> Result<DialOutGrant, Rejection> {
        let topology = self.shared.topology.load_full();
        let trunk_slot = topology.trunk_live(trunk).map(|(slot, _)| slot);
        match admit_dial_out(&topology, bridge, trunk) {
            Ok(grant) => {
                self.shared
                    .admitted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(slot) = trunk_slot {
                    slot.gauge.admitted();
                }
                let slot = topology.bridge_ids.get(bridge);
                if let Some(b) = slot.and_then(|id| topology.bridges.get(id.index())) {
                    b.gauge.admitted();
                }
                tracing::info!(
                    tenant = grant.tenant(),
                    bridge,
                    trunk = grant.trunk_name(),
                    outcome = "admitted",
                    "dial-out admitted"
                );
                Ok(grant)
            }
            Err((reason, bridge_id)) => {
                self.shared.rejected.add(reason);
                if let Some(slot) = trunk_slot {
                    slot.gauge.reject(reason);
                }
                if let Some(b) = bridge_id.and_then(|b| topology.bridges.get(b.index())) {
                    b.gauge.reject(reason);
                }
                tracing::info!(
                    bridge,
                    trunk = topology.trunk_name(trunk),
                    outcome = reason.as_str(),
                    "dial-out refused"
                );
                Err(Rejection {
                    reason,
                    number: None,
                })
            }
        }
    }
}

/// The checks and the reservation of [`Router::reserve_dial_out`]; a refusal names the
/// bridge when it got that far (for its counters).
fn admit_dial_out(
    topology: &Arc<Topology>,
    bridge: &str,
    trunk: TrunkId,
) -> Result<DialOutGrant, (RejectReason, Option<BridgeId>)> {
    let (trunk_slot, trunk_live) = topology
        .trunk_live(trunk)
        .ok_or((RejectReason::UnknownTrunk, None))?;
    let (bridge_id, bridge_live) = topology
        .bridge_ids
        .get(bridge)
        .and_then(|&id| Some((id, topology.bridge_live(id)?)))
        .ok_or((RejectReason::UnknownBridge, None))?;
    let refused = |reason| (reason, Some(bridge_id));
    let (Some(target), Some(provider)) = (trunk_live.outbound, trunk_live.provider) else {
        return Err(refused(RejectReason::NoDialOutRoute));
    };
    let allowed = topology
        .licence(bridge_live.tenant)
        .zip(topology.provider(provider))
        .is_some_and(|(licence, provider)| licence.dials_out_through(provider));
    if !allowed {
        return Err(refused(RejectReason::LicenceForbidsProvider));
    }
    if !bridge_live.enabled {
        return Err(refused(RejectReason::BridgeDisabled));
    }
    let bridge_gauge = topology.bridges.get(bridge_id.index()).map(|b| &b.gauge);
    if !bridge_gauge.is_some_and(|g| g.try_acquire(bridge_live.capacity.get())) {
        return Err(refused(RejectReason::BridgeOverloaded));
    }
    if !trunk_slot.gauge.try_acquire(trunk_live.max_sessions.get()) {
        if let Some(g) = bridge_gauge {
            g.release();
        }
        return Err(refused(RejectReason::TrunkOverloaded));
    }
    Ok(DialOutGrant::new(
        topology.clone(),
        bridge_id,
        bridge_live.tenant,
        trunk,
        target,
    ))
}

impl Topology {
    /// The route of `tenant` (or of `organiser`, when they have their own), filtered
    /// to the trunks still in the plan, with an outbound target, that the tenant's
    /// licence allows now; the default route when none was chosen.
    pub(crate) fn dial_out_route(&self, tenant: &str, organiser: Option<&str>) -> Vec<TrunkId> {
        let Some(&id) = self.tenant_ids.get(tenant) else {
            return Vec::new();
        };
        let Some((slot, licence)) = self
            .tenants
            .get(id.index())
            .and_then(|s| Some((s, s.licence?)))
        else {
            return Vec::new();
        };
        let allowed = |trunk: &TrunkId| {
            self.trunk_live(*trunk).is_some_and(|(_, live)| {
                live.outbound.is_some()
                    && live
                        .provider
                        .and_then(|p| self.provider(p))
                        .is_some_and(|p| licence.dials_out_through(p))
            })
        };
        let own = organiser.and_then(|o| {
            self.dial_out_overrides
                .get(&id)?
                .get(organiser_key(o).as_str())
        });
        if let Some(route) = own.or(slot.dial_out.as_ref()) {
            return route.iter().copied().filter(allowed).collect();
        }
        let mut trunks: Vec<TrunkId> = (0..self.trunks.len())
            .map(TrunkId::from_index)
            .filter(allowed)
            .collect();
        // Stable: Microsoft's first, the operators' in the order they were defined.
        trunks.sort_by_key(|t| !self.is_microsoft_trunk(*t));
        trunks
    }

    fn is_microsoft_trunk(&self, trunk: TrunkId) -> bool {
        self.trunk_live(trunk)
            .and_then(|(_, live)| self.provider(live.provider?))
            .is_some_and(|p| p.is_microsoft())
    }
}

/// How an organiser is keyed: sign-in names compare without case or surrounding space.
pub(crate) fn organiser_key(organiser: &str) -> String {
    organiser.trim().to_ascii_lowercase()
}
