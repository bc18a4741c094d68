//! The directory's error type, sorted by who is at fault: the caller's values, the
//! import file, or the storage underneath.

use super::bulk::ImportReport;
use super::types::OrganiserId;
use crate::ivr::{ConferenceId, TenantId};

/// Everything that can go wrong in the organiser [`super::Directory`].
///
/// No variant ever holds a PIN, in clear or hashed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A tenant name that is empty, too long or holds whitespace.
    #[error("a tenant name is 1 to 64 characters without spaces")]
    InvalidTenant,
    /// An organiser ID that is empty, too long or holds whitespace.
    #[error("an organiser ID is 1 to 254 characters without spaces")]
    InvalidOrganiser,
    /// A display name that is too long or holds control characters.
    #[error("a display name is at most 256 bytes without control characters")]
    InvalidDisplayName,
    /// A phone number that is not E.164 (`+` and up to 15 digits).
    #[error("a phone number is + and 1 to 15 digits (E.164)")]
    InvalidNumber,
    /// A provider name that is empty, too long or holds whitespace.
    #[error("a provider name is 1 to 64 characters without spaces")]
    InvalidProvider,
    /// A conference ID that is not 6 to 12 digits.
    #[error("a conference ID is 6 to 12 digits")]
    InvalidConferenceId,
    /// A PIN that is not 4 to 12 digits (the value is never shown).
    #[error("a PIN is 4 to 12 digits")]
    InvalidPin,
    /// A new organiser was given no leader PIN.
    #[error("a new organiser needs a leader PIN")]
    PinRequired,
    /// No such organiser in the tenant.
    #[error("no organiser {organiser} in tenant {tenant}")]
    NoSuchOrganiser {
        /// The tenant looked in.
        tenant: TenantId,
        /// The organiser asked for.
        organiser: OrganiserId,
    },
    /// The conference ID already belongs to another organiser of the tenant.
    #[error("conference ID {conference_id} already belongs to {owner} in tenant {tenant}")]
    ConferenceIdTaken {
        /// The tenant.
        tenant: TenantId,
        /// The ID asked for.
        conference_id: ConferenceId,
        /// Who has it.
        owner: OrganiserId,
    },
    /// A bulk import was refused as a whole; the report lists every bad line.
    #[error("import refused: {0}")]
    ImportRefused(ImportReport),
    /// The import file could not be read or the export could not be written.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The database was written by a newer dialbridge than this one.
    #[error("directory schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A stored row that no longer parses (the database was edited by hand?).
    #[error("corrupt directory row: {0}")]
    Corrupt(&'static str),
    /// Hashing a PIN failed, or a stored hash is not a PHC string.
    #[error("PIN hash: {0}")]
    Hash(#[from] argon2::password_hash::Error),
    /// The database failed.
    #[error("directory database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed or could not be reached (`[shared] postgres`).
    #[error("directory database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    /// The database failed in another way (a store error this crate does not know).
    #[error("directory database: {0}")]
    Database(String),
    /// A thread panicked inside the directory (holding its lock, or hashing).
    #[error("directory thread panicked")]
    Poisoned,
}
