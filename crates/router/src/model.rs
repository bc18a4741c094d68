//! The nouns of the plan: providers, licences, number kinds and charges, and the stable
//! ids the router gives trunks, tenants and bridges.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// Who provides a number or runs a trunk: the Microsoft PSTN or a named operator
/// (Operator Connect).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Numbers Microsoft provides, reached over the Microsoft PSTN trunk.
    Microsoft,
    /// An Operator Connect operator, by name.
    Operator(Arc<str>),
}

impl Provider {
    /// `"Microsoft"` (any case) is Microsoft; any other name is an operator.
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("microsoft") {
            Self::Microsoft
        } else {
            Self::Operator(name.into())
        }
    }

    /// Whether this is the Microsoft PSTN.
    pub fn is_microsoft(&self) -> bool {
        matches!(self, Self::Microsoft)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Microsoft => f.write_str("Microsoft"),
            Self::Operator(name) => f.write_str(name),
        }
    }
}

/// What a trunk's calls must come over, beyond its source address: the flags of its
/// [`crate::TrunkSecurity`]. The default asks nothing (a trunk trusted by address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrunkPolicy {
    /// Calls not over TLS are refused.
    pub require_tls: bool,
    /// Offers without SRTP (SDES) are refused.
    pub require_srtp: bool,
    /// SDES keys may be exchanged over UDP or TCP, where anyone on the path reads them
    /// (labs only); off, such offers are refused.
    pub sdes_over_plain_transport: bool,
    /// The trunk lists TLS names: a request from its addresses must come with a client
    /// certificate naming it, or a spoofed address would pass for it.
    pub requires_certificate: bool,
}

/// A tenant's conferencing licence, which decides whose numbers its bridges may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Licence {
    /// Microsoft and operator numbers side by side.
    AudioConferencingStandard,
    /// Operator numbers only.
    OperatorConnectConferencing,
}

impl Licence {
    /// Whether a bridge of a tenant with this licence may carry a number of `provider`.
    pub fn allows(self, provider: &Provider) -> bool {
        match self {
            Self::AudioConferencingStandard => true,
            Self::OperatorConnectConferencing => !provider.is_microsoft(),
        }
    }

    /// Whether a tenant with this licence may place dial-outs through a trunk of
    /// `provider`: the same rule as for numbers (shared/DOMAIN.md): Standard through
    /// Microsoft or an operator, Operator Connect Conferencing through operators only.
    pub fn dials_out_through(self, provider: &Provider) -> bool {
        self.allows(provider)
    }

    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AudioConferencingStandard => "audio-conferencing-standard",
            Self::OperatorConnectConferencing => "operator-connect-conferencing",
        }
    }
}

/// Service numbers carry hundreds of calls; user numbers a handful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NumberKind {
    /// A number meant for a service such as a conference bridge.
    Service,
    /// A subscriber's number, ported in or assigned by mistake: low capacity.
    User,
}

/// Who pays for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charge {
    /// The caller pays.
    Toll,
    /// The organisation pays, per minute, from Communications Credits.
    TollFree,
}

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $int:ty, $nonzero:ty) => {
        $(#[$doc])*
        ///
        /// Ids are given by a [`crate::Router`] per name and never reused, so counters keyed
        /// by them outlive plan swaps.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($nonzero);

        impl $name {
            /// The id of the `index`-th name; saturates at the last id, which no deployment
            /// reaches (billions of trunks or bridges).
            pub(crate) fn from_index(index: usize) -> Self {
                Self(
                    <$int>::try_from(index + 1)
                        .ok()
                        .and_then(<$nonzero>::new)
                        .unwrap_or(<$nonzero>::MAX),
                )
            }

            pub(crate) fn index(self) -> usize {
                self.0.get() as usize - 1
            }
        }
    };
}

id!(
    /// A trunk (or the softphone pseudo-trunk) of a router.
    TrunkId, u32, std::num::NonZeroU32
);
id!(
    /// A tenant of a router.
    TenantId, u32, std::num::NonZeroU32
);
id!(
    /// A bridge of a router.
    BridgeId, u32, std::num::NonZeroU32
);
id!(
    /// A provider of a router (16 bits: a number's entry stays 16 bytes).
    ProviderId, u16, std::num::NonZeroU16
);
