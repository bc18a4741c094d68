//! The numbers and bridges of the plan, so the API can list them: the router looks
//! numbers up one at a time and its snapshot carries no tenant or enabled flag.
//!
//! Read from the same config text the router's plan came from. The enabled flag is
//! kept here as the config set it and as `PUT /api/v1/bridges/{name}/enabled` last
//! changed it (the router applies the change; this copy only shows it).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use dialbridge_router::E164;
use serde::Deserialize;

use crate::Error;
use crate::config::Config;

/// The plan's numbers and bridges, for listing.
#[derive(Debug, Default)]
pub struct PlanCatalog {
    numbers: Vec<E164>,
    bridges: Vec<BridgeEntry>,
    enabled: Mutex<HashMap<String, bool>>,
}

/// A bridge's fixed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeEntry {
    pub name: String,
    pub tenant: String,
}

impl PlanCatalog {
    /// The catalog of `config`'s number plan (which the router has already validated:
    /// a number that does not parse here is left out, the router having refused it).
    pub fn from_config(config: &Config) -> Result<PlanCatalog, Error> {
        let raw: RawPlan = toml::from_str(&config.text.0)
            .map_err(|e| Error::Config(format!("{}: {}", config.path.display(), e.message())))?;
        let mut numbers: Vec<E164> = raw
            .number
            .iter()
            .filter_map(|n| n.e164.parse().ok())
            .collect();
        numbers.sort();
        numbers.dedup();
        let enabled = raw
            .bridge
            .iter()
            .map(|b| (b.name.clone(), b.enabled))
            .collect();
        Ok(PlanCatalog {
            numbers,
            bridges: raw
                .bridge
                .into_iter()
                .map(|b| BridgeEntry {
                    name: b.name,
                    tenant: b.tenant,
                })
                .collect(),
            enabled: Mutex::new(enabled),
        })
    }

    /// The plan's numbers, in order.
    pub fn numbers(&self) -> &[E164] {
        &self.numbers
    }

    /// The bridge called `name`.
    pub fn bridge(&self, name: &str) -> Option<&BridgeEntry> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// Whether `bridge` is enabled, as last set (config or API).
    pub fn enabled(&self, bridge: &str) -> Option<bool> {
        let map = self.enabled.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(bridge).copied()
    }

    /// Notes that `bridge` was enabled or disabled through the API.
    pub fn set_enabled(&self, bridge: &str, enabled: bool) {
        let mut map = self.enabled.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(bridge.to_owned(), enabled);
    }
}

#[derive(Deserialize)]
struct RawPlan {
    #[serde(default)]
    number: Vec<RawNumber>,
    #[serde(default)]
    bridge: Vec<RawBridge>,
}

#[derive(Deserialize)]
struct RawNumber {
    e164: String,
}

#[derive(Deserialize)]
struct RawBridge {
    name: String,
    tenant: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog() {
        let c = PlanCatalog::from_config(&Config::demo().unwrap()).unwrap();
        assert_eq!(c.numbers().len(), 6);
        assert_eq!(c.numbers()[0].to_string(), "+14255550100");
        assert_eq!(c.bridge("fabrikam-bridge").unwrap().tenant, "fabrikam");
        assert_eq!(c.enabled("contoso-bridge"), Some(true));
        c.set_enabled("contoso-bridge", false);
        assert_eq!(c.enabled("contoso-bridge"), Some(false));
        assert_eq!(c.enabled("nope"), None);
    }
}
