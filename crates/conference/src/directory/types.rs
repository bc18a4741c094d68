//! The directory's parsed values: organiser IDs, E.164 numbers, provider names and the
//! records the directory hands out (none of which carries a PIN).

use std::fmt;

use super::DirectoryError;
use crate::ivr::{ConferenceId, ConferenceKey, TenantId};

/// The provider an organiser has when nobody named another one.
pub const DEFAULT_PROVIDER: &str = "dialbridge";

/// Longest organiser ID we store (the longest e-mail address, RFC 5321 §4.5.3.1.3).
const MAX_ORGANISER_LEN: usize = 254;
/// Longest tenant or provider name we store.
const MAX_NAME_LEN: usize = 64;
/// Longest display name we store, in bytes.
const MAX_DISPLAY_NAME_LEN: usize = 256;
/// E.164 §6.2.1: at most 15 digits after the `+`.
const MAX_E164_DIGITS: usize = 15;

/// An organiser, as the tenant names them: an e-mail-like ID (`adele@contoso.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrganiserId(String);

impl OrganiserId {
    /// Parses an organiser ID: 1 to 254 bytes, no whitespace or control characters.
    pub fn parse(s: &str) -> Result<Self, DirectoryError> {
        if is_token(s, MAX_ORGANISER_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DirectoryError::InvalidOrganiser)
        }
    }

    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganiserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form: `+`, then 1 to 15 digits, the first not `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TelNumber(String);

impl TelNumber {
    /// Parses `+14255550100`.
    pub fn parse(s: &str) -> Result<Self, DirectoryError> {
        let ok = s.strip_prefix('+').is_some_and(|digits| {
            (1..=MAX_E164_DIGITS).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DirectoryError::InvalidNumber)
        }
    }

    /// The number, with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TelNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The audio-conferencing provider of an organiser (`dialbridge`, or a third party).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provider(String);

impl Provider {
    /// Parses a provider name: 1 to 64 bytes, no whitespace or control characters.
    pub fn parse(s: &str) -> Result<Self, DirectoryError> {
        if is_token(s, MAX_NAME_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DirectoryError::InvalidProvider)
        }
    }

    /// The provider organisers have by default: ourselves.
    pub fn dialbridge() -> Self {
        Self(DEFAULT_PROVIDER.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Provider {
    fn default() -> Self {
        Self::dialbridge()
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the IVR needs once a caller has keyed a conference ID that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// The tenant the conference belongs to (the one it was looked up in).
    pub tenant: TenantId,
    /// The conference ID.
    pub conference_id: ConferenceId,
    /// Whose conference it is.
    pub organiser: OrganiserId,
    /// The organiser's name, for prompts and the dashboard.
    pub display_name: String,
    /// Whether participants wait, on hold, until the organiser has keyed the PIN.
    pub wait_for_leader: bool,
    /// Whether everyone hears a tone when someone joins or leaves; `None` leaves it to
    /// the bridge's default.
    pub join_leave_tones: Option<bool>,
}

impl ConferenceInfo {
    /// The conference as the IVR names it, for [`crate::ivr::LookupResult::Found`].
    pub fn key(&self) -> ConferenceKey {
        ConferenceKey {
            tenant: self.tenant.clone(),
            id: self.conference_id,
        }
    }
}

/// One organiser as the directory lists and stores them. There is no PIN here on
/// purpose: PINs go in through [`super::Directory::set_pin`] and the like, and never
/// come back out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganiserRecord {
    /// The organisation.
    pub tenant: TenantId,
    /// The organiser, unique within the tenant.
    pub organiser: OrganiserId,
    /// The organiser's name.
    pub display_name: String,
    /// The default toll number callers are told to dial.
    pub toll_number: TelNumber,
    /// The toll-free number, if the organisation pays for one.
    pub toll_free_number: Option<TelNumber>,
    /// The conference ID, unique within the tenant.
    pub conference_id: ConferenceId,
    /// Whether participants wait for the organiser.
    pub wait_for_leader: bool,
    /// The organiser's one audio-conferencing provider.
    pub provider: Provider,
}

/// The settings of an organiser's conference that an admin changes one by one. They
/// are not in the CSV round trip with providers, and an import keeps them. `None`
/// leaves a setting to the bridge's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConferenceSettings {
    /// Whether everyone hears a tone when someone joins or leaves.
    pub join_leave_tones: Option<bool>,
}

/// What [`super::Directory::upsert_organiser`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new organiser was added.
    Added,
    /// An existing organiser was replaced.
    Updated,
}

/// Checks a tenant name (the IVR's `TenantId` accepts anything; stored ones must not
/// be empty or hold whitespace).
pub(super) fn check_tenant(tenant: &TenantId) -> Result<(), DirectoryError> {
    if is_token(tenant.as_str(), MAX_NAME_LEN) {
        Ok(())
    } else {
        Err(DirectoryError::InvalidTenant)
    }
}

/// Checks a display name: at most 256 bytes and no control characters (it ends up in
/// CSV files, logs and the dashboard).
pub(super) fn check_display_name(name: &str) -> Result<(), DirectoryError> {
    if name.len() <= MAX_DISPLAY_NAME_LEN && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(DirectoryError::InvalidDisplayName)
    }
}

fn is_token(s: &str, max_len: usize) -> bool {
    !s.is_empty() && s.len() <= max_len && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        assert!(TelNumber::parse("+14255550100").is_ok());
        assert!(TelNumber::parse("+493070000100").is_ok());
        assert!(TelNumber::parse("14255550100").is_err());
        assert!(TelNumber::parse("+").is_err());
        assert!(TelNumber::parse("+0123").is_err());
        assert!(TelNumber::parse("+1425555010a").is_err());
        assert!(TelNumber::parse("+1234567890123456").is_err());
        assert!(TelNumber::parse("+123456789012345").is_ok());
    }

    #[test]
    fn names() {
        assert!(OrganiserId::parse("adele@contoso.com").is_ok());
        assert!(OrganiserId::parse("").is_err());
        assert!(OrganiserId::parse("adele vance").is_err());
        assert!(Provider::parse("telco-a").is_ok());
        assert!(Provider::parse(" ").is_err());
        assert_eq!(Provider::default().as_str(), DEFAULT_PROVIDER);
        assert!(check_tenant(&TenantId::new("contoso")).is_ok());
        assert!(check_tenant(&TenantId::new("")).is_err());
        assert!(check_display_name("Adele Vance").is_ok());
        assert!(check_display_name("").is_ok());
        assert!(check_display_name("Adele\nVance").is_err());
    }
}
