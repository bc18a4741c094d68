//! Loading a [`Plan`] from the TOML config file: the `[numbering]`, `[[trunk]]`,
//! `[softphones]`, `[[tenant]]`, `[[dial_out_override]]`, `[[bridge]]` and `[[number]]`
//! sections (every other section belongs to another crate and is ignored). Each fault names the line of the
//! value at fault, and every fault of the file is reported at once.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::e164::E164;
use crate::error::{ConfigError, Error, Fault};
use crate::model::{Charge, Licence, NumberKind};
use crate::numbering::Numbering;
use crate::plan::{BridgeSpec, NumberSpec, Plan, TrunkSecurity, TrunkSpec};

impl Plan {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Plan, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml_str(path, &text),
            Err(e) => Err(ConfigError::new(
                path,
                vec![Fault {
                    line: None,
                    error: Error::Syntax(format!("cannot read the file: {e}")),
                }],
            )),
        }
    }

    /// Validates the TOML `text` of the file `path` (named in the faults only).
    pub fn from_toml_str(path: &Path, text: &str) -> Result<Plan, ConfigError> {
        let mut loader = Loader {
            text,
            faults: Vec::new(),
        };
        let plan = match toml::from_str::<File>(text) {
            Ok(file) => loader.build(file),
            Err(e) => {
                let line = e.span().map(|s| loader.line(&s));
                loader.faults.push(Fault {
                    line,
                    error: Error::Syntax(e.message().trim().to_owned()),
                });
                None
            }
        };
        match plan {
            Some(plan) if loader.faults.is_empty() => Ok(plan),
            _ => Err(ConfigError::new(path, loader.faults)),
        }
    }
}

#[derive(Deserialize)]
struct File {
    numbering: Option<Spanned<NumberingSection>>,
    #[serde(default)]
    trunk: Vec<TrunkSection>,
    softphones: Option<SoftphoneSection>,
    #[serde(default)]
    tenant: Vec<TenantSection>,
    #[serde(default)]
    dial_out_override: Vec<OverrideSection>,
    #[serde(default)]
    bridge: Vec<BridgeSection>,
    #[serde(default)]
    number: Vec<NumberSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberingSection {
    default_country_code: Spanned<String>,
    national_prefix: Option<Spanned<String>>,
    international_prefixes: Option<Spanned<Vec<String>>>,
    service_number_capacity: Option<Spanned<u32>>,
    user_number_capacity: Option<Spanned<u32>>,
}

/// A trunk, with its security policy (kept here, with its addresses, so that one plan
/// swap changes both together). Unknown keys are not denied: other crates may add some.
#[derive(Deserialize)]
struct TrunkSection {
    name: Spanned<String>,
    provider: Spanned<String>,
    addresses: Option<Spanned<Vec<Spanned<String>>>>,
    max_sessions: Spanned<u32>,
    /// Media to where the caller's media comes from (default off for trunks).
    symmetric_rtp: Option<Spanned<bool>>,
    /// Calls over anything but TLS are refused (default off).
    require_tls: Option<Spanned<bool>>,
    /// Offers without SRTP are refused (default off).
    require_srtp: Option<Spanned<bool>>,
    /// SDES keys may travel over UDP/TCP (default off: such offers are refused).
    sdes_over_plain_transport: Option<Spanned<bool>>,
    /// DNS names of the trunk's TLS client certificates.
    tls_names: Option<Spanned<Vec<Spanned<String>>>>,
    /// Where dial-outs and OPTIONS go, `ip:port` over UDP (none: no dial-outs).
    outbound: Option<Spanned<String>>,
}

/// `realm` and `account` belong to the SIP crate.
#[derive(Deserialize)]
struct SoftphoneSection {
    name: Spanned<String>,
    max_sessions: Spanned<u32>,
    /// Default on: softphones behind NATs advertise addresses their media is not from.
    symmetric_rtp: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    name: Spanned<String>,
    licence: Spanned<Licence>,
    /// Trunks its dial-outs leave through, in order (none: the default route).
    dial_out_route: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One organiser's own dial-out route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideSection {
    tenant: Spanned<String>,
    organiser: Spanned<String>,
    route: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeSection {
    name: Spanned<String>,
    tenant: Spanned<String>,
    capacity: Spanned<u32>,
    enabled: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberSection {
    e164: Spanned<String>,
    kind: Spanned<NumberKind>,
    charge: Spanned<Charge>,
    provider: Spanned<String>,
    bridge: Option<Spanned<String>>,
    capacity: Option<Spanned<u32>>,
}

struct Loader<'t> {
    text: &'t str,
    faults: Vec<Fault>,
}

impl Loader<'_> {
    fn build(&mut self, file: File) -> Option<Plan> {
        let Some(numbering) = file.numbering else {
            self.fault(&(0..0), Error::Syntax("missing section [numbering]".into()));
            return None;
        };
        let mut plan = Plan::new(self.numbering(numbering.get_ref())?);
        let n = numbering.get_ref();
        let service = n.service_number_capacity.as_ref();
        let user = n.user_number_capacity.as_ref();
        if let Err(e) = plan.set_default_capacities(
            service.map_or(crate::plan::DEFAULT_SERVICE_CAPACITY, |c| *c.get_ref()),
            user.map_or(crate::plan::DEFAULT_USER_CAPACITY, |c| *c.get_ref()),
        ) {
            let span = match (service, user) {
                (Some(s), _) if *s.get_ref() == 0 => s.span(),
                (_, Some(u)) => u.span(),
                _ => numbering.span(),
            };
            self.fault(&span, e);
        }
        // Trunks refused for a fault of their own: routes naming them are not faulted again.
        let mut refused_trunks = HashSet::new();
        for trunk in &file.trunk {
            if !self.trunk(&mut plan, trunk) {
                refused_trunks.insert(trunk.name.get_ref().as_str());
            }
        }
        if let Some(s) = &file.softphones {
            match plan.set_softphones(s.name.get_ref(), *s.max_sessions.get_ref()) {
                Ok(()) => {
                    if let Some(on) = &s.symmetric_rtp
                        && let Err(e) = plan.set_symmetric_rtp(s.name.get_ref(), *on.get_ref())
                    {
                        self.fault(&on.span(), e);
                    }
                }
                Err(e) => {
                    let span = match e {
                        Error::ZeroCapacity { .. } => s.max_sessions.span(),
                        _ => s.name.span(),
                    };
                    self.fault(&span, e);
                }
            }
        }
        for t in &file.tenant {
            match plan.add_tenant(t.name.get_ref(), *t.licence.get_ref()) {
                Ok(()) => {
                    if let Some(route) = &t.dial_out_route {
                        let set = |plan: &mut Plan, names: &[&str]| {
                            plan.set_dial_out_route(t.name.get_ref(), names)
                        };
                        if let Some(e) = self.route(&mut plan, route, &refused_trunks, set) {
                            self.fault(&t.name.span(), e);
                        }
                    }
                }
                Err(e) => self.fault(&t.name.span(), e),
            }
        }
        for o in &file.dial_out_override {
            let (tenant, organiser) = (o.tenant.get_ref(), o.organiser.get_ref());
            let add = |plan: &mut Plan, names: &[&str]| {
                plan.add_dial_out_override(tenant, organiser, names)
            };
            match self.route(&mut plan, &o.route, &refused_trunks, add) {
                Some(e @ (Error::EmptyOrganiser(_) | Error::DuplicateOverride { .. })) => {
                    self.fault(&o.organiser.span(), e);
                }
                Some(e) => self.fault(&o.tenant.span(), e),
                None => {}
            }
        }
        // Bridges refused for a fault of their own: numbers on them are not faulted again.
        let mut refused = HashSet::new();
        for b in &file.bridge {
            let spec = BridgeSpec {
                name: b.name.get_ref(),
                tenant: b.tenant.get_ref(),
                capacity: *b.capacity.get_ref(),
                enabled: b.enabled.as_ref().is_none_or(|e| *e.get_ref()),
            };
            if let Err(e) = plan.add_bridge(spec) {
                let span = match e {
                    Error::UnknownTenant { .. } => b.tenant.span(),
                    Error::ZeroCapacity { .. } => b.capacity.span(),
                    _ => b.name.span(),
                };
                if !matches!(e, Error::DuplicateName { .. }) {
                    refused.insert(b.name.get_ref().as_str());
                }
                self.fault(&span, e);
            }
        }
        plan.reserve_numbers(file.number.len());
        for n in &file.number {
            let number = match n.e164.get_ref().parse::<E164>() {
                Ok(number) => number,
                Err(e) => {
                    self.fault(&n.e164.span(), e);
                    continue;
                }
            };
            let spec = NumberSpec {
                number,
                kind: *n.kind.get_ref(),
                charge: *n.charge.get_ref(),
                provider: n.provider.get_ref(),
                bridge: n.bridge.as_ref().map(|b| b.get_ref().as_str()),
                capacity: n.capacity.as_ref().map(|c| *c.get_ref()),
            };
            match plan.add_number(spec) {
                Ok(()) => {}
                Err(Error::UnknownBridge { ref bridge, .. })
                    if refused.contains(bridge.as_str()) => {}
                Err(e) => {
                    let span = match (&e, &n.bridge, &n.capacity) {
                        (
                            Error::UnknownBridge { .. } | Error::LicenceForbidsProvider { .. },
                            Some(b),
                            _,
                        ) => b.span(),
                        (Error::ZeroCapacity { .. }, _, Some(c)) => c.span(),
                        _ => n.e164.span(),
                    };
                    self.fault(&span, e);
                }
            }
        }
        Some(plan)
    }

    fn numbering(&mut self, n: &NumberingSection) -> Option<Numbering> {
        let mut numbering = match Numbering::new(n.default_country_code.get_ref()) {
            Ok(numbering) => numbering,
            Err(e) => {
                self.fault(&n.default_country_code.span(), e);
                return None;
            }
        };
        if let Some(p) = &n.national_prefix {
            match numbering.clone().with_national_prefix(p.get_ref()) {
                Ok(with) => numbering = with,
                Err(e) => self.fault(&p.span(), e),
            }
        }
        if let Some(p) = &n.international_prefixes {
            let prefixes: Vec<&str> = p.get_ref().iter().map(String::as_str).collect();
            match numbering.clone().with_international_prefixes(&prefixes) {
                Ok(with) => numbering = with,
                Err(e) => self.fault(&p.span(), e),
            }
        }
        Some(numbering)
    }

    /// Adds the trunk; `false` when it was refused (the fault is recorded).
    fn trunk(&mut self, plan: &mut Plan, t: &TrunkSection) -> bool {
        let mut addresses = Vec::new();
        let mut spans = Vec::new();
        for a in t.addresses.iter().flat_map(|a| a.get_ref()) {
            match a.get_ref().trim().parse::<IpAddr>() {
                Ok(ip) => {
                    addresses.push(ip);
                    spans.push((ip.to_canonical(), a.span()));
                }
                Err(_) => {
                    let error = Error::InvalidAddress {
                        trunk: t.name.get_ref().clone(),
                        address: a.get_ref().clone(),
                    };
                    self.fault(&a.span(), error);
                    return false;
                }
            }
        }
        let spec = TrunkSpec {
            name: t.name.get_ref(),
            provider: t.provider.get_ref(),
            addresses: &addresses,
            max_sessions: *t.max_sessions.get_ref(),
        };
        let added = plan.add_trunk(spec).and_then(|()| match &t.symmetric_rtp {
            Some(on) => plan.set_symmetric_rtp(t.name.get_ref(), *on.get_ref()),
            None => Ok(()),
        });
        let added = added.and_then(|()| self.trunk_security(plan, t));
        let added = added.and_then(|()| match &t.outbound {
            Some(target) => match parse_outbound(target.get_ref()) {
                Some(addr) => plan.set_trunk_outbound(t.name.get_ref(), addr),
                None => Err(Error::InvalidOutbound {
                    trunk: t.name.get_ref().clone(),
                    value: target.get_ref().clone(),
                }),
            },
            None => Ok(()),
        });
        let refused = added.is_err();
        if let Err(e) = added {
            let span = match &e {
                Error::ZeroCapacity { .. } => t.max_sessions.span(),
                Error::InvalidTlsName { name, .. } | Error::DuplicateTlsName { name, .. } => t
                    .tls_names
                    .iter()
                    .flat_map(|n| n.get_ref())
                    .rev()
                    .find(|n| {
                        crate::plan::tls_name("", n.get_ref()).is_ok_and(|l| l == *name)
                            || n.get_ref() == name
                    })
                    .map_or(t.name.span(), |n| n.span()),
                Error::TrunkWithoutAddresses(_) => {
                    t.addresses.as_ref().map_or(t.name.span(), |a| a.span())
                }
                Error::InvalidOutbound { .. } => {
                    t.outbound.as_ref().map_or(t.name.span(), |o| o.span())
                }
                Error::DuplicateTrunkAddress { address, .. } => spans
                    .iter()
                    .rev()
                    .find(|(ip, _)| ip == address)
                    .map_or(t.name.span(), |(_, span)| span.clone()),
                _ => t.name.span(),
            };
            self.fault(&span, e);
        }
        !refused
    }

    /// Sets a dial-out route with `set`; a fault is recorded at the line of the trunk
    /// name at fault (of the list when none is), unless it names a refused trunk. Faults
    /// about the route's owner are handed back for the caller to place.
    fn route(
        &mut self,
        plan: &mut Plan,
        route: &Spanned<Vec<Spanned<String>>>,
        refused_trunks: &HashSet<&str>,
        set: impl FnOnce(&mut Plan, &[&str]) -> Result<(), Error>,
    ) -> Option<Error> {
        let names: Vec<&str> = route
            .get_ref()
            .iter()
            .map(|n| n.get_ref().as_str())
            .collect();
        let e = set(plan, &names).err()?;
        let trunk = match &e {
            Error::UnknownRouteTrunk { trunk, .. }
            | Error::TrunkWithoutOutbound { trunk, .. }
            | Error::LicenceForbidsDialOutTrunk { trunk, .. }
            | Error::DuplicateRouteTrunk { trunk, .. } => trunk.clone(),
            _ => return Some(e),
        };
        if refused_trunks.contains(trunk.as_str()) {
            return None;
        }
        // A duplicate is faulted at its second mention.
        let mut at = route.get_ref().iter().filter(|n| *n.get_ref() == trunk);
        let span = match e {
            Error::DuplicateRouteTrunk { .. } => at.nth(1),
            _ => at.next(),
        }
        .map_or(route.span(), |n| n.span());
        self.fault(&span, e);
        None
    }

    /// The trunk's security keys, when it has any.
    fn trunk_security(&self, plan: &mut Plan, t: &TrunkSection) -> Result<(), Error> {
        let flag = |f: &Option<Spanned<bool>>| f.as_ref().is_some_and(|f| *f.get_ref());
        let security = TrunkSecurity {
            require_tls: flag(&t.require_tls),
            require_srtp: flag(&t.require_srtp),
            sdes_over_plain_transport: flag(&t.sdes_over_plain_transport),
            tls_names: t
                .tls_names
                .iter()
                .flat_map(|n| n.get_ref())
                .map(|n| n.get_ref().clone())
                .collect(),
        };
        if security == TrunkSecurity::default() {
            return Ok(());
        }
        plan.set_trunk_security(t.name.get_ref(), security)
    }

    fn fault(&mut self, span: &Range<usize>, error: Error) {
        let line = Some(self.line(span));
        self.faults.push(Fault { line, error });
    }

    /// 1-based line of the start of `span`.
    fn line(&self, span: &Range<usize>) -> usize {
        let head = self.text.get(..span.start).unwrap_or(self.text);
        head.bytes().filter(|b| *b == b'\n').count() + 1
    }
}

/// A trunk's `outbound` value: `ip:port` (`[v6]:port` for IPv6), over UDP. A host name
/// would need DNS (RFC 3263) at every dial-out: not yet.
fn parse_outbound(value: &str) -> Option<SocketAddr> {
    value
        .trim()
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
}
