//! Bulk CSV export and import of organisers: the file round trip with a third-party
//! audio-conferencing provider. Export never writes a PIN. Import checks every row
//! first, reports every bad one by line, and applies all rows in one transaction or
//! none.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{Read, Write};

use super::store::Db;
use super::types::{check_display_name, check_tenant};
use super::{
    Directory, DirectoryError, OrganiserId, OrganiserRecord, Provider, TelNumber, Upsert,
    conference_id_owner, organiser_exists, pin_hash, write_organiser,
};
use crate::ivr::{ConferenceId, Pin, TenantId};

/// The columns of the file, in the order export writes them. Import finds them by
/// header name, in any order, and ignores columns it does not know.
pub const CSV_COLUMNS: [&str; 8] = [
    "tenant",
    "organiser",
    "display_name",
    "toll_number",
    "toll_free_number",
    "conference_id",
    "pin",
    "wait_for_leader",
];

/// The most data rows one import accepts; a bigger file is refused whole.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// A column of the file, to say which value of a row is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `tenant`: the organisation, not empty.
    Tenant,
    /// `organiser`: the e-mail-like ID, not empty.
    Organiser,
    /// `display_name`: free text.
    DisplayName,
    /// `toll_number`: E.164, required.
    TollNumber,
    /// `toll_free_number`: E.164 or empty.
    TollFreeNumber,
    /// `conference_id`: 6 to 12 digits.
    ConferenceId,
    /// `pin`: 4 to 12 digits, or empty to keep the current PIN.
    Pin,
    /// `wait_for_leader`: yes, no, true or false.
    WaitForLeader,
}

impl Column {
    /// Every column, in [`CSV_COLUMNS`] order.
    pub const ALL: [Column; 8] = [
        Column::Tenant,
        Column::Organiser,
        Column::DisplayName,
        Column::TollNumber,
        Column::TollFreeNumber,
        Column::ConferenceId,
        Column::Pin,
        Column::WaitForLeader,
    ];

    /// The header name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Tenant => "tenant",
            Column::Organiser => "organiser",
            Column::DisplayName => "display_name",
            Column::TollNumber => "toll_number",
            Column::TollFreeNumber => "toll_free_number",
            Column::ConferenceId => "conference_id",
            Column::Pin => "pin",
            Column::WaitForLeader => "wait_for_leader",
        }
    }

    /// What a value of the column must look like.
    fn rule(self) -> &'static str {
        match self {
            Column::Tenant | Column::Organiser => "must be non-empty, without spaces",
            Column::DisplayName => "must be at most 256 bytes, without control characters",
            Column::TollNumber => "must be + and 1 to 15 digits (E.164)",
            Column::TollFreeNumber => "must be empty or + and 1 to 15 digits (E.164)",
            Column::ConferenceId => "must be 6 to 12 digits",
            // Never echo the value: it is a secret.
            Column::Pin => "must be 4 to 12 digits, or empty to keep the current PIN",
            Column::WaitForLeader => "must be yes, no, true or false",
        }
    }
}

/// Why a line of an import file is bad. No variant holds a PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// The CSV could not be read there (not UTF-8, broken quoting).
    Unreadable(String),
    /// The header (line 1) lacks a column.
    MissingColumn(Column),
    /// The row has a different number of fields than the header.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A value breaks its column's rule.
    Invalid(Column),
    /// The same organiser of the same tenant is on an earlier line too.
    DuplicateOrganiser {
        /// The earlier line.
        first_line: u64,
    },
    /// The same conference ID in the same tenant is on an earlier line too.
    DuplicateConferenceId {
        /// The earlier line.
        first_line: u64,
    },
    /// The conference ID belongs to another organiser of the tenant who keeps it
    /// (they are not in the file with a new one).
    ConferenceIdTaken {
        /// Who has it.
        owner: OrganiserId,
    },
    /// An organiser not yet in the directory, with an empty PIN.
    PinRequired,
    /// The file has more than [`MAX_IMPORT_ROWS`] rows; this is the first one over.
    TooManyRows,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::Unreadable(why) => write!(f, "unreadable CSV: {why}"),
            RowProblem::MissingColumn(c) => write!(f, "missing column {}", c.name()),
            RowProblem::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            RowProblem::Invalid(c) => write!(f, "{} {}", c.name(), c.rule()),
            RowProblem::DuplicateOrganiser { first_line } => {
                write!(f, "organiser already on line {first_line}")
            }
            RowProblem::DuplicateConferenceId { first_line } => {
                write!(
                    f,
                    "conference_id already used in this tenant on line {first_line}"
                )
            }
            RowProblem::ConferenceIdTaken { owner } => {
                write!(f, "conference_id already belongs to {owner}")
            }
            RowProblem::PinRequired => f.write_str("pin is required for a new organiser"),
            RowProblem::TooManyRows => write!(f, "more than {MAX_IMPORT_ROWS} rows"),
        }
    }
}

/// One bad line of an import file. Lines count from 1, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line the row starts on.
    pub line: u64,
    /// What is wrong with it.
    pub problem: RowProblem,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Every problem found in a refused import, in line order (a line may have several).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// The problems.
    pub errors: Vec<RowError>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s)", self.errors.len())?;
        for (i, e) in self.errors.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What an applied import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Organisers that were not in the directory.
    pub added: usize,
    /// Organisers that were, now replaced by their row.
    pub updated: usize,
}

impl Directory {
    /// Writes the organisers of `tenant` (or of all tenants) as CSV with the
    /// [`CSV_COLUMNS`] header: the file an admin sends to a provider. The `pin`
    /// column is always empty. Returns the number of organisers written.
    pub fn export_csv<W: Write>(
        &self,
        tenant: Option<&TenantId>,
        out: W,
    ) -> Result<usize, DirectoryError> {
        let records = self.list(tenant)?;
        write_file(&records, out)?;
        Ok(records.len())
    }

    /// Imports the file a provider sends back (the [`CSV_COLUMNS`], conference IDs
    /// and PINs filled in). Every row's organiser gets `provider`. An empty PIN keeps
    /// the organiser's current one.
    ///
    /// Every row is checked before anything is written: on any problem the import is
    /// refused with [`DirectoryError::ImportRefused`] listing every bad line, and the
    /// directory is unchanged. Otherwise all rows are applied in one transaction.
    /// Conference IDs may move between organisers of the file (even swap).
    pub fn import_csv<R: Read>(
        &self,
        input: R,
        provider: &Provider,
    ) -> Result<ImportSummary, DirectoryError> {
        let ParsedFile { rows, mut errors } = parse_file(input, provider)?;
        // A first look at the database, unlocked afterwards: hashing is slow and
        // must not hold the lock, and is pointless if the file will be refused.
        errors.extend(self.store.read(|db| check_against(db, &rows))?);
        refuse_if_any(errors)?;

        let hashes = hash_pins(&rows)?;

        let summary = self.store.write(|db| {
            // Again inside the write transaction: the directory may have changed
            // while we hashed (through this node or another).
            refuse_if_any(check_against(db, &rows)?)?;
            // Park the conference IDs of the file's organisers on a value no ID can
            // take ('~' is not a digit), so IDs can move between them without a
            // UNIQUE violation half-way.
            for row in &rows {
                db.execute(
                    "UPDATE organisers SET conference_id = '~' || organiser
                     WHERE tenant = ?1 AND organiser = ?2",
                    &[&row.record.tenant.as_str(), &row.record.organiser.as_str()],
                )?;
            }
            let mut summary = ImportSummary::default();
            for (row, phc) in rows.iter().zip(&hashes) {
                match write_organiser(db, &row.record, phc.as_deref())? {
                    Upsert::Added => summary.added += 1,
                    Upsert::Updated => summary.updated += 1,
                }
            }
            Ok(summary)
        })?;
        tracing::info!(
            %provider,
            added = summary.added,
            updated = summary.updated,
            "organisers imported"
        );
        Ok(summary)
    }
}

/// Writes `records` as the file export sends: the [`CSV_COLUMNS`] header, then one row
/// each, the `pin` column empty.
fn write_file<W: Write>(records: &[OrganiserRecord], out: W) -> Result<(), DirectoryError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for r in records {
        w.write_record([
            r.tenant.as_str(),
            r.organiser.as_str(),
            r.display_name.as_str(),
            r.toll_number.as_str(),
            r.toll_free_number.as_ref().map_or("", TelNumber::as_str),
            r.conference_id.as_str(),
            "",
            if r.wait_for_leader { "yes" } else { "no" },
        ])?;
    }
    w.flush().map_err(csv::Error::from)?;
    Ok(())
}

/// The file checks of an import, which need no database, and the export writer, for
/// the fuzz targets in `fuzz/` (an import through a [`Directory`] adds only the
/// database checks and ~30 ms of PIN hashing per row).
#[doc(hidden)]
pub mod fuzzing {
    use super::{DirectoryError, OrganiserRecord, Provider, RowError};

    /// What [`parse_import`] made of a file.
    #[derive(Debug)]
    pub struct ParsedImport {
        /// Each row that passed its checks: its line, its record, whether it has a PIN.
        pub rows: Vec<(u64, OrganiserRecord, bool)>,
        /// Every problem found, in the order found.
        pub errors: Vec<RowError>,
    }

    /// Reads `input` as an import file for `provider`, as [`Directory::import_csv`]
    /// does before it looks at the database.
    ///
    /// [`Directory::import_csv`]: super::Directory::import_csv
    pub fn parse_import(input: &[u8], provider: &Provider) -> Result<ParsedImport, DirectoryError> {
        let parsed = super::parse_file(input, provider)?;
        Ok(ParsedImport {
            rows: parsed
                .rows
                .into_iter()
                .map(|r| (r.line, r.record, r.pin.is_some()))
                .collect(),
            errors: parsed.errors,
        })
    }

    /// Writes `records` as [`Directory::export_csv`] does.
    ///
    /// [`Directory::export_csv`]: super::Directory::export_csv
    pub fn export(records: &[OrganiserRecord]) -> Result<Vec<u8>, DirectoryError> {
        let mut out = Vec::new();
        super::write_file(records, &mut out)?;
        Ok(out)
    }
}

/// A row that passed the checks that need no database.
struct ParsedRow {
    line: u64,
    record: OrganiserRecord,
    pin: Option<Pin>,
}

struct ParsedFile {
    rows: Vec<ParsedRow>,
    errors: Vec<RowError>,
}

/// At most this many threads hash PINs for one import (each holds 16 MiB).
const MAX_HASH_THREADS: usize = 4;

/// Hashes every row's PIN, spread over the cores: each hash is ~30 ms of one core,
/// so a 1,000-organiser file would otherwise take half a minute.
fn hash_pins(rows: &[ParsedRow]) -> Result<Vec<Option<String>>, DirectoryError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_HASH_THREADS);
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|row| row.pin.as_ref().map(pin_hash::hash).transpose())
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut hashes = Vec::with_capacity(rows.len());
        for worker in workers {
            hashes.extend(worker.join().map_err(|_| DirectoryError::Poisoned)??);
        }
        Ok(hashes)
    })
}

fn refuse_if_any(mut errors: Vec<RowError>) -> Result<(), DirectoryError> {
    if errors.is_empty() {
        return Ok(());
    }
    // Stable: the problems of one line stay in column order.
    errors.sort_by_key(|e| e.line);
    Err(DirectoryError::ImportRefused(ImportReport { errors }))
}

/// Reads and checks every row on its own and against the other rows of the file.
fn parse_file<R: Read>(input: R, provider: &Provider) -> Result<ParsedFile, DirectoryError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(Lines::new(input));
    let mut errors = Vec::new();
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(unreadable(e, 1)?);
            return Ok(ParsedFile {
                rows: Vec::new(),
                errors,
            });
        }
    };
    let header_line = reader.get_mut().line_at(header.position()).max(1);
    let mut index = [0usize; Column::ALL.len()];
    for (slot, column) in index.iter_mut().zip(Column::ALL) {
        match header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(column.name()))
        {
            Some(i) => *slot = i,
            None => errors.push(RowError {
                line: header_line,
                problem: RowProblem::MissingColumn(column),
            }),
        }
    }
    if !errors.is_empty() {
        return Ok(ParsedFile {
            rows: Vec::new(),
            errors,
        });
    }

    let mut rows = Vec::new();
    // (tenant, organiser) and (tenant, conference ID) -> first line.
    let mut organisers: HashMap<(TenantId, OrganiserId), u64> = HashMap::new();
    let mut conference_ids: HashMap<(TenantId, ConferenceId), u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    let mut n = 0;
    loop {
        // `read_record`, not `records()`: the line count needs the reader between rows.
        let read = reader.read_record(&mut record);
        if matches!(read, Ok(false)) {
            break;
        }
        n += 1;
        if let Err(e) = read {
            let line = reader.get_mut().line_at(e.position());
            errors.push(unreadable(e, line)?);
            continue;
        }
        let line = reader.get_mut().line_at(record.position());
        if n > MAX_IMPORT_ROWS {
            errors.push(RowError {
                line,
                problem: RowProblem::TooManyRows,
            });
            break;
        }
        if record.len() != header.len() {
            errors.push(RowError {
                line,
                problem: RowProblem::FieldCount {
                    expected: header.len(),
                    found: record.len(),
                },
            });
            continue;
        }
        let field = |c: Column| {
            index
                .get(c as usize)
                .and_then(|&i| record.get(i))
                .unwrap_or_default()
        };
        let Some(row) = parse_row(line, field, provider, &mut errors) else {
            continue;
        };
        let r = &row.record;
        if let Some(&first_line) = organisers.get(&(r.tenant.clone(), r.organiser.clone())) {
            errors.push(RowError {
                line,
                problem: RowProblem::DuplicateOrganiser { first_line },
            });
        } else {
            organisers.insert((r.tenant.clone(), r.organiser.clone()), line);
        }
        if let Some(&first_line) = conference_ids.get(&(r.tenant.clone(), r.conference_id)) {
            errors.push(RowError {
                line,
                problem: RowProblem::DuplicateConferenceId { first_line },
            });
        } else {
            conference_ids.insert((r.tenant.clone(), r.conference_id), line);
        }
        rows.push(row);
    }
    Ok(ParsedFile { rows, errors })
}

/// The input of the csv reader, counting lines as the reader ends records: at `\n`,
/// `\r` and `\r\n`. The csv crate's own `Position::line` counts `\n` only, so in a
/// file with bare CR line ends every problem would be on line 1; and it places a row
/// after blank lines on the first of them.
struct Lines<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Whether the last byte read was `\r` (a `\n` after it ends no new line).
    after_cr: bool,
    /// Lines ended before `ends[0]`, and the line ends read but not yet asked about
    /// (offset and length; at most the reader's read-ahead: the deque stays small).
    lines_before: u64,
    ends: VecDeque<(u64, u64)>,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            after_cr: false,
            lines_before: 0,
            ends: VecDeque::new(),
        }
    }

    /// The 1-based line of the record at `position`. Asked in file order, so the line
    /// ends before it are counted once and forgotten.
    fn line_at(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(mut byte) = position.map(csv::Position::byte) else {
            return 0;
        };
        while let Some(&(end, len)) = self.ends.front() {
            if end > byte {
                break;
            }
            // A line end at (or around) where the record starts is a blank line the
            // reader skipped: the record starts after it.
            byte = byte.max(end + len);
            self.ends.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (at, &b) in (self.read..).zip(buf.iter().take(n)) {
            match b {
                b'\n' if self.after_cr => {
                    if let Some(end) = self.ends.back_mut() {
                        end.1 = 2;
                    }
                }
                b'\r' | b'\n' => self.ends.push_back((at, 1)),
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Parses one row's fields, pushing one problem per bad value.
fn parse_row<'a>(
    line: u64,
    field: impl Fn(Column) -> &'a str,
    provider: &Provider,
    errors: &mut Vec<RowError>,
) -> Option<ParsedRow> {
    let mut bad = |column| {
        errors.push(RowError {
            line,
            problem: RowProblem::Invalid(column),
        })
    };
    let tenant = TenantId::new(field(Column::Tenant));
    let tenant = check_tenant(&tenant).ok().map(|()| tenant);
    if tenant.is_none() {
        bad(Column::Tenant);
    }
    let organiser = OrganiserId::parse(field(Column::Organiser)).ok();
    if organiser.is_none() {
        bad(Column::Organiser);
    }
    let display_name = field(Column::DisplayName);
    let display_ok = check_display_name(display_name).is_ok();
    if !display_ok {
        bad(Column::DisplayName);
    }
    let toll_number = TelNumber::parse(field(Column::TollNumber)).ok();
    if toll_number.is_none() {
        bad(Column::TollNumber);
    }
    let toll_free_number = match field(Column::TollFreeNumber) {
        "" => Some(None),
        s => TelNumber::parse(s).ok().map(Some),
    };
    if toll_free_number.is_none() {
        bad(Column::TollFreeNumber);
    }
    let conference_id = ConferenceId::parse(field(Column::ConferenceId)).ok();
    if conference_id.is_none() {
        bad(Column::ConferenceId);
    }
    let pin = match field(Column::Pin) {
        "" => Some(None),
        s => Pin::parse(s).ok().map(Some),
    };
    if pin.is_none() {
        bad(Column::Pin);
    }
    let wait_for_leader = parse_yes_no(field(Column::WaitForLeader));
    if wait_for_leader.is_none() {
        bad(Column::WaitForLeader);
    }
    Some(ParsedRow {
        line,
        record: OrganiserRecord {
            tenant: tenant?,
            organiser: organiser?,
            display_name: display_ok.then(|| display_name.to_owned())?,
            toll_number: toll_number?,
            toll_free_number: toll_free_number?,
            conference_id: conference_id?,
            wait_for_leader: wait_for_leader?,
            provider: provider.clone(),
        },
        pin: pin?,
    })
}

fn parse_yes_no(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("yes") || s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("no") || s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A CSV error at `line` as a row problem; I/O errors stop the import instead.
fn unreadable(e: csv::Error, line: u64) -> Result<RowError, DirectoryError> {
    let why = match e.kind() {
        csv::ErrorKind::Io(_) => return Err(e.into()),
        // The csv crate's message for this names no content, but say it plainly.
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
        _ => e.to_string(),
    };
    Ok(RowError {
        line,
        problem: RowProblem::Unreadable(why),
    })
}

/// The checks that need the directory: a new organiser needs a PIN, and a conference
/// ID must not belong to an organiser who keeps it.
fn check_against(db: &mut Db<'_, '_>, rows: &[ParsedRow]) -> Result<Vec<RowError>, DirectoryError> {
    let in_file: HashSet<(&TenantId, &OrganiserId)> = rows
        .iter()
        .map(|r| (&r.record.tenant, &r.record.organiser))
        .collect();
    let mut errors = Vec::new();
    for row in rows {
        let r = &row.record;
        if row.pin.is_none() && !organiser_exists(db, &r.tenant, &r.organiser)? {
            errors.push(RowError {
                line: row.line,
                problem: RowProblem::PinRequired,
            });
        }
        // An owner who is in the file gets a new ID there (two rows with one ID are
        // a duplicate already reported), so the ID is free once the import applies.
        if let Some(owner) = conference_id_owner(db, r)?
            && !in_file.contains(&(&r.tenant, &owner))
        {
            errors.push(RowError {
                line: row.line,
                problem: RowProblem::ConferenceIdTaken { owner },
            });
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_no() {
        for (s, v) in [
            ("yes", true),
            ("TRUE", true),
            ("No", false),
            ("false", false),
        ] {
            assert_eq!(parse_yes_no(s), Some(v));
        }
        assert_eq!(parse_yes_no("y"), None);
        assert_eq!(parse_yes_no(""), None);
    }

    #[test]
    fn fuzzing_entry_points_round_trip_the_fixture() {
        let file = include_bytes!("../../../../fixtures/organisers.csv");
        let provider = Provider::dialbridge();
        let parsed = fuzzing::parse_import(file, &provider).unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(parsed.rows.iter().all(|(_, _, has_pin)| *has_pin));
        let records: Vec<_> = parsed.rows.into_iter().map(|(_, r, _)| r).collect();
        let again = fuzzing::parse_import(&fuzzing::export(&records).unwrap(), &provider).unwrap();
        let back: Vec<_> = again.rows.into_iter().map(|(_, r, _)| r).collect();
        assert_eq!(back, records);
    }

    /// Found by the organiser_csv fuzz target: the csv crate ends a row at a bare CR
    /// but counts lines at LF only, so every row of a CR-only file was on line 1.
    #[test]
    fn rows_are_on_their_lines_whatever_the_line_ends() {
        let file = include_str!("../../../../fixtures/organisers.csv");
        let provider = Provider::dialbridge();
        let lf = fuzzing::parse_import(file.as_bytes(), &provider).unwrap();
        let lines: Vec<u64> = lf.rows.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, (2..2 + lines.len() as u64).collect::<Vec<_>>());
        // A blank line between rows is a line of the file too: step 2.
        for (ends, step) in [
            ("\r", 1),
            ("\r\n", 1),
            ("\n\n", 2),
            ("\r\n\r\n", 2),
            ("\r\r", 2),
        ] {
            let text = file.replace('\n', ends);
            let parsed = fuzzing::parse_import(text.as_bytes(), &provider).unwrap();
            let found: Vec<u64> = parsed.rows.iter().map(|(line, _, _)| *line).collect();
            let want: Vec<u64> = (0..lines.len() as u64)
                .map(|i| 1 + step * (i + 1))
                .collect();
            assert_eq!(found, want, "line ends {ends:?}");
        }
        // A bad value on the third line of a CR-only file is reported there.
        let mut bad = file.replace('\n', "\r");
        bad = bad.replacen("987654321", "98", 1);
        let parsed = fuzzing::parse_import(bad.as_bytes(), &provider).unwrap();
        assert_eq!(
            parsed.errors,
            [RowError {
                line: 3,
                problem: RowProblem::Invalid(Column::ConferenceId),
            }]
        );
    }

    #[test]
    fn columns_match_their_names() {
        let names: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, CSV_COLUMNS);
        for (i, c) in Column::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "field lookup indexes by discriminant");
        }
    }

    #[test]
    fn report_lists_every_line() {
        let report = ImportReport {
            errors: vec![
                RowError {
                    line: 1,
                    problem: RowProblem::MissingColumn(Column::Pin),
                },
                RowError {
                    line: 4,
                    problem: RowProblem::Invalid(Column::Pin),
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "2 problem(s): line 1: missing column pin; \
             line 4: pin must be 4 to 12 digits, or empty to keep the current PIN"
        );
    }

    #[test]
    fn pins_hash_in_row_order_across_threads() {
        let provider = Provider::dialbridge();
        let mut errors = Vec::new();
        let rows: Vec<ParsedRow> = (0..5u64)
            .filter_map(|n| {
                let pin = if n == 2 {
                    String::new()
                } else {
                    format!("100{n}")
                };
                let id = format!("60000000{n}");
                let org = format!("o{n}@x");
                let fields = ["t", &org, "", "+1", "", &id, &pin, "no"];
                parse_row(n + 2, |c| fields[c as usize], &provider, &mut errors)
            })
            .collect();
        assert!(errors.is_empty());
        let hashes = hash_pins(&rows).unwrap();
        assert_eq!(hashes.len(), 5);
        assert!(hashes[2].is_none());
        for (n, h) in hashes.iter().enumerate().filter(|(n, _)| *n != 2) {
            let pin = Pin::parse(&format!("100{n}")).unwrap();
            assert!(pin_hash::verify(&pin, h.as_deref().unwrap()).unwrap());
        }
        assert!(hash_pins(&[]).unwrap().is_empty());
    }
}
