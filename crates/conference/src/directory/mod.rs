//! The organiser directory: who owns which conference ID in which tenant, their
//! leader PIN (as a salted Argon2id hash only), and the bulk CSV round trip with a
//! third-party audio-conferencing provider (DOMAIN.md, "Conference IDs and PINs").
//!
//! Storage is an embedded SQLite file (or `:memory:`), or a PostgreSQL database
//! several bridge nodes share (`pg.rs`); `store.rs` runs the same statements on
//! either. The API is synchronous: PIN hashing and verification are deliberately slow
//! (~30 ms, see [`PIN_HASH_PARAMS`]), and PostgreSQL's client blocks, so async callers
//! run the directory from `spawn_blocking`. Hashing always happens outside the
//! connection lock, so a slow PIN check never holds up a lookup.

mod bulk;
mod error;
mod guard_store;
mod pg;
mod pin_hash;
mod schema;
mod store;
mod types;

use std::sync::{Arc, Mutex};

use rand::Rng;

#[doc(hidden)]
pub use bulk::fuzzing;
pub use bulk::{
    CSV_COLUMNS, Column, ImportReport, ImportSummary, MAX_IMPORT_ROWS, RowError, RowProblem,
};
pub use error::DirectoryError;
pub use pin_hash::PIN_HASH_PARAMS;
pub use types::{
    ConferenceInfo, ConferenceSettings, DEFAULT_PROVIDER, OrganiserId, OrganiserRecord, Provider,
    TelNumber, Upsert,
};

use crate::ivr::{ConferenceId, Pin, TenantId};
use store::{Db, Row, Store};

/// How many digits [`Directory::reset_pin`] gives a fresh PIN.
pub const RESET_PIN_DIGITS: usize = 6;

/// The organiser directory. Cheap to clone (one shared connection behind an `Arc`),
/// and usable from any thread that does not drive async tasks.
#[derive(Clone)]
pub struct Directory {
    store: Arc<Store>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match *self.store {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        };
        f.debug_struct("Directory")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "tenant, organiser, display_name, toll_number, toll_free_number,
    conference_id, wait_for_leader, provider";

impl Directory {
    /// Opens (creating if need be) the directory at `path`, or an empty in-memory one
    /// for `":memory:"`. Creates or migrates the schema; files are put in WAL mode.
    pub fn open(path: &str) -> Result<Self, DirectoryError> {
        let conn = schema::open(path)?;
        Ok(Self {
            store: Arc::new(Store::Sqlite(Mutex::new(conn))),
        })
    }

    /// Opens the directory in the PostgreSQL database at `url` (`postgres://...`),
    /// which other nodes may share, creating or migrating its schema. Call it, and the
    /// directory's other methods, from a thread that does not drive async tasks (the
    /// client blocks on a runtime of its own).
    pub fn open_postgres(url: &str) -> Result<Self, DirectoryError> {
        Ok(Self {
            store: Arc::new(Store::Postgres(Box::new(pg::PgStore::open(url)?))),
        })
    }

    /// The conference with ID `id` in `tenant`, if any. IDs of other tenants are
    /// never found: 555000111 under contoso is `None` even though fabrikam has it.
    pub fn lookup(
        &self,
        tenant: &TenantId,
        id: &ConferenceId,
    ) -> Result<Option<ConferenceInfo>, DirectoryError> {
        let found = self.store.read(|db| {
            db.query_opt(
                "SELECT organiser, display_name, wait_for_leader, join_leave_tones
                 FROM organisers WHERE tenant = ?1 AND conference_id = ?2",
                &[&tenant.as_str(), &id.as_str()],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<bool>(2)?,
                        r.get::<Option<bool>>(3)?,
                    ))
                },
            )
        })?;
        let Some((organiser, display_name, wait_for_leader, join_leave_tones)) = found else {
            return Ok(None);
        };
        Ok(Some(ConferenceInfo {
            tenant: tenant.clone(),
            conference_id: *id,
            organiser: OrganiserId::parse(&organiser).map_err(corrupt("organiser"))?,
            display_name,
            wait_for_leader,
            join_leave_tones,
        }))
    }

    /// The settings of an organiser's conference, if the organiser exists.
    pub fn settings(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
    ) -> Result<Option<ConferenceSettings>, DirectoryError> {
        let join_leave_tones: Option<Option<bool>> = self.store.read(|db| {
            db.query_opt(
                "SELECT join_leave_tones FROM organisers WHERE tenant = ?1 AND organiser = ?2",
                &[&tenant.as_str(), &organiser.as_str()],
                |r| r.get(0),
            )
        })?;
        Ok(join_leave_tones.map(|join_leave_tones| ConferenceSettings { join_leave_tones }))
    }

    /// Sets whether everyone in an organiser's conference hears a tone when someone
    /// joins or leaves (`None`: the bridge's default). Calls that look the conference
    /// up from now on get the new setting.
    pub fn set_join_leave_tones(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
        tones: Option<bool>,
    ) -> Result<(), DirectoryError> {
        self.update_organiser(
            "UPDATE organisers SET join_leave_tones = ?3 WHERE tenant = ?1 AND organiser = ?2",
            tenant,
            organiser,
            &tones,
        )?;
        tracing::info!(%tenant, %organiser, ?tones, "join and leave tones set");
        Ok(())
    }

    /// Whether `pin` is the leader PIN of conference `id` in `tenant`. `false` when
    /// there is no such conference. Slow on purpose (one Argon2id verification);
    /// the comparison is constant-time.
    pub fn verify_pin(
        &self,
        tenant: &TenantId,
        id: &ConferenceId,
        pin: &Pin,
    ) -> Result<bool, DirectoryError> {
        let stored: Option<String> = self.store.read(|db| {
            db.query_opt(
                "SELECT pin_hash FROM organisers WHERE tenant = ?1 AND conference_id = ?2",
                &[&tenant.as_str(), &id.as_str()],
                |r| r.get(0),
            )
        })?;
        // An unknown ID returns at once: the IVR has already told the caller it
        // exists or not, so its timing reveals nothing more.
        match stored {
            Some(phc) => pin_hash::verify(pin, &phc),
            None => Ok(false),
        }
    }

    /// Sets an organiser's leader PIN (an admin action). Stores only its hash.
    pub fn set_pin(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
        new_pin: &Pin,
    ) -> Result<(), DirectoryError> {
        let phc = pin_hash::hash(new_pin)?;
        self.update_organiser(
            "UPDATE organisers SET pin_hash = ?3 WHERE tenant = ?1 AND organiser = ?2",
            tenant,
            organiser,
            &phc.as_str(),
        )?;
        tracing::info!(%tenant, %organiser, "leader PIN set");
        Ok(())
    }

    /// Replaces an organiser's leader PIN with a fresh random one of
    /// [`RESET_PIN_DIGITS`] digits and returns it, once, for the admin to pass on.
    /// Only its hash is stored; it cannot be read back later.
    pub fn reset_pin(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
    ) -> Result<Pin, DirectoryError> {
        // `rand::rng()` is a CSPRNG seeded from the OS.
        let mut rng = rand::rng();
        let digits: String = (0..RESET_PIN_DIGITS)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let pin = Pin::parse(&digits).map_err(|_| DirectoryError::InvalidPin)?;
        self.set_pin(tenant, organiser, &pin)?;
        Ok(pin)
    }

    /// Every organiser of `tenant` (or of all tenants), ordered by tenant then
    /// organiser. There is no PIN in a record.
    pub fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<OrganiserRecord>, DirectoryError> {
        let tenant = tenant.map(TenantId::as_str);
        self.store.read(|db| {
            db.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM organisers
                     WHERE CAST(?1 AS TEXT) IS NULL OR tenant = ?1
                     ORDER BY tenant, organiser"
                ),
                &[&tenant],
                record_from_row,
            )
        })
    }

    /// One organiser, if they exist (no PIN in it).
    pub fn organiser(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
    ) -> Result<Option<OrganiserRecord>, DirectoryError> {
        self.store.read(|db| {
            db.query_opt(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM organisers WHERE tenant = ?1 AND organiser = ?2"
                ),
                &[&tenant.as_str(), &organiser.as_str()],
                record_from_row,
            )
        })
    }

    /// Adds an organiser, or replaces everything about an existing one. `pin` is
    /// required for a new organiser; `None` keeps an existing organiser's PIN.
    /// Refuses a conference ID another organiser of the tenant already has.
    pub fn upsert_organiser(
        &self,
        record: &OrganiserRecord,
        pin: Option<&Pin>,
    ) -> Result<Upsert, DirectoryError> {
        types::check_tenant(&record.tenant)?;
        types::check_display_name(&record.display_name)?;
        let phc = pin.map(pin_hash::hash).transpose()?;
        let done = self.store.write(|db| {
            if let Some(owner) = conference_id_owner(db, record)? {
                return Err(DirectoryError::ConferenceIdTaken {
                    tenant: record.tenant.clone(),
                    conference_id: record.conference_id,
                    owner,
                });
            }
            write_organiser(db, record, phc.as_deref())
        })?;
        tracing::info!(tenant = %record.tenant, organiser = %record.organiser, ?done, "organiser saved");
        Ok(done)
    }

    /// Removes an organiser; `false` if there was none.
    pub fn remove_organiser(
        &self,
        tenant: &TenantId,
        organiser: &OrganiserId,
    ) -> Result<bool, DirectoryError> {
        let removed = self.store.write(|db| {
            db.execute(
                "DELETE FROM organisers WHERE tenant = ?1 AND organiser = ?2",
                &[&tenant.as_str(), &organiser.as_str()],
            )
        })?;
        if removed > 0 {
            tracing::info!(%tenant, %organiser, "organiser removed");
        }
        Ok(removed > 0)
    }

    /// Runs `sql`, an `UPDATE` of one organiser (`?1` the tenant, `?2` the organiser,
    /// `?3` the new value); [`DirectoryError::NoSuchOrganiser`] if it changed nothing.
    fn update_organiser(
        &self,
        sql: &str,
        tenant: &TenantId,
        organiser: &OrganiserId,
        value: &dyn store::Param,
    ) -> Result<(), DirectoryError> {
        let changed = self
            .store
            .write(|db| db.execute(sql, &[&tenant.as_str(), &organiser.as_str(), value]))?;
        if changed == 0 {
            return Err(DirectoryError::NoSuchOrganiser {
                tenant: tenant.clone(),
                organiser: organiser.clone(),
            });
        }
        Ok(())
    }
}

/// Another organiser of the record's tenant who already has its conference ID.
fn conference_id_owner(
    db: &mut Db<'_, '_>,
    record: &OrganiserRecord,
) -> Result<Option<OrganiserId>, DirectoryError> {
    let owner: Option<String> = db.query_opt(
        "SELECT organiser FROM organisers
         WHERE tenant = ?1 AND conference_id = ?2 AND organiser <> ?3",
        &[
            &record.tenant.as_str(),
            &record.conference_id.as_str(),
            &record.organiser.as_str(),
        ],
        |r| r.get(0),
    )?;
    owner
        .map(|o| OrganiserId::parse(&o).map_err(corrupt("organiser")))
        .transpose()
}

/// Whether the organiser is already in the directory.
fn organiser_exists(
    db: &mut Db<'_, '_>,
    tenant: &TenantId,
    organiser: &OrganiserId,
) -> Result<bool, DirectoryError> {
    let found = db.query_opt(
        "SELECT 1 FROM organisers WHERE tenant = ?1 AND organiser = ?2",
        &[&tenant.as_str(), &organiser.as_str()],
        |_| Ok(()),
    )?;
    Ok(found.is_some())
}

/// Inserts or updates one organiser; `phc: None` keeps the stored PIN hash (and is
/// refused for a new organiser).
fn write_organiser(
    db: &mut Db<'_, '_>,
    r: &OrganiserRecord,
    phc: Option<&str>,
) -> Result<Upsert, DirectoryError> {
    let values: [&dyn store::Param; 9] = [
        &r.tenant.as_str(),
        &r.organiser.as_str(),
        &r.display_name.as_str(),
        &r.toll_number.as_str(),
        &r.toll_free_number.as_ref().map(TelNumber::as_str),
        &r.conference_id.as_str(),
        &phc,
        &r.wait_for_leader,
        &r.provider.as_str(),
    ];
    if organiser_exists(db, &r.tenant, &r.organiser)? {
        db.execute(
            "UPDATE organisers SET display_name = ?3, toll_number = ?4, toll_free_number = ?5,
                 conference_id = ?6, pin_hash = coalesce(?7, pin_hash),
                 wait_for_leader = ?8, provider = ?9
             WHERE tenant = ?1 AND organiser = ?2",
            &values,
        )?;
        Ok(Upsert::Updated)
    } else if phc.is_none() {
        Err(DirectoryError::PinRequired)
    } else {
        db.execute(
            "INSERT INTO organisers (tenant, organiser, display_name, toll_number,
                 toll_free_number, conference_id, pin_hash, wait_for_leader, provider)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &values,
        )?;
        Ok(Upsert::Added)
    }
}

/// Maps a stored value that no longer parses to [`DirectoryError::Corrupt`].
fn corrupt<E>(column: &'static str) -> impl FnOnce(E) -> DirectoryError {
    move |_| DirectoryError::Corrupt(column)
}

/// Parses a row of `SELECT` [`RECORD_COLUMNS`].
fn record_from_row(row: &Row<'_, '_>) -> Result<OrganiserRecord, DirectoryError> {
    let toll_free: Option<String> = row.get(4)?;
    Ok(OrganiserRecord {
        tenant: TenantId::new(row.get::<String>(0)?),
        organiser: OrganiserId::parse(&row.get::<String>(1)?).map_err(corrupt("organiser"))?,
        display_name: row.get(2)?,
        toll_number: TelNumber::parse(&row.get::<String>(3)?).map_err(corrupt("toll_number"))?,
        toll_free_number: toll_free
            .as_deref()
            .map(TelNumber::parse)
            .transpose()
            .map_err(corrupt("toll_free_number"))?,
        conference_id: ConferenceId::parse(&row.get::<String>(5)?)
            .map_err(corrupt("conference_id"))?,
        wait_for_leader: row.get(6)?,
        provider: Provider::parse(&row.get::<String>(7)?).map_err(corrupt("provider"))?,
    })
}

/// Directories of both backends for the unit tests: each test runs on every one.
#[cfg(test)]
pub(crate) mod backends {
    use dialbridge_testkit::servers::PostgresDb;

    use super::Directory;

    /// An empty directory, and the PostgreSQL database it lives in (dropped after it).
    pub(crate) struct Opened {
        pub dir: Directory,
        _db: Option<PostgresDb>,
    }

    /// An empty in-memory SQLite directory, and one in a fresh PostgreSQL database.
    pub(crate) fn both() -> [Opened; 2] {
        let db = PostgresDb::create();
        [
            Opened {
                dir: Directory::open(":memory:").unwrap(),
                _db: None,
            },
            Opened {
                dir: Directory::open_postgres(db.url()).unwrap(),
                _db: Some(db),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADELE: &str =
        "contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,123456789,13579,no";

    /// Adele alone, in a directory of each backend.
    fn directories() -> [backends::Opened; 2] {
        let both = backends::both();
        let csv = format!("{}\n{ADELE}\n", CSV_COLUMNS.join(","));
        for opened in &both {
            opened
                .dir
                .import_csv(csv.as_bytes(), &Provider::dialbridge())
                .unwrap();
        }
        both
    }

    fn export(dir: &Directory) -> String {
        let mut out = Vec::new();
        dir.export_csv(None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn join_leave_tones_are_set_per_conference_and_survive_an_import() {
        for opened in directories() {
            join_leave_tones_are_set_per_conference_and_survive_an_import_on(&opened.dir);
        }
    }

    fn join_leave_tones_are_set_per_conference_and_survive_an_import_on(dir: &Directory) {
        let (contoso, adele) = (
            TenantId::new("contoso"),
            OrganiserId::parse("adele@contoso.com").unwrap(),
        );
        let id = ConferenceId::parse("123456789").unwrap();
        let tones = |dir: &Directory| dir.lookup(&contoso, &id).unwrap().unwrap().join_leave_tones;
        let exported = export(dir);
        assert_eq!(tones(dir), None, "the bridge's default until set");
        assert_eq!(
            dir.settings(&contoso, &adele).unwrap(),
            Some(ConferenceSettings::default())
        );

        dir.set_join_leave_tones(&contoso, &adele, Some(false))
            .unwrap();
        assert_eq!(tones(dir), Some(false));
        assert_eq!(
            dir.settings(&contoso, &adele).unwrap(),
            Some(ConferenceSettings {
                join_leave_tones: Some(false)
            })
        );
        // Not part of the provider's file, and a re-import of it keeps the setting.
        assert_eq!(export(dir), exported);
        dir.import_csv(exported.as_bytes(), &Provider::dialbridge())
            .unwrap();
        assert_eq!(tones(dir), Some(false));

        dir.set_join_leave_tones(&contoso, &adele, Some(true))
            .unwrap();
        assert_eq!(tones(dir), Some(true));
        dir.set_join_leave_tones(&contoso, &adele, None).unwrap();
        assert_eq!(tones(dir), None);
    }

    #[test]
    fn join_leave_tones_of_an_unknown_organiser_are_refused() {
        for opened in directories() {
            join_leave_tones_of_an_unknown_organiser_are_refused_on(&opened.dir);
        }
    }

    fn join_leave_tones_of_an_unknown_organiser_are_refused_on(dir: &Directory) {
        let fabrikam = TenantId::new("fabrikam");
        let adele = OrganiserId::parse("adele@contoso.com").unwrap();
        assert!(matches!(
            dir.set_join_leave_tones(&fabrikam, &adele, Some(false)),
            Err(DirectoryError::NoSuchOrganiser { .. })
        ));
        assert_eq!(dir.settings(&fabrikam, &adele).unwrap(), None);
    }
}
