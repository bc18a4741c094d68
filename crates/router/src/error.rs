//! The router's one error type, and the located faults a config file is refused with.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::e164::E164;

/// Everything that can be wrong with a dialled number, a plan or an admin change.
///
/// Sorted by who is at fault: the first group is the caller's (a dialled number that is
/// no E.164 number), the rest is the operator's (a plan that contradicts itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- dialled numbers (network input) ---
    /// The Request-URI or number has no digit at all.
    #[error("no digits in the number")]
    NoDigits,
    /// A character that is neither a digit, a leading `+` nor a visual separator.
    #[error("character {0:?} is not allowed in a phone number")]
    InvalidCharacter(char),
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadPercentEncoding,
    /// Fewer than [`E164::MIN_DIGITS`] digits.
    #[error("{0} digits are too few for an E.164 number (at least 7)")]
    TooShort(usize),
    /// More than [`E164::MAX_DIGITS`] digits.
    #[error("too many digits for an E.164 number (at most 15)")]
    TooLong,
    /// No country code starts with 0.
    #[error("an E.164 number cannot start with 0")]
    LeadingZero,
    /// A `sip:`/`sips:` URI without a user part names no number.
    #[error("the URI has no user part")]
    NoUserPart,
    /// A number in a config or admin call must be written `+` and digits only.
    #[error("{text:?} is not an E.164 number written as + and 7 to 15 digits: {reason}")]
    MalformedE164 { text: String, reason: Box<Error> },

    // --- plan faults (the operator's) ---
    /// The TOML does not parse or does not fit the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// `default_country_code` is not 1 to 3 digits without a leading 0.
    #[error("country code {0:?} must be 1 to 3 digits, not starting with 0")]
    InvalidCountryCode(String),
    /// A national or international prefix is not 1 to 4 digits.
    #[error("dialling prefix {0:?} must be 1 to 4 digits")]
    InvalidPrefix(String),
    /// Two trunks, tenants or bridges share a name.
    #[error("{kind} \"{name}\" is defined more than once")]
    DuplicateName { kind: &'static str, name: String },
    /// The same number appears twice.
    #[error("number {0} is defined more than once")]
    DuplicateNumber(E164),
    /// A trunk names no source address, so no call could ever be identified as its.
    #[error("trunk \"{0}\" has no source addresses")]
    TrunkWithoutAddresses(String),
    /// A trunk address that is not an IP address.
    #[error("address {address:?} of trunk \"{trunk}\" is not an IP address")]
    InvalidAddress { trunk: String, address: String },
    /// Two trunks (or one twice) claim the same source address.
    #[error("address {address} of trunk \"{trunk}\" already belongs to trunk \"{other}\"")]
    DuplicateTrunkAddress {
        address: IpAddr,
        trunk: String,
        other: String,
    },
    /// A trunk's TLS name that is not a DNS name (wildcards included: a name identifies
    /// one trunk).
    #[error(
        "TLS name {name:?} of trunk \"{trunk}\" is not a DNS name (letters, digits, '-' and '.', no wildcard)"
    )]
    InvalidTlsName { trunk: String, name: String },
    /// Two trunks (or one twice) list the same TLS name.
    #[error("TLS name {name:?} of trunk \"{trunk}\" already names trunk \"{other}\"")]
    DuplicateTlsName {
        name: String,
        trunk: String,
        other: String,
    },
    /// A capacity or maximum of sessions of zero would refuse every call.
    #[error("capacity of {what} must be at least 1")]
    ZeroCapacity { what: String },
    /// A bridge names a tenant that is not defined.
    #[error("bridge \"{bridge}\" belongs to tenant \"{tenant}\", which does not exist")]
    UnknownTenant { bridge: String, tenant: String },
    /// A number names a bridge that is not defined.
    #[error("number {number} is assigned to bridge \"{bridge}\", which does not exist")]
    UnknownBridge { number: E164, bridge: String },
    /// A Microsoft number on a bridge whose tenant is licensed for operator numbers only.
    #[error(
        "Microsoft number {number} cannot be assigned to bridge \"{bridge}\": tenant \"{tenant}\" has an Operator Connect Conferencing licence (operator numbers only)"
    )]
    LicenceForbidsProvider {
        number: E164,
        bridge: String,
        tenant: String,
    },

    /// A trunk's outbound target that is not an IP address with a port.
    #[error(
        "outbound target {value:?} of trunk \"{trunk}\" is not an IP address and port (e.g. \"192.0.2.10:5060\")"
    )]
    InvalidOutbound { trunk: String, value: String },
    /// A dial-out route names a trunk that is not defined (the softphones included: no
    /// one calls out through them).
    #[error("dial-out route of {owner} names trunk \"{trunk}\", which does not exist")]
    UnknownRouteTrunk { owner: String, trunk: String },
    /// A dial-out route names a trunk with no outbound target.
    #[error(
        "dial-out route of {owner} names trunk \"{trunk}\", which has no outbound target (give it `outbound`)"
    )]
    TrunkWithoutOutbound { owner: String, trunk: String },
    /// A dial-out route names the same trunk twice.
    #[error("dial-out route of {owner} names trunk \"{trunk}\" twice")]
    DuplicateRouteTrunk { owner: String, trunk: String },
    /// A dial-out route through Microsoft for a tenant licensed for operators only.
    #[error(
        "dial-out route of {owner} names Microsoft trunk \"{trunk}\": tenant \"{tenant}\" has an Operator Connect Conferencing licence (dial-outs through operator trunks only)"
    )]
    LicenceForbidsDialOutTrunk {
        owner: String,
        trunk: String,
        tenant: String,
    },
    /// Two dial-out overrides for one organiser.
    #[error("organiser \"{organiser}\" of tenant \"{tenant}\" has more than one dial-out override")]
    DuplicateOverride { tenant: String, organiser: String },
    /// A dial-out override with an empty organiser.
    #[error("a dial-out override of tenant \"{0}\" names no organiser")]
    EmptyOrganiser(String),

    // --- admin API ---
    /// No such number in the plan.
    #[error("number {0} is not in the plan")]
    NoSuchNumber(E164),
    /// No such bridge in the plan.
    #[error("bridge \"{0}\" is not in the plan")]
    NoSuchBridge(String),
    /// No such tenant in the plan.
    #[error("tenant \"{0}\" is not in the plan")]
    NoSuchTenant(String),
    /// No such trunk in the plan.
    #[error("trunk \"{0}\" is not in the plan")]
    NoSuchTrunk(String),
}

/// A config file that was refused: every fault found, each with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, as the caller named it.
    pub path: PathBuf,
    /// At least one fault, in file order.
    pub faults: Vec<Fault>,
}

/// One fault of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// 1-based line of the offending value; `None` when the file could not be read.
    pub line: Option<usize>,
    /// What is wrong.
    pub error: Error,
}

impl ConfigError {
    pub(crate) fn new(path: &Path, mut faults: Vec<Fault>) -> Self {
        faults.sort_by_key(|f| f.line);
        Self {
            path: path.to_path_buf(),
            faults,
        }
    }
}

/// One line per fault: `fixtures/x.toml:42: number +1… is assigned to bridge "nope", …`.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match fault.line {
                Some(line) => write!(f, "{}:{line}: {}", self.path.display(), fault.error)?,
                None => write!(f, "{}: {}", self.path.display(), fault.error)?,
            }
        }
        Ok(())
    }
}
