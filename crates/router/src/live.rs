//! The router's live state, shared by the [`crate::Router`] handle and every
//! [`crate::Grant`]: the installed topology (trunks, tenants, bridges in router ids,
//! swapped whole on a change), the numbers' entries and counters, and the refusal
//! counts. Both `router.rs` and `grant.rs` depend on this module, and it on neither, so
//! a grant can release into the counters without knowing the router.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::decision::RejectReason;
use crate::e164::E164;
use crate::error::Error;
use crate::metrics::{self, Gauge, Rejections};
use crate::model::{
    BridgeId, Charge, Licence, NumberKind, Provider, ProviderId, TenantId, TrunkId, TrunkPolicy,
};
use crate::numbering::Numbering;
use crate::plan::{NumberDef, Plan};

/// State shared by the router and its grants.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) topology: ArcSwap<Topology>,
    pub(crate) numbers: DashMap<E164, Slot>,
    /// Created on a number's first refusal, so idle numbers cost nothing here.
    pub(crate) number_rejections: DashMap<E164, Rejections>,
    pub(crate) admitted: AtomicU64,
    pub(crate) rejected: Rejections,
    /// Serialises plan changes (rare); decisions never take it.
    pub(crate) writer: Mutex<()>,
}

impl Shared {
    pub(crate) fn write_lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot have left it inconsistent.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives back one reservation of `number`, then drops its entry if it left the plan
    /// and this was its last call.
    pub(crate) fn release_number(&self, number: E164) {
        let withdrawn_and_idle = match self.numbers.get(&number) {
            Some(slot) => metrics::release(&slot.in_use) == 0 && slot.live.is_none(),
            None => {
                debug_assert!(false, "an entry holding calls was removed");
                false
            }
        };
        if withdrawn_and_idle {
            self.remove_if_withdrawn(number);
        }
    }

    pub(crate) fn remove_if_withdrawn(&self, number: E164) {
        self.numbers.remove_if(&number, |_, slot| {
            slot.live.is_none() && slot.in_use.load(Ordering::Acquire) == 0
        });
    }

    pub(crate) fn update_number(
        &self,
        number: E164,
        change: impl FnOnce(&mut NumberLive) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut slot = self
            .numbers
            .get_mut(&number)
            .ok_or(Error::NoSuchNumber(number))?;
        let live = slot.live.as_mut().ok_or(Error::NoSuchNumber(number))?;
        change(live)
    }

    pub(crate) fn count_number_rejection(&self, number: E164, reason: RejectReason) {
        if let Some(r) = self.number_rejections.get(&number) {
            r.add(reason);
            return;
        }
        self.number_rejections
            .entry(number)
            .or_default()
            .add(reason);
    }
}

/// A number's entry: its current definition (`None` once it left the plan while calls
/// still held it) and its reservation counter. 16 bytes.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) live: Option<NumberLive>,
    pub(crate) in_use: AtomicU32,
}

impl Slot {
    pub(crate) fn new(live: NumberLive) -> Self {
        Self {
            live: Some(live),
            in_use: AtomicU32::new(0),
        }
    }
}

/// A number's definition, in router ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumberLive {
    pub(crate) capacity: NonZeroU32,
    pub(crate) bridge: Option<BridgeId>,
    pub(crate) provider: ProviderId,
    pub(crate) kind: NumberKind,
    pub(crate) charge: Charge,
}

/// Trunks, tenants and bridges in router ids: every name ever installed keeps its slot
/// (with `live: None` once gone), so ids and gauges survive plan swaps.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    pub(crate) numbering: Numbering,
    pub(crate) service_capacity: NonZeroU32,
    pub(crate) user_capacity: NonZeroU32,
    pub(crate) providers: Vec<Provider>,
    pub(crate) provider_ids: HashMap<Provider, ProviderId>,
    pub(crate) trunks: Vec<TrunkSlot>,
    pub(crate) trunk_ids: HashMap<Arc<str>, TrunkId>,
    pub(crate) by_addr: HashMap<IpAddr, TrunkId>,
    /// Trunks by the (lower-case) DNS names of their TLS client certificates.
    pub(crate) by_tls_name: HashMap<Arc<str>, TrunkId>,
    pub(crate) softphones: Option<TrunkId>,
    pub(crate) tenants: Vec<TenantSlot>,
    pub(crate) tenant_ids: HashMap<Arc<str>, TenantId>,
    pub(crate) bridges: Vec<BridgeSlot>,
    pub(crate) bridge_ids: HashMap<Arc<str>, BridgeId>,
    /// Per-organiser dial-out routes, by tenant then lower-case organiser.
    pub(crate) dial_out_overrides: HashMap<TenantId, HashMap<Arc<str>, Arc<[TrunkId]>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct TrunkSlot {
    pub(crate) name: Arc<str>,
    pub(crate) live: Option<TrunkLive>,
    pub(crate) gauge: Arc<Gauge>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TrunkLive {
    /// `None` for the softphone pseudo-trunk, which may reach any provider's numbers.
    pub(crate) provider: Option<ProviderId>,
    pub(crate) max_sessions: NonZeroU32,
    pub(crate) symmetric_rtp: bool,
    pub(crate) policy: TrunkPolicy,
    /// Where dial-outs and OPTIONS go; `None`: no dial-outs through this trunk.
    pub(crate) outbound: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub(crate) struct TenantSlot {
    pub(crate) name: Arc<str>,
    pub(crate) licence: Option<Licence>,
    /// The admin's dial-out route; `None`: the default (see `dial_out.rs`).
    pub(crate) dial_out: Option<Arc<[TrunkId]>>,
}

#[derive(Debug, Clone)]
pub(crate) struct BridgeSlot {
    pub(crate) name: Arc<str>,
    pub(crate) live: Option<BridgeLive>,
    pub(crate) gauge: Arc<Gauge>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BridgeLive {
    pub(crate) tenant: TenantId,
    pub(crate) capacity: NonZeroU32,
    pub(crate) enabled: bool,
}

/// Plan-local indices to router ids, for translating a plan's numbers.
pub(crate) struct IdMap {
    providers: Vec<ProviderId>,
    bridges: Vec<BridgeId>,
}

impl IdMap {
    pub(crate) fn number(&self, def: &NumberDef) -> NumberLive {
        NumberLive {
            capacity: def.capacity,
            bridge: def
                .bridge
                .and_then(|b| self.bridges.get(b as usize).copied()),
            // Every plan provider index has an id (built from the same table).
            provider: self
                .providers
                .get(usize::from(def.provider))
                .copied()
                .unwrap_or(ProviderId::from_index(0)),
            kind: def.kind,
            charge: def.charge,
        }
    }
}

impl Topology {
    pub(crate) fn empty(numbering: Numbering) -> Self {
        let mut t = Self {
            numbering,
            service_capacity: NonZeroU32::MIN,
            user_capacity: NonZeroU32::MIN,
            providers: Vec::new(),
            provider_ids: HashMap::new(),
            trunks: Vec::new(),
            trunk_ids: HashMap::new(),
            by_addr: HashMap::new(),
            by_tls_name: HashMap::new(),
            softphones: None,
            tenants: Vec::new(),
            tenant_ids: HashMap::new(),
            bridges: Vec::new(),
            bridge_ids: HashMap::new(),
            dial_out_overrides: HashMap::new(),
        };
        t.intern_provider(&Provider::Microsoft);
        t
    }

    /// The next topology: this one's ids and gauges, `plan`'s definitions.
    pub(crate) fn rebuild(&self, plan: &Plan) -> (Topology, IdMap) {
        let mut t = self.clone();
        t.numbering = plan.numbering.clone();
        t.service_capacity = plan.service_capacity;
        t.user_capacity = plan.user_capacity;
        t.trunks.iter_mut().for_each(|s| s.live = None);
        t.tenants.iter_mut().for_each(|s| {
            s.licence = None;
            s.dial_out = None;
        });
        t.dial_out_overrides.clear();
        t.bridges.iter_mut().for_each(|s| s.live = None);
        t.by_addr.clear();
        t.by_tls_name.clear();
        t.softphones = None;
        let providers: Vec<ProviderId> = plan
            .providers
            .iter()
            .map(|p| t.intern_provider(p))
            .collect();
        let mut trunk_ids = Vec::with_capacity(plan.trunks.len());
        for trunk in &plan.trunks {
            let id = t.intern_trunk(&trunk.name);
            trunk_ids.push(id);
            let provider = providers.get(usize::from(trunk.provider)).copied();
            let live = TrunkLive {
                provider,
                max_sessions: trunk.max_sessions,
                symmetric_rtp: trunk.symmetric_rtp,
                policy: trunk.policy,
                outbound: trunk.outbound,
            };
            t.set_trunk(id, live);
            for address in &trunk.addresses {
                t.by_addr.insert(*address, id);
            }
            for name in &trunk.tls_names {
                t.by_tls_name.insert(name.clone(), id);
            }
        }
        if let Some(s) = &plan.softphones {
            let id = t.intern_trunk(&s.name);
            let live = TrunkLive {
                provider: None,
                max_sessions: s.max_sessions,
                symmetric_rtp: s.symmetric_rtp,
                policy: TrunkPolicy::default(),
                outbound: None,
            };
            t.set_trunk(id, live);
            t.softphones = Some(id);
        }
        let mut tenants = Vec::with_capacity(plan.tenants.len());
        for tenant in &plan.tenants {
            let id = *t.tenant_ids.entry(tenant.name.clone()).or_insert_with(|| {
                t.tenants.push(TenantSlot {
                    name: tenant.name.clone(),
                    licence: None,
                    dial_out: None,
                });
                TenantId::from_index(t.tenants.len() - 1)
            });
            if let Some(slot) = t.tenants.get_mut(id.index()) {
                slot.licence = Some(tenant.licence);
                slot.dial_out = tenant
                    .dial_out_route
                    .as_ref()
                    .map(|route| route_ids(route, &trunk_ids));
            }
            tenants.push(id);
        }
        for ((tenant, organiser), route) in &plan.dial_out_overrides {
            if let Some(id) = tenants.get(*tenant) {
                t.dial_out_overrides
                    .entry(*id)
                    .or_default()
                    .insert(organiser.clone(), route_ids(route, &trunk_ids));
            }
        }
        let mut bridges = Vec::with_capacity(plan.bridges.len());
        for bridge in &plan.bridges {
            let id = *t.bridge_ids.entry(bridge.name.clone()).or_insert_with(|| {
                t.bridges.push(BridgeSlot {
                    name: bridge.name.clone(),
                    live: None,
                    gauge: Arc::default(),
                });
                BridgeId::from_index(t.bridges.len() - 1)
            });
            let tenant = tenants.get(bridge.tenant).copied();
            if let (Some(slot), Some(tenant)) = (t.bridges.get_mut(id.index()), tenant) {
                slot.live = Some(BridgeLive {
                    tenant,
                    capacity: bridge.capacity,
                    enabled: bridge.enabled,
                });
            }
            bridges.push(id);
        }
        (t, IdMap { providers, bridges })
    }

    pub(crate) fn intern_provider(&mut self, provider: &Provider) -> ProviderId {
        if let Some(id) = self.provider_ids.get(provider) {
            return *id;
        }
        let id = ProviderId::from_index(self.providers.len());
        self.providers.push(provider.clone());
        self.provider_ids.insert(provider.clone(), id);
        id
    }

    fn intern_trunk(&mut self, name: &Arc<str>) -> TrunkId {
        if let Some(id) = self.trunk_ids.get(name) {
            return *id;
        }
        let id = TrunkId::from_index(self.trunks.len());
        self.trunks.push(TrunkSlot {
            name: name.clone(),
            live: None,
            gauge: Arc::default(),
        });
        self.trunk_ids.insert(name.clone(), id);
        id
    }

    fn set_trunk(&mut self, id: TrunkId, live: TrunkLive) {
        if let Some(slot) = self.trunks.get_mut(id.index()) {
            slot.live = Some(live);
        }
    }

    /// The bridge a number may be assigned to, checked against the tenant's licence.
    pub(crate) fn check_assignment(
        &self,
        number: E164,
        provider: &Provider,
        bridge: &str,
    ) -> Result<BridgeId, Error> {
        let no_such = || Error::NoSuchBridge(bridge.to_owned());
        let id = *self.bridge_ids.get(bridge).ok_or_else(no_such)?;
        let live = self.bridge_live(id).ok_or_else(no_such)?;
        if self
            .licence(live.tenant)
            .is_some_and(|l| l.allows(provider))
        {
            Ok(id)
        } else {
            Err(Error::LicenceForbidsProvider {
                number,
                bridge: bridge.to_owned(),
                tenant: self.tenant_name(live.tenant).to_owned(),
            })
        }
    }

    pub(crate) fn trunk_live(&self, id: TrunkId) -> Option<(&TrunkSlot, TrunkLive)> {
        let slot = self.trunks.get(id.index())?;
        Some((slot, slot.live?))
    }

    pub(crate) fn trunk_name(&self, id: TrunkId) -> &str {
        self.trunks.get(id.index()).map_or("", |t| &t.name)
    }

    pub(crate) fn bridge_live(&self, id: BridgeId) -> Option<BridgeLive> {
        self.bridges.get(id.index())?.live
    }

    pub(crate) fn bridge_name(&self, id: BridgeId) -> &str {
        self.bridges.get(id.index()).map_or("", |b| &b.name)
    }

    pub(crate) fn licence(&self, id: TenantId) -> Option<Licence> {
        self.tenants.get(id.index())?.licence
    }

    pub(crate) fn tenant_name(&self, id: TenantId) -> &str {
        self.tenants.get(id.index()).map_or("", |t| &t.name)
    }

    pub(crate) fn provider(&self, id: ProviderId) -> Option<&Provider> {
        self.providers.get(id.index())
    }
}

/// A plan's route (trunk indices) in router ids.
fn route_ids(route: &[usize], trunk_ids: &[TrunkId]) -> Arc<[TrunkId]> {
    route
        .iter()
        .filter_map(|i| trunk_ids.get(*i).copied())
        .collect()
}
