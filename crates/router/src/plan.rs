//! The number plan: a validated description of trunks, tenants, bridges and numbers,
//! built from a config file ([`Plan::from_toml_str`]) or programmatically, and installed into a
//! [`crate::Router`]. Every `add_*` checks what it adds against what is already there, so
//! a `Plan` that exists is consistent.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::e164::E164;
use crate::error::Error;
use crate::model::{Charge, Licence, NumberKind, Provider};
use crate::numbering::Numbering;

/// A trunk as the plan describes it.
#[derive(Debug, Clone, Copy)]
pub struct TrunkSpec<'a> {
    /// Unique name, e.g. `telco-a`.
    pub name: &'a str,
    /// `Microsoft` or an operator's name.
    pub provider: &'a str,
    /// Source addresses that identify the trunk (at least one).
    pub addresses: &'a [IpAddr],
    /// Simultaneous sessions the trunk may carry.
    pub max_sessions: u32,
}

/// How a trunk must reach the bridge: over TLS, with SRTP, and with a TLS client
/// certificate that names it (as Teams Direct Routing knows an SBC by the FQDN in its
/// certificate). The default asks none of it: the trunk is trusted by source address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkSecurity {
    /// Calls not over TLS are refused.
    pub require_tls: bool,
    /// Offers without SRTP (RTP/SAVP with SDES) are refused.
    pub require_srtp: bool,
    /// SDES keys may travel over UDP or TCP (labs only).
    pub sdes_over_plain_transport: bool,
    /// DNS names of the trunk's SBC certificates. A verified client certificate with one
    /// of them identifies the trunk; with any, a request from its addresses needs one.
    pub tls_names: Vec<String>,
}

/// A bridge as the plan describes it.
#[derive(Debug, Clone, Copy)]
pub struct BridgeSpec<'a> {
    /// Unique name, e.g. `contoso-bridge`.
    pub name: &'a str,
    /// The tenant that owns it (must be added first).
    pub tenant: &'a str,
    /// Simultaneous calls.
    pub capacity: u32,
    /// A disabled bridge refuses calls (`RejectReason::BridgeDisabled`).
    pub enabled: bool,
}

/// A number as the plan describes it.
#[derive(Debug, Clone, Copy)]
pub struct NumberSpec<'a> {
    /// The number.
    pub number: E164,
    /// Service or user number.
    pub kind: NumberKind,
    /// Toll or toll-free.
    pub charge: Charge,
    /// `Microsoft` or an operator's name.
    pub provider: &'a str,
    /// The bridge it is assigned to, if any (must be added first).
    pub bridge: Option<&'a str>,
    /// Concurrent calls; `None` for the plan's default for the kind.
    pub capacity: Option<u32>,
}

/// A validated number plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) numbering: Numbering,
    pub(crate) service_capacity: NonZeroU32,
    pub(crate) user_capacity: NonZeroU32,
    pub(crate) providers: Vec<Provider>,
    pub(crate) trunks: Vec<TrunkDef>,
    pub(crate) softphones: Option<SoftphoneDef>,
    pub(crate) tenants: Vec<TenantDef>,
    pub(crate) bridges: Vec<BridgeDef>,
    pub(crate) numbers: HashMap<E164, NumberDef>,
    /// Per-organiser dial-out routes, by tenant index and lower-case organiser
    /// (see `dial_out.rs`).
    pub(crate) dial_out_overrides: HashMap<(usize, Arc<str>), Vec<usize>>,
    provider_index: HashMap<Provider, u16>,
    pub(crate) trunk_names: HashMap<Arc<str>, usize>,
    addresses: HashMap<IpAddr, usize>,
    tls_names: HashMap<Arc<str>, usize>,
    pub(crate) tenant_names: HashMap<Arc<str>, usize>,
    bridge_names: HashMap<Arc<str>, usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct TrunkDef {
    pub(crate) name: Arc<str>,
    pub(crate) provider: u16,
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) max_sessions: NonZeroU32,
    pub(crate) symmetric_rtp: bool,
    pub(crate) policy: crate::model::TrunkPolicy,
    /// Lower-case, each the trunk's alone.
    pub(crate) tls_names: Vec<Arc<str>>,
    /// Where the bridge sends the trunk its dial-outs and OPTIONS (UDP); `None`: the
    /// trunk takes no dial-outs.
    pub(crate) outbound: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub(crate) struct SoftphoneDef {
    pub(crate) name: Arc<str>,
    pub(crate) max_sessions: NonZeroU32,
    pub(crate) symmetric_rtp: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TenantDef {
    pub(crate) name: Arc<str>,
    pub(crate) licence: Licence,
    /// The admin's dial-out route (trunk indices, in order); `None`: the default.
    pub(crate) dial_out_route: Option<Vec<usize>>,
}

#[derive(Debug, Clone)]
pub(crate) struct BridgeDef {
    pub(crate) name: Arc<str>,
    pub(crate) tenant: usize,
    pub(crate) capacity: NonZeroU32,
    pub(crate) enabled: bool,
}

/// Indices into the plan's own tables; compact because a plan may hold millions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumberDef {
    pub(crate) capacity: NonZeroU32,
    pub(crate) bridge: Option<u32>,
    pub(crate) provider: u16,
    pub(crate) kind: NumberKind,
    pub(crate) charge: Charge,
}

/// Default concurrent-call capacity of a service number that names none.
pub const DEFAULT_SERVICE_CAPACITY: u32 = 500;
/// Default concurrent-call capacity of a user number that names none.
pub const DEFAULT_USER_CAPACITY: u32 = 4;

impl Plan {
    /// An empty plan with the default capacities (service 500, user 4).
    pub fn new(numbering: Numbering) -> Self {
        Self {
            numbering,
            service_capacity: NonZeroU32::MIN.saturating_add(DEFAULT_SERVICE_CAPACITY - 1),
            user_capacity: NonZeroU32::MIN.saturating_add(DEFAULT_USER_CAPACITY - 1),
            providers: vec![Provider::Microsoft],
            provider_index: HashMap::from([(Provider::Microsoft, 0)]),
            trunks: Vec::new(),
            softphones: None,
            tenants: Vec::new(),
            bridges: Vec::new(),
            numbers: HashMap::new(),
            dial_out_overrides: HashMap::new(),
            trunk_names: HashMap::new(),
            addresses: HashMap::new(),
            tls_names: HashMap::new(),
            tenant_names: HashMap::new(),
            bridge_names: HashMap::new(),
        }
    }

    /// Capacities of numbers that name none.
    pub fn set_default_capacities(&mut self, service: u32, user: u32) -> Result<(), Error> {
        self.service_capacity = nonzero(service, || "service numbers by default".into())?;
        self.user_capacity = nonzero(user, || "user numbers by default".into())?;
        Ok(())
    }

    /// How dialled numbers are completed.
    pub fn numbering(&self) -> &Numbering {
        &self.numbering
    }

    /// Number of numbers in the plan.
    pub fn number_count(&self) -> usize {
        self.numbers.len()
    }

    /// Reserves room for `additional` more numbers (for bulk building).
    pub fn reserve_numbers(&mut self, additional: usize) {
        self.numbers.reserve(additional);
    }

    /// Adds a trunk.
    pub fn add_trunk(&mut self, spec: TrunkSpec<'_>) -> Result<(), Error> {
        self.check_trunk_name(spec.name)?;
        if spec.addresses.is_empty() {
            return Err(Error::TrunkWithoutAddresses(spec.name.to_owned()));
        }
        let max_sessions = nonzero(spec.max_sessions, || format!("trunk \"{}\"", spec.name))?;
        let index = self.trunks.len();
        let mut addresses = Vec::with_capacity(spec.addresses.len());
        for address in spec.addresses {
            let address = address.to_canonical();
            if let Some(other) = self.addresses.get(&address).copied() {
                let other = self.trunks.get(other).map_or(spec.name, |t| &*t.name);
                return Err(Error::DuplicateTrunkAddress {
                    address,
                    trunk: spec.name.to_owned(),
                    other: other.to_owned(),
                });
            }
            if addresses.contains(&address) {
                return Err(Error::DuplicateTrunkAddress {
                    address,
                    trunk: spec.name.to_owned(),
                    other: spec.name.to_owned(),
                });
            }
            addresses.push(address);
        }
        for address in &addresses {
            self.addresses.insert(*address, index);
        }
        let name: Arc<str> = spec.name.into();
        self.trunk_names.insert(name.clone(), index);
        let provider = self.intern_provider(spec.provider);
        self.trunks.push(TrunkDef {
            name,
            provider,
            addresses,
            max_sessions,
            symmetric_rtp: false,
            policy: crate::model::TrunkPolicy::default(),
            tls_names: Vec::new(),
            outbound: None,
        });
        Ok(())
    }

    /// Gives `trunk` (by name; not the softphones, which are called by no one) an
    /// outbound target: the address its dial-outs and OPTIONS go to, over UDP.
    pub fn set_trunk_outbound(&mut self, trunk: &str, target: SocketAddr) -> Result<(), Error> {
        let def = self
            .trunk_names
            .get(trunk)
            .and_then(|&i| self.trunks.get_mut(i))
            .ok_or_else(|| Error::NoSuchTrunk(trunk.to_owned()))?;
        def.outbound = Some(target);
        Ok(())
    }

    /// Sets what `trunk` (by name; not the softphones, which prove themselves by digest)
    /// must reach the bridge with. Each TLS name must be a DNS name (compared without
    /// case) that no other trunk lists.
    pub fn set_trunk_security(
        &mut self,
        trunk: &str,
        security: TrunkSecurity,
    ) -> Result<(), Error> {
        let index = *self
            .trunk_names
            .get(trunk)
            .ok_or_else(|| Error::NoSuchTrunk(trunk.to_owned()))?;
        let mut names: Vec<Arc<str>> = Vec::with_capacity(security.tls_names.len());
        for name in &security.tls_names {
            let name: Arc<str> = tls_name(trunk, name)?.into();
            let other = self.tls_names.get(&name).copied().filter(|&i| i != index);
            if other.is_some() || names.contains(&name) {
                let other = other
                    .and_then(|i| self.trunks.get(i))
                    .map_or(trunk, |t| &*t.name);
                return Err(Error::DuplicateTlsName {
                    name: name.to_string(),
                    trunk: trunk.to_owned(),
                    other: other.to_owned(),
                });
            }
            names.push(name);
        }
        let def = self
            .trunks
            .get_mut(index)
            .ok_or_else(|| Error::NoSuchTrunk(trunk.to_owned()))?;
        for old in def.tls_names.drain(..) {
            self.tls_names.remove(&old);
        }
        for name in &names {
            self.tls_names.insert(name.clone(), index);
        }
        def.policy = crate::model::TrunkPolicy {
            require_tls: security.require_tls,
            require_srtp: security.require_srtp,
            sdes_over_plain_transport: security.sdes_over_plain_transport,
            requires_certificate: !names.is_empty(),
        };
        def.tls_names = names;
        Ok(())
    }

    /// Sets the softphone pseudo-trunk: digest-authenticated clients from any address.
    pub fn set_softphones(&mut self, name: &str, max_sessions: u32) -> Result<(), Error> {
        self.check_trunk_name(name)?;
        let max_sessions = nonzero(max_sessions, || format!("softphones \"{name}\""))?;
        self.softphones = Some(SoftphoneDef {
            name: name.into(),
            max_sessions,
            symmetric_rtp: true,
        });
        Ok(())
    }

    /// Whether calls over `trunk` (a trunk or the softphone pseudo-trunk, by name) use
    /// symmetric RTP: media sent back to where the caller's media comes from, for
    /// callers behind a NAT. Off for trunks unless set (an SBC advertises where its
    /// media is), on for softphones (which often cannot).
    pub fn set_symmetric_rtp(&mut self, trunk: &str, on: bool) -> Result<(), Error> {
        if let Some(s) = self.softphones.as_mut().filter(|s| &*s.name == trunk) {
            s.symmetric_rtp = on;
            return Ok(());
        }
        let def = self
            .trunk_names
            .get(trunk)
            .and_then(|&i| self.trunks.get_mut(i))
            .ok_or_else(|| Error::NoSuchTrunk(trunk.to_owned()))?;
        def.symmetric_rtp = on;
        Ok(())
    }

    /// Adds a tenant.
    pub fn add_tenant(&mut self, name: &str, licence: Licence) -> Result<(), Error> {
        match self.tenant_names.entry(name.into()) {
            Entry::Occupied(_) => Err(Error::DuplicateName {
                kind: "tenant",
                name: name.to_owned(),
            }),
            Entry::Vacant(slot) => {
                let name = slot.key().clone();
                slot.insert(self.tenants.len());
                self.tenants.push(TenantDef {
                    name,
                    licence,
                    dial_out_route: None,
                });
                Ok(())
            }
        }
    }

    /// Adds a bridge of a tenant added before.
    pub fn add_bridge(&mut self, spec: BridgeSpec<'_>) -> Result<(), Error> {
        if self.bridge_names.contains_key(spec.name) {
            return Err(Error::DuplicateName {
                kind: "bridge",
                name: spec.name.to_owned(),
            });
        }
        let tenant = *self
            .tenant_names
            .get(spec.tenant)
            .ok_or_else(|| Error::UnknownTenant {
                bridge: spec.name.to_owned(),
                tenant: spec.tenant.to_owned(),
            })?;
        let capacity = nonzero(spec.capacity, || format!("bridge \"{}\"", spec.name))?;
        let name: Arc<str> = spec.name.into();
        self.bridge_names.insert(name.clone(), self.bridges.len());
        self.bridges.push(BridgeDef {
            name,
            tenant,
            capacity,
            enabled: spec.enabled,
        });
        Ok(())
    }

    /// Adds a number, assigned to a bridge added before or to nothing.
    pub fn add_number(&mut self, spec: NumberSpec<'_>) -> Result<(), Error> {
        if self.numbers.contains_key(&spec.number) {
            return Err(Error::DuplicateNumber(spec.number));
        }
        let capacity = match spec.capacity {
            Some(c) => nonzero(c, || format!("number {}", spec.number))?,
            None => match spec.kind {
                NumberKind::Service => self.service_capacity,
                NumberKind::User => self.user_capacity,
            },
        };
        let provider = Provider::from_name(spec.provider);
        let bridge = match spec.bridge {
            None => None,
            Some(name) => {
                let index = *self
                    .bridge_names
                    .get(name)
                    .ok_or_else(|| Error::UnknownBridge {
                        number: spec.number,
                        bridge: name.to_owned(),
                    })?;
                self.check_licence(spec.number, &provider, index)?;
                Some(u32::try_from(index).map_err(|_| Error::NoSuchBridge(name.to_owned()))?)
            }
        };
        let provider = self.intern_provider(spec.provider);
        self.numbers.insert(
            spec.number,
            NumberDef {
                capacity,
                bridge,
                provider,
                kind: spec.kind,
                charge: spec.charge,
            },
        );
        Ok(())
    }

    fn check_licence(&self, number: E164, provider: &Provider, bridge: usize) -> Result<(), Error> {
        let Some(bridge) = self.bridges.get(bridge) else {
            return Ok(());
        };
        let Some(tenant) = self.tenants.get(bridge.tenant) else {
            return Ok(());
        };
        if tenant.licence.allows(provider) {
            Ok(())
        } else {
            Err(Error::LicenceForbidsProvider {
                number,
                bridge: bridge.name.to_string(),
                tenant: tenant.name.to_string(),
            })
        }
    }

    fn check_trunk_name(&self, name: &str) -> Result<(), Error> {
        let softphones = self.softphones.as_ref().is_some_and(|s| &*s.name == name);
        if softphones || self.trunk_names.contains_key(name) {
            return Err(Error::DuplicateName {
                kind: "trunk",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn intern_provider(&mut self, name: &str) -> u16 {
        let provider = Provider::from_name(name);
        if let Some(index) = self.provider_index.get(&provider) {
            return *index;
        }
        // More than 65,535 distinct providers would be a config no one writes; saturate.
        let index = u16::try_from(self.providers.len()).unwrap_or(u16::MAX);
        self.providers.push(provider.clone());
        self.provider_index.insert(provider, index);
        index
    }
}

fn nonzero(value: u32, what: impl FnOnce() -> String) -> Result<NonZeroU32, Error> {
    NonZeroU32::new(value).ok_or_else(|| Error::ZeroCapacity { what: what() })
}

/// `name` as a trunk's TLS name: a DNS name (RFC 1123 labels, at most 253 characters,
/// a final dot dropped), lower-case. No wildcards: a name identifies one trunk.
pub(crate) fn tls_name(trunk: &str, name: &str) -> Result<String, Error> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if lower.is_empty() || lower.len() > 253 || !lower.split('.').all(label_ok) {
        return Err(Error::InvalidTlsName {
            trunk: trunk.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let mut p = Plan::new(Numbering::new("1").unwrap());
        p.add_tenant("oc", Licence::OperatorConnectConferencing)
            .unwrap();
        p.add_bridge(BridgeSpec {
            name: "b",
            tenant: "oc",
            capacity: 10,
            enabled: true,
        })
        .unwrap();
        p
    }

    fn number(
        n: &str,
        provider: &'static str,
        bridge: Option<&'static str>,
    ) -> NumberSpec<'static> {
        NumberSpec {
            number: n.parse().unwrap(),
            kind: NumberKind::Service,
            charge: Charge::Toll,
            provider,
            bridge,
            capacity: None,
        }
    }

    #[test]
    fn every_add_checks_its_invariant() {
        let mut p = plan();
        assert!(matches!(
            p.add_tenant("oc", Licence::AudioConferencingStandard),
            Err(Error::DuplicateName { .. })
        ));
        let bad_bridge = BridgeSpec {
            name: "x",
            tenant: "nobody",
            capacity: 1,
            enabled: true,
        };
        assert!(matches!(
            p.add_bridge(bad_bridge),
            Err(Error::UnknownTenant { .. })
        ));
        assert!(matches!(
            p.add_bridge(BridgeSpec {
                tenant: "oc",
                capacity: 0,
                ..bad_bridge
            }),
            Err(Error::ZeroCapacity { .. })
        ));
        assert!(matches!(
            p.add_number(number("+14255550100", "Microsoft", Some("b"))),
            Err(Error::LicenceForbidsProvider { .. })
        ));
        assert!(matches!(
            p.add_number(number("+14255550100", "Telco", Some("nope"))),
            Err(Error::UnknownBridge { .. })
        ));
        p.add_number(number("+14255550100", "Telco", Some("b")))
            .unwrap();
        assert!(matches!(
            p.add_number(number("+14255550100", "Telco", None)),
            Err(Error::DuplicateNumber(_))
        ));
        assert_eq!(
            p.numbers.values().next().unwrap().capacity.get(),
            DEFAULT_SERVICE_CAPACITY
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let t = TrunkSpec {
            name: "t",
            provider: "Telco",
            addresses: &[a],
            max_sessions: 5,
        };
        p.add_trunk(t).unwrap();
        assert!(matches!(p.add_trunk(t), Err(Error::DuplicateName { .. })));
        assert!(matches!(
            p.add_trunk(TrunkSpec {
                name: "u",
                addresses: &[mapped],
                ..t
            }),
            Err(Error::DuplicateTrunkAddress { .. })
        ));
        assert!(matches!(
            p.add_trunk(TrunkSpec {
                name: "u",
                addresses: &[],
                ..t
            }),
            Err(Error::TrunkWithoutAddresses(_))
        ));
        assert!(matches!(
            p.set_softphones("t", 5),
            Err(Error::DuplicateName { .. })
        ));
        assert!(matches!(
            p.set_softphones("s", 0),
            Err(Error::ZeroCapacity { .. })
        ));
        assert!(!p.trunks[0].symmetric_rtp);
        p.set_symmetric_rtp("t", true).unwrap();
        assert!(p.trunks[0].symmetric_rtp);
        p.set_softphones("s", 5).unwrap();
        assert!(p.softphones.as_ref().unwrap().symmetric_rtp);
        p.set_symmetric_rtp("s", false).unwrap();
        assert!(!p.softphones.as_ref().unwrap().symmetric_rtp);
        assert!(matches!(
            p.set_symmetric_rtp("nope", true),
            Err(Error::NoSuchTrunk(_))
        ));
        assert!(matches!(
            p.set_default_capacities(0, 1),
            Err(Error::ZeroCapacity { .. })
        ));
    }

    #[test]
    fn trunk_security_names_are_dns_names_of_one_trunk_each() {
        let mut p = Plan::new(Numbering::new("1").unwrap());
        let spec = |name, ip: &'static str| TrunkSpec {
            name,
            provider: "Telco",
            addresses: Box::leak(Box::new([ip.parse::<IpAddr>().unwrap()])),
            max_sessions: 5,
        };
        p.add_trunk(spec("a", "10.0.0.1")).unwrap();
        p.add_trunk(spec("b", "10.0.0.2")).unwrap();
        assert_eq!(p.trunks[0].policy, crate::model::TrunkPolicy::default());
        let names = |n: &[&str]| TrunkSecurity {
            require_tls: true,
            tls_names: n.iter().map(|s| s.to_string()).collect(),
            ..TrunkSecurity::default()
        };
        p.set_trunk_security("a", names(&["SBC1.Example.com."]))
            .unwrap();
        assert_eq!(&*p.trunks[0].tls_names[0], "sbc1.example.com");
        assert!(p.trunks[0].policy.requires_certificate);
        assert!(p.trunks[0].policy.require_tls);
        assert_eq!(
            p.set_trunk_security("b", names(&["sbc1.example.com"])),
            Err(Error::DuplicateTlsName {
                name: "sbc1.example.com".into(),
                trunk: "b".into(),
                other: "a".into()
            })
        );
        assert!(matches!(
            p.set_trunk_security("b", names(&["x.example.com", "X.example.com"])),
            Err(Error::DuplicateTlsName { .. })
        ));
        for bad in [
            "",
            "*.example.com",
            "sbc 1.example.com",
            "-a.example.com",
            "a..b",
        ] {
            assert!(
                matches!(
                    p.set_trunk_security("b", names(&[bad])),
                    Err(Error::InvalidTlsName { .. })
                ),
                "{bad:?}"
            );
        }
        // Set again, the old names are given up.
        p.set_trunk_security("a", names(&[])).unwrap();
        assert!(!p.trunks[0].policy.requires_certificate);
        p.set_trunk_security("b", names(&["sbc1.example.com"]))
            .unwrap();
        p.set_softphones("s", 5).unwrap();
        assert!(matches!(
            p.set_trunk_security("s", names(&[])),
            Err(Error::NoSuchTrunk(_))
        ));
    }
}
