//! The live router: `decide()` and the admin changes made while calls are up, over the
//! shared state in `live.rs`.
//!
//! Trunks, tenants and bridges (few) live in an immutable `Topology` behind an
//! `ArcSwap`: a decision loads it without a lock, a change copies it and swaps the
//! pointer. Numbers (millions) live in a `DashMap`, changed in place. Counters are never
//! part of a plan: a bridge's or trunk's gauge is an `Arc` carried from one topology to the
//! next by id, and a number's counter stays in its entry, which is not removed while calls
//! hold it. So calls in progress release into the right counter whatever changed meanwhile.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::decision::{RejectReason, Rejection};
use crate::e164::E164;
use crate::error::Error;
use crate::grant::Grant;
use crate::live::{BridgeLive, NumberLive, Shared, Slot, Topology};
use crate::metrics::{self, NumberStats, Rejections, Snapshot};
use crate::model::{BridgeId, Charge, Licence, NumberKind, Provider, TrunkId};
use crate::plan::{NumberSpec, Plan};

/// The call router. Cheap to clone (a handle on shared state); `Send + Sync`.
#[derive(Clone)]
pub struct Router {
    pub(crate) shared: Arc<Shared>,
}

/// A trunk as the router sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkInfo {
    /// Its name.
    pub name: Arc<str>,
    /// Its provider; `None` for the softphone pseudo-trunk.
    pub provider: Option<Provider>,
    /// Simultaneous sessions allowed.
    pub max_sessions: u32,
    /// Media goes back to where the caller's media comes from (latching), for callers
    /// behind a NAT; see [`crate::Plan::set_symmetric_rtp`].
    pub symmetric_rtp: bool,
    /// Where its dial-outs and OPTIONS go (UDP); `None`: it takes no dial-outs.
    pub outbound: Option<SocketAddr>,
}

/// A bridge as the router sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    /// Its name.
    pub name: Arc<str>,
    /// The tenant it serves.
    pub tenant: Arc<str>,
    /// Concurrent-call capacity.
    pub capacity: u32,
    /// False: it refuses new calls ([`RejectReason::BridgeDisabled`]).
    pub enabled: bool,
    /// Calls in progress.
    pub in_progress: u32,
}

/// A number as the router sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberInfo {
    /// The number.
    pub number: E164,
    /// Service or user.
    pub kind: NumberKind,
    /// Toll or toll-free.
    pub charge: Charge,
    /// Its provider.
    pub provider: Provider,
    /// The bridge it is assigned to, if any.
    pub bridge: Option<Arc<str>>,
    /// Concurrent-call capacity.
    pub capacity: u32,
    /// Calls in progress.
    pub in_progress: u32,
}

impl Router {
    /// A router running `plan`.
    pub fn new(plan: Plan) -> Self {
        let shared = Shared {
            topology: ArcSwap::from_pointee(Topology::empty(plan.numbering.clone())),
            numbers: DashMap::with_capacity(plan.numbers.len()),
            number_rejections: DashMap::new(),
            admitted: AtomicU64::new(0),
            rejected: Rejections::default(),
            writer: Mutex::new(()),
        };
        let router = Self {
            shared: Arc::new(shared),
        };
        router.replace_plan(plan);
        router
    }

    /// Installs a new plan (config reload). New calls see it as soon as this returns;
    /// calls in progress keep their reservations and release them into the same counters.
    pub fn replace_plan(&self, plan: Plan) {
        let _writer = self.shared.write_lock();
        let (topology, ids) = self.shared.topology.load().rebuild(&plan);
        self.shared.topology.store(Arc::new(topology));
        for (number, def) in &plan.numbers {
            let live = ids.number(def);
            self.shared
                .numbers
                .entry(*number)
                .and_modify(|slot| slot.live = Some(live))
                .or_insert_with(|| Slot::new(live));
        }
        // No other map is touched while `retain` holds a shard: `plan.numbers` is a plain map.
        self.shared.numbers.retain(|number, slot| {
            if plan.numbers.contains_key(number) {
                return true;
            }
            slot.live = None;
            slot.in_use.load(Ordering::Acquire) > 0
        });
        self.shared
            .number_rejections
            .retain(|number, _| plan.numbers.contains_key(number));
        tracing::info!(
            numbers = plan.numbers.len(),
            trunks = plan.trunks.len(),
            bridges = plan.bridges.len(),
            "plan installed"
        );
    }

    /// The trunk whose source address `source` is (IPv4-mapped IPv6 is read as IPv4).
    pub fn identify_trunk(&self, source: IpAddr) -> Option<TrunkId> {
        self.shared
            .topology
            .load()
            .by_addr
            .get(&source.to_canonical())
            .copied()
    }

    /// The trunks whose TLS names are among `names` (a verified client certificate's DNS
    /// names, lower-case), each once: none, one, or (a certificate naming several
    /// trunks) more, which the caller must not pick from.
    pub fn trunks_by_certificate(&self, names: &[String]) -> Vec<TrunkId> {
        let topology = self.shared.topology.load();
        let mut trunks = Vec::new();
        for id in names
            .iter()
            .filter_map(|n| topology.by_tls_name.get(n.as_str()))
        {
            if !trunks.contains(id) {
                trunks.push(*id);
            }
        }
        trunks
    }

    /// What calls over `trunk` must come with (TLS, SRTP, a client certificate); the
    /// default, asking nothing, for the softphones and a trunk the plan no longer has.
    pub fn trunk_policy(&self, trunk: TrunkId) -> crate::TrunkPolicy {
        self.shared
            .topology
            .load()
            .trunk_live(trunk)
            .map(|(_, live)| live.policy)
            .unwrap_or_default()
    }

    /// The softphone pseudo-trunk, for digest-authenticated clients from any other address.
    pub fn softphone_trunk(&self) -> Option<TrunkId> {
        self.shared.topology.load().softphones
    }

    /// A trunk by name (the softphone pseudo-trunk included).
    pub fn trunk_by_name(&self, name: &str) -> Option<TrunkId> {
        let topology = self.shared.topology.load();
        let id = topology.trunk_ids.get(name).copied()?;
        topology.trunk_live(id).map(|_| id)
    }

    /// What the router knows of a trunk now.
    pub fn trunk(&self, id: TrunkId) -> Option<TrunkInfo> {
        trunk_info(&self.shared.topology.load(), id)
    }

    /// Every trunk in the plan now, the softphone pseudo-trunk included, in the order
    /// they were first defined.
    pub fn trunks(&self) -> Vec<(TrunkId, TrunkInfo)> {
        let topology = self.shared.topology.load();
        (0..topology.trunks.len())
            .map(TrunkId::from_index)
            .filter_map(|id| Some((id, trunk_info(&topology, id)?)))
            .collect()
    }

    /// Whether calls over `trunk` use symmetric RTP (latching); `false` for a trunk
    /// the plan no longer has.
    pub fn symmetric_rtp(&self, trunk: TrunkId) -> bool {
        self.shared
            .topology
            .load()
            .trunk_live(trunk)
            .is_some_and(|(_, live)| live.symmetric_rtp)
    }

    /// The dialled number of a Request-URI, completed by the plan's numbering.
    pub fn normalise(&self, request_uri: &str) -> Result<E164, Error> {
        self.shared.topology.load().numbering.normalise(request_uri)
    }

    /// Normalises the Request-URI and decides; a URI without a number is refused as
    /// [`RejectReason::NotANumber`].
    pub fn route(&self, trunk: TrunkId, request_uri: &str) -> Result<Grant, Rejection> {
        match self.normalise(request_uri) {
            Ok(number) => self.decide(trunk, number),
            Err(error) => {
                let reason = RejectReason::NotANumber;
                self.shared.rejected.add(reason);
                let topology = self.shared.topology.load();
                if let Some((slot, _)) = topology.trunk_live(trunk) {
                    slot.gauge.reject(reason);
                }
                tracing::info!(uri = ?request_uri, %error, outcome = reason.as_str(), "call refused");
                Err(Rejection {
                    reason,
                    number: None,
                })
            }
        }
    }

    /// Decides a call to `number` arriving over `trunk`, checking in the order of
    /// [`RejectReason::ALL`]: trunk still in the plan, number known, assigned, trunk's
    /// provider (skipped for softphones), tenant's licence, bridge enabled, then reserves
    /// the number's, the bridge's and the trunk's capacity. The [`Grant`] holds the
    /// reservation until dropped; a refusal names the check that failed.
    pub fn decide(&self, trunk: TrunkId, number: E164) -> Result<Grant, Rejection> {
        let topology = self.shared.topology.load_full();
        let outcome = self.admit(&topology, trunk, number);
        let trunk_name = topology.trunk_name(trunk);
        match outcome {
            Ok(grant) => {
                self.shared.admitted.fetch_add(1, Ordering::Relaxed);
                if let Some((slot, _)) = topology.trunk_live(trunk) {
                    slot.gauge.admitted();
                }
                if let Some(slot) = topology.bridges.get(grant.bridge_id().index()) {
                    slot.gauge.admitted();
                }
                tracing::info!(
                    %number,
                    trunk = trunk_name,
                    tenant = grant.tenant(),
                    bridge = grant.bridge(),
                    outcome = "admitted",
                    "call admitted"
                );
                Ok(grant)
            }
            Err(refusal) => {
                let reason = refusal.reason;
                self.shared.rejected.add(reason);
                if let Some((slot, _)) = topology.trunk_live(trunk) {
                    slot.gauge.reject(reason);
                }
                let bridge = refusal.bridge.and_then(|b| topology.bridges.get(b.index()));
                if let Some(slot) = bridge {
                    slot.gauge.reject(reason);
                }
                if refusal.known_number {
                    self.shared.count_number_rejection(number, reason);
                }
                let tenant = bridge
                    .and_then(|b| b.live)
                    .map_or("", |b| topology.tenant_name(b.tenant));
                tracing::info!(
                    %number,
                    trunk = trunk_name,
                    tenant,
                    bridge = bridge.map_or("", |b| &*b.name),
                    outcome = reason.as_str(),
                    "call refused"
                );
                Err(Rejection {
                    reason,
                    number: Some(number),
                })
            }
        }
    }

    fn admit(
        &self,
        topology: &Arc<Topology>,
        trunk: TrunkId,
        number: E164,
    ) -> Result<Grant, Refusal> {
        let (trunk_slot, trunk_live) = topology
            .trunk_live(trunk)
            .ok_or(Refusal::new(RejectReason::UnknownTrunk, None))?;
        // The number's guard is held only for the checks below, which read the topology
        // snapshot (no lock), and for the compare-and-swap on the number's own counter.
        let (live, bridge_id, bridge) = {
            let slot = self
                .shared
                .numbers
                .get(&number)
                .ok_or(Refusal::new(RejectReason::UnknownNumber, None))?;
            let live = slot
                .live
                .ok_or(Refusal::new(RejectReason::UnknownNumber, None))?;
            let known = |reason, bridge| Refusal {
                reason,
                bridge,
                known_number: true,
            };
            let (bridge_id, bridge) = live
                .bridge
                .and_then(|b| Some((b, topology.bridge_live(b)?)))
                .ok_or(known(RejectReason::Unassigned, None))?;
            if trunk_live.provider.is_some_and(|p| p != live.provider) {
                return Err(known(RejectReason::WrongProvider, Some(bridge_id)));
            }
            let allowed = topology
                .licence(bridge.tenant)
                .zip(topology.provider(live.provider))
                .is_some_and(|(licence, provider)| licence.allows(provider));
            if !allowed {
                return Err(known(RejectReason::LicenceForbidsProvider, Some(bridge_id)));
            }
            if !bridge.enabled {
                return Err(known(RejectReason::BridgeDisabled, Some(bridge_id)));
            }
            if !metrics::try_acquire(&slot.in_use, live.capacity.get()) {
                return Err(known(RejectReason::NumberBusy, Some(bridge_id)));
            }
            (live, bridge_id, bridge)
        };
        let bridge_gauge = topology.bridges.get(bridge_id.index()).map(|b| &b.gauge);
        if !bridge_gauge.is_some_and(|g| g.try_acquire(bridge.capacity.get())) {
            self.shared.release_number(number);
            return Err(Refusal {
                reason: RejectReason::BridgeOverloaded,
                bridge: Some(bridge_id),
                known_number: true,
            });
        }
        if !trunk_slot.gauge.try_acquire(trunk_live.max_sessions.get()) {
            if let Some(g) = bridge_gauge {
                g.release();
            }
            self.shared.release_number(number);
            return Err(Refusal {
                reason: RejectReason::TrunkOverloaded,
                bridge: Some(bridge_id),
                known_number: true,
            });
        }
        Ok(Grant::new(
            self.shared.clone(),
            topology.clone(),
            number,
            live,
            bridge_id,
            bridge.tenant,
            trunk,
        ))
    }

    /// What the router knows of a number now.
    pub fn number(&self, number: E164) -> Option<NumberInfo> {
        let topology = self.shared.topology.load();
        let (live, in_progress) = {
            let slot = self.shared.numbers.get(&number)?;
            (slot.live?, slot.in_use.load(Ordering::Acquire))
        };
        Some(NumberInfo {
            number,
            kind: live.kind,
            charge: live.charge,
            provider: topology.provider(live.provider)?.clone(),
            bridge: live
                .bridge
                .and_then(|b| topology.bridges.get(b.index()))
                .map(|b| b.name.clone()),
            capacity: live.capacity.get(),
            in_progress,
        })
    }

    /// Every number in the plan now (config, reloads and API changes), in order.
    /// Walks every number: for listings, not for calls.
    pub fn numbers(&self) -> Vec<E164> {
        let mut numbers: Vec<E164> = self
            .shared
            .numbers
            .iter()
            .filter(|e| e.live.is_some())
            .map(|e| *e.key())
            .collect();
        numbers.sort_unstable();
        numbers
    }

    /// Every bridge in the plan now, in the plan's order of first appearance.
    pub fn bridges(&self) -> Vec<BridgeInfo> {
        let topology = self.shared.topology.load();
        topology
            .bridges
            .iter()
            .filter_map(|b| {
                let live = b.live?;
                Some(BridgeInfo {
                    name: b.name.clone(),
                    tenant: topology.tenants.get(live.tenant.index())?.name.clone(),
                    capacity: live.capacity.get(),
                    enabled: live.enabled,
                    in_progress: b.gauge.in_use(),
                })
            })
            .collect()
    }

    /// The bridge called `name`, if it is in the plan.
    pub fn bridge(&self, name: &str) -> Option<BridgeInfo> {
        self.bridges().into_iter().find(|b| &*b.name == name)
    }

    /// Adds a number to the plan (admin API).
    pub fn add_number(&self, spec: NumberSpec<'_>) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        let mut topology = self.shared.topology.load_full();
        let provider = Provider::from_name(spec.provider);
        let provider_id = match topology.provider_ids.get(&provider) {
            Some(id) => *id,
            None => {
                let mut next = Topology::clone(&topology);
                let id = next.intern_provider(&provider);
                topology = Arc::new(next);
                id
            }
        };
        let capacity = match spec.capacity {
            Some(c) => NonZeroU32::new(c).ok_or_else(|| Error::ZeroCapacity {
                what: format!("number {}", spec.number),
            })?,
            None => match spec.kind {
                NumberKind::Service => topology.service_capacity,
                NumberKind::User => topology.user_capacity,
            },
        };
        let bridge = match spec.bridge {
            Some(name) => Some(topology.check_assignment(spec.number, &provider, name)?),
            None => None,
        };
        let live = NumberLive {
            capacity,
            bridge,
            provider: provider_id,
            kind: spec.kind,
            charge: spec.charge,
        };
        if self
            .shared
            .numbers
            .get(&spec.number)
            .is_some_and(|slot| slot.live.is_some())
        {
            return Err(Error::DuplicateNumber(spec.number));
        }
        self.shared.topology.store(topology);
        // A withdrawn entry with calls still up is revived with its counter.
        self.shared
            .numbers
            .entry(spec.number)
            .and_modify(|slot| slot.live = Some(live))
            .or_insert_with(|| Slot::new(live));
        Ok(())
    }

    /// Assigns a number to a bridge, or moves it to another (admin API). Calls in progress
    /// stay counted on the bridge they reached.
    pub fn assign_number(&self, number: E164, bridge: &str) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        let topology = self.shared.topology.load();
        let provider = {
            let slot = self.shared.numbers.get(&number);
            let live = slot
                .as_ref()
                .and_then(|s| s.live)
                .ok_or(Error::NoSuchNumber(number))?;
            topology.provider(live.provider).cloned()
        };
        let provider = provider.ok_or(Error::NoSuchNumber(number))?;
        let bridge = topology.check_assignment(number, &provider, bridge)?;
        self.shared.update_number(number, |live| {
            live.bridge = Some(bridge);
            Ok(())
        })
    }

    /// Leaves a number in the plan, assigned to nothing: its calls are refused as
    /// [`RejectReason::Unassigned`].
    pub fn unassign_number(&self, number: E164) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        self.shared.update_number(number, |live| {
            live.bridge = None;
            Ok(())
        })
    }

    /// Removes a number from the plan (given back to its provider). Calls in progress keep
    /// their reservation; the number is unknown to new calls.
    pub fn release_number(&self, number: E164) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        let idle = {
            let mut slot = self
                .shared
                .numbers
                .get_mut(&number)
                .filter(|s| s.live.is_some())
                .ok_or(Error::NoSuchNumber(number))?;
            slot.live = None;
            slot.in_use.load(Ordering::Acquire) == 0
        };
        if idle {
            self.shared.remove_if_withdrawn(number);
        }
        self.shared.number_rejections.remove(&number);
        Ok(())
    }

    /// Changes a number's concurrent-call capacity. Lowering it below the calls in progress
    /// ends none of them; new calls wait until the count is below the new capacity.
    pub fn set_number_capacity(&self, number: E164, capacity: u32) -> Result<(), Error> {
        let capacity = NonZeroU32::new(capacity).ok_or_else(|| Error::ZeroCapacity {
            what: format!("number {number}"),
        })?;
        let _writer = self.shared.write_lock();
        self.shared.update_number(number, |live| {
            live.capacity = capacity;
            Ok(())
        })
    }

    /// Changes a bridge's capacity.
    pub fn set_bridge_capacity(&self, bridge: &str, capacity: u32) -> Result<(), Error> {
        let capacity = NonZeroU32::new(capacity).ok_or_else(|| Error::ZeroCapacity {
            what: format!("bridge \"{bridge}\""),
        })?;
        self.update_bridge(bridge, |b| b.capacity = capacity)
    }

    /// Enables or disables a bridge; a disabled bridge refuses new calls
    /// ([`RejectReason::BridgeDisabled`]).
    pub fn set_bridge_enabled(&self, bridge: &str, enabled: bool) -> Result<(), Error> {
        self.update_bridge(bridge, |b| b.enabled = enabled)
    }

    /// Changes a trunk's (or the softphone pseudo-trunk's) maximum of sessions.
    pub fn set_trunk_capacity(&self, trunk: &str, max_sessions: u32) -> Result<(), Error> {
        let max_sessions = NonZeroU32::new(max_sessions).ok_or_else(|| Error::ZeroCapacity {
            what: format!("trunk \"{trunk}\""),
        })?;
        let _writer = self.shared.write_lock();
        let mut next = Topology::clone(&self.shared.topology.load());
        let live = next
            .trunk_ids
            .get(trunk)
            .and_then(|id| next.trunks.get_mut(id.index()))
            .and_then(|slot| slot.live.as_mut())
            .ok_or_else(|| Error::NoSuchTrunk(trunk.to_owned()))?;
        live.max_sessions = max_sessions;
        self.shared.topology.store(Arc::new(next));
        Ok(())
    }

    /// Changes a tenant's licence. Numbers stay assigned: calls to numbers the new licence
    /// does not allow are refused ([`RejectReason::LicenceForbidsProvider`]) until the
    /// admin moves them.
    pub fn set_tenant_licence(&self, tenant: &str, licence: Licence) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        let mut next = Topology::clone(&self.shared.topology.load());
        let slot = next
            .tenant_ids
            .get(tenant)
            .and_then(|id| next.tenants.get_mut(id.index()))
            .and_then(|slot| slot.licence.as_mut())
            .ok_or_else(|| Error::NoSuchTenant(tenant.to_owned()))?;
        *slot = licence;
        self.shared.topology.store(Arc::new(next));
        Ok(())
    }

    fn update_bridge(
        &self,
        bridge: &str,
        change: impl FnOnce(&mut BridgeLive),
    ) -> Result<(), Error> {
        let _writer = self.shared.write_lock();
        let mut next = Topology::clone(&self.shared.topology.load());
        let live = next
            .bridge_ids
            .get(bridge)
            .and_then(|id| next.bridges.get_mut(id.index()))
            .and_then(|slot| slot.live.as_mut())
            .ok_or_else(|| Error::NoSuchBridge(bridge.to_owned()))?;
        change(live);
        self.shared.topology.store(Arc::new(next));
        Ok(())
    }

    /// Counters for the metrics endpoint. Walks every number (a few ms for millions);
    /// meant for a scrape every few seconds, not for every call.
    pub fn snapshot(&self) -> Snapshot {
        let topology = self.shared.topology.load();
        let trunks = topology
            .trunks
            .iter()
            .map(|t| {
                t.gauge
                    .stats(t.name.clone(), t.live.map(|l| l.max_sessions.get()))
            })
            .collect();
        let bridges = topology
            .bridges
            .iter()
            .map(|b| {
                b.gauge
                    .stats(b.name.clone(), b.live.map(|l| l.capacity.get()))
            })
            .collect();
        let mut numbers: Vec<NumberStats> = self
            .shared
            .numbers
            .iter()
            .filter(|e| e.in_use.load(Ordering::Acquire) > 0)
            .map(|e| NumberStats {
                number: *e.key(),
                in_progress: e.in_use.load(Ordering::Acquire),
                capacity: e.live.map(|l| l.capacity.get()),
                rejected: Default::default(),
            })
            .collect();
        // Copied out first: never hold a guard of one map while reading the other.
        let rejected: Vec<(E164, metrics::ReasonCounts)> = self
            .shared
            .number_rejections
            .iter()
            .map(|e| (*e.key(), e.value().counts()))
            .collect();
        let mut index: HashMap<E164, usize> = numbers
            .iter()
            .enumerate()
            .map(|(i, n)| (n.number, i))
            .collect();
        for (number, counts) in rejected {
            match index.get(&number).and_then(|i| numbers.get_mut(*i)) {
                Some(n) => n.rejected = counts,
                None => {
                    if let Some(mut stats) = self.number_stats(number) {
                        stats.rejected = counts;
                        index.insert(number, numbers.len());
                        numbers.push(stats);
                    }
                }
            }
        }
        numbers.sort_by_key(|n| n.number);
        Snapshot {
            admitted: self.shared.admitted.load(Ordering::Relaxed),
            rejected: self.shared.rejected.counts(),
            trunks,
            bridges,
            numbers,
        }
    }

    /// One number's counters (present while it is in the plan or calls hold it).
    pub fn number_stats(&self, number: E164) -> Option<NumberStats> {
        let (in_progress, capacity) = {
            let slot = self.shared.numbers.get(&number)?;
            (
                slot.in_use.load(Ordering::Acquire),
                slot.live.map(|l| l.capacity.get()),
            )
        };
        let rejected = self
            .shared
            .number_rejections
            .get(&number)
            .map(|r| r.counts())
            .unwrap_or_default();
        Some(NumberStats {
            number,
            in_progress,
            capacity,
            rejected,
        })
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("numbers", &self.shared.numbers.len())
            .field("admitted", &self.shared.admitted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn trunk_info(topology: &Topology, id: TrunkId) -> Option<TrunkInfo> {
    let (slot, live) = topology.trunk_live(id)?;
    Some(TrunkInfo {
        name: slot.name.clone(),
        provider: live.provider.and_then(|p| topology.provider(p)).cloned(),
        max_sessions: live.max_sessions.get(),
        symmetric_rtp: live.symmetric_rtp,
        outbound: live.outbound,
    })
}

/// Why `admit` refused, with what the metrics need.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    reason: RejectReason,
    bridge: Option<BridgeId>,
    known_number: bool,
}

impl Refusal {
    fn new(reason: RejectReason, bridge: Option<BridgeId>) -> Self {
        Self {
            reason,
            bridge,
            known_number: false,
        }
    }
}
