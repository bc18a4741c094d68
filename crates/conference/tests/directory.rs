//! The organiser directory through its public API, on both backends (an SQLite file or
//! `:memory:`, and a real PostgreSQL database): the demo import, the CSV round trip with
//! a provider, PIN secrecy, conference-ID uniqueness per tenant. Then what only a shared
//! database has: two nodes' directories on one database, writing at once, and an outage
//! the directory lives through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// One module named like the file, so `cargo test -p dialbridge-conference directory`
// selects these tests along with the unit tests of `src/directory/`.
mod directory {
    use std::ops::Deref;
    use std::path::PathBuf;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use dialbridge_conference::directory::{
        Column, Directory, DirectoryError, ImportSummary, OrganiserId, OrganiserRecord,
        PIN_HASH_PARAMS, Provider, RowError, RowProblem, TelNumber, Upsert,
    };
    use dialbridge_conference::guard::{CallerKey, GuardRecord, GuardScope};
    use dialbridge_conference::ivr::{ConferenceId, ConferenceKey, Pin, TenantId};
    use dialbridge_testkit::on_both_backends;
    use dialbridge_testkit::servers::{Postgres, PostgresDb};

    const HEADER: &str = "tenant,organiser,display_name,toll_number,toll_free_number,conference_id,pin,wait_for_leader";

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/organisers.csv")
    }

    fn t(s: &str) -> TenantId {
        TenantId::new(s)
    }
    fn id(s: &str) -> ConferenceId {
        ConferenceId::parse(s).unwrap()
    }
    fn pin(s: &str) -> Pin {
        Pin::parse(s).unwrap()
    }
    fn org(s: &str) -> OrganiserId {
        OrganiserId::parse(s).unwrap()
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Backend {
        Sqlite,
        Postgres,
    }

    on_both_backends!(
        demo_organisers_import_from_the_fixture,
        export_is_the_fixture_without_pins,
        a_file_with_bad_rows_is_refused_whole_with_every_line_reported,
        export_then_import_round_trips_and_keeps_pins,
        reimport_updates_a_pin_and_the_provider,
        conference_ids_are_unique_per_tenant_only,
        conference_ids_can_swap_between_organisers_in_one_import,
        header_problems_are_line_one,
        non_utf8_row_is_reported_by_line,
        pins_are_stored_only_as_argon2_hashes,
        upsert_set_reset_and_remove,
        usable_from_several_threads,
        verify_timing_note,
    );

    /// A directory, and the PostgreSQL database it lives in (dropped after it).
    struct Opened {
        dir: Directory,
        db: Option<PostgresDb>,
    }

    impl Opened {
        /// Another node's directory on the same PostgreSQL database (its own connection).
        fn other_node(&self) -> Directory {
            let db = self.db.as_ref().expect("a PostgreSQL directory");
            Directory::open_postgres(db.url()).unwrap()
        }
    }

    impl Deref for Opened {
        type Target = Directory;
        fn deref(&self) -> &Directory {
            &self.dir
        }
    }

    /// An empty directory: in memory, or in a fresh PostgreSQL database.
    fn empty(backend: Backend) -> Opened {
        match backend {
            Backend::Sqlite => Opened {
                dir: Directory::open(":memory:").unwrap(),
                db: None,
            },
            Backend::Postgres => {
                let db = PostgresDb::create();
                Opened {
                    dir: Directory::open_postgres(db.url()).unwrap(),
                    db: Some(db),
                }
            }
        }
    }

    /// A directory holding the three demo organisers, imported from the fixture file.
    fn demo(backend: Backend) -> Opened {
        let dir = empty(backend);
        let file = std::fs::File::open(fixture()).unwrap();
        let summary = dir.import_csv(file, &Provider::dialbridge()).unwrap();
        assert_eq!(
            summary,
            ImportSummary {
                added: 3,
                updated: 0
            }
        );
        dir
    }

    fn import_str(dir: &Directory, csv: &str) -> Result<ImportSummary, DirectoryError> {
        dir.import_csv(csv.as_bytes(), &Provider::dialbridge())
    }

    fn refused(result: Result<ImportSummary, DirectoryError>) -> Vec<RowError> {
        match result {
            Err(DirectoryError::ImportRefused(report)) => report.errors,
            other => panic!("expected a refused import, got {other:?}"),
        }
    }

    fn export(dir: &Directory, tenant: Option<&TenantId>) -> String {
        let mut out = Vec::new();
        dir.export_csv(tenant, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn demo_organisers_import_from_the_fixture(backend: Backend) {
        let dir = demo(backend);

        let adele = dir
            .lookup(&t("contoso"), &id("123456789"))
            .unwrap()
            .unwrap();
        assert_eq!(adele.organiser.as_str(), "adele@contoso.com");
        assert_eq!(adele.display_name, "Adele Vance");
        assert!(!adele.wait_for_leader);
        assert_eq!(adele.tenant, t("contoso"));
        assert_eq!(adele.key().id, id("123456789"));

        let megan = dir
            .lookup(&t("contoso"), &id("987654321"))
            .unwrap()
            .unwrap();
        assert_eq!(megan.organiser.as_str(), "megan@contoso.com");
        assert!(megan.wait_for_leader);

        let ravi = dir
            .lookup(&t("fabrikam"), &id("555000111"))
            .unwrap()
            .unwrap();
        assert_eq!(ravi.organiser.as_str(), "ravi@fabrikam.com");
        assert!(!ravi.wait_for_leader);

        // Looked up only within the tenant of the dialled bridge.
        assert_eq!(dir.lookup(&t("contoso"), &id("555000111")).unwrap(), None);
        assert_eq!(dir.lookup(&t("fabrikam"), &id("123456789")).unwrap(), None);
        assert_eq!(dir.lookup(&t("contoso"), &id("111111111")).unwrap(), None);

        assert!(
            dir.verify_pin(&t("contoso"), &id("123456789"), &pin("13579"))
                .unwrap()
        );
        assert!(
            dir.verify_pin(&t("contoso"), &id("987654321"), &pin("24680"))
                .unwrap()
        );
        assert!(
            dir.verify_pin(&t("fabrikam"), &id("555000111"), &pin("9999"))
                .unwrap()
        );

        assert!(
            !dir.verify_pin(&t("contoso"), &id("123456789"), &pin("24680"))
                .unwrap()
        );
        assert!(
            !dir.verify_pin(&t("contoso"), &id("123456789"), &pin("135790"))
                .unwrap()
        );
        assert!(
            !dir.verify_pin(&t("fabrikam"), &id("555000111"), &pin("9998"))
                .unwrap()
        );
        // Right PIN, wrong tenant: no such conference there.
        assert!(
            !dir.verify_pin(&t("contoso"), &id("555000111"), &pin("9999"))
                .unwrap()
        );

        let all = dir.list(None).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|r| r.provider == Provider::dialbridge()));
        assert_eq!(dir.list(Some(&t("fabrikam"))).unwrap().len(), 1);
    }

    fn export_is_the_fixture_without_pins(backend: Backend) {
        let dir = demo(backend);
        let fixture = std::fs::read_to_string(fixture()).unwrap();
        let expected: String = fixture
            .lines()
            .map(|l| {
                // Blank the 7th field (pin); the fixture has no quoted commas.
                let mut f: Vec<&str> = l.split(',').collect();
                if f[6] != "pin" {
                    f[6] = "";
                }
                f.join(",") + "\n"
            })
            .collect();
        let out = export(&dir, None);
        assert_eq!(out, expected);
        for secret in ["13579", "24680", "9999"] {
            assert!(!out.contains(secret), "export leaks a PIN");
        }
        // And each pin field is empty, read as CSV.
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        assert_eq!(reader.headers().unwrap().get(6), Some("pin"));
        let mut rows = 0;
        for record in reader.records() {
            assert_eq!(record.unwrap().get(6), Some(""));
            rows += 1;
        }
        assert_eq!(rows, 3);

        let contoso_only = export(&dir, Some(&t("contoso")));
        assert_eq!(contoso_only.lines().count(), 3);
        assert!(!contoso_only.contains("fabrikam"));
    }

    fn a_file_with_bad_rows_is_refused_whole_with_every_line_reported(backend: Backend) {
        let dir = demo(backend);
        let before = dir.list(None).unwrap();
        let before_export = export(&dir, None);

        let bad = format!(
            "{HEADER}
contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,123456789,11223,no
contoso,nina@contoso.com,Nina,+14255550100,,12345,5555,yes
,nobody@contoso.com,No Tenant,+14255550100,,222333444,5555,no
contoso,,No One,14255550100,,222333445,5555,maybe
contoso,omar@contoso.com,Omar,+14255550100,,987654321,5555,no
contoso,pat@contoso.com,Pat,+14255550100,,444555666,12a45,no
contoso,quinn@contoso.com,Quinn,+14255550100,,123456789,4444,no
contoso,rita@contoso.com,Rita,+14255550100,,777888999,,no
contoso,adele@contoso.com,Adele Again,+14255550100,,777888990,1234,no
fabrikam,sam@fabrikam.com,Sam,+493070000100,,123456789,4321,no
contoso,tom@contoso.com,Tom,+14255550100
contoso,uma@contoso.com,\"Uma
Two Lines\",+14255550100,,600700801,8081,no
contoso,val@contoso.com,Val,+14255550100,,600700800,8080,TRUE
contoso,wes@contoso.com,Wes,+14255550100,+0800,600700802,8082,false
"
        );
        let errors = refused(import_str(&dir, &bad));
        let line = |line, problem| RowError { line, problem };
        assert_eq!(
            errors,
            vec![
                line(3, RowProblem::Invalid(Column::ConferenceId)),
                line(4, RowProblem::Invalid(Column::Tenant)),
                line(5, RowProblem::Invalid(Column::Organiser)),
                line(5, RowProblem::Invalid(Column::TollNumber)),
                line(5, RowProblem::Invalid(Column::WaitForLeader)),
                line(
                    6,
                    RowProblem::ConferenceIdTaken {
                        owner: org("megan@contoso.com")
                    }
                ),
                line(7, RowProblem::Invalid(Column::Pin)),
                line(8, RowProblem::DuplicateConferenceId { first_line: 2 }),
                line(9, RowProblem::PinRequired),
                line(10, RowProblem::DuplicateOrganiser { first_line: 2 }),
                line(
                    12,
                    RowProblem::FieldCount {
                        expected: 8,
                        found: 4
                    }
                ),
                // A quoted field spans lines 13-14; the next row is line 15.
                line(13, RowProblem::Invalid(Column::DisplayName)),
                line(16, RowProblem::Invalid(Column::TollFreeNumber)),
            ]
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text[0], "line 3: conference_id must be 6 to 12 digits");
        assert_eq!(
            text[5],
            "line 6: conference_id already belongs to megan@contoso.com"
        );
        assert_eq!(text[8], "line 9: pin is required for a new organiser");
        assert_eq!(text[10], "line 12: expected 8 fields, found 4");

        // The report never echoes a PIN, good or bad.
        let err = import_str(&dir, &bad).unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            for secret in ["12a45", "11223", "5555", "4444", "8080"] {
                assert!(!shown.contains(secret), "report shows a PIN: {shown}");
            }
        }

        // Nothing was applied, not even the good rows.
        assert_eq!(dir.list(None).unwrap(), before);
        assert_eq!(export(&dir, None), before_export);
        assert!(
            dir.verify_pin(&t("contoso"), &id("123456789"), &pin("13579"))
                .unwrap()
        );
        assert!(
            !dir.verify_pin(&t("contoso"), &id("123456789"), &pin("11223"))
                .unwrap()
        );
        assert_eq!(dir.lookup(&t("fabrikam"), &id("123456789")).unwrap(), None);

        // The good rows alone go through.
        let good = format!(
            "{HEADER}
contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,123456789,11223,no
fabrikam,sam@fabrikam.com,Sam,+493070000100,,123456789,4321,no
contoso,val@contoso.com,Val,+14255550100,,600700800,8080,TRUE
"
        );
        assert_eq!(
            import_str(&dir, &good).unwrap(),
            ImportSummary {
                added: 2,
                updated: 1
            }
        );
        assert!(
            dir.verify_pin(&t("contoso"), &id("123456789"), &pin("11223"))
                .unwrap()
        );
        assert!(
            !dir.verify_pin(&t("contoso"), &id("123456789"), &pin("13579"))
                .unwrap()
        );
        assert!(
            dir.verify_pin(&t("fabrikam"), &id("123456789"), &pin("4321"))
                .unwrap()
        );
        assert!(
            dir.lookup(&t("contoso"), &id("600700800"))
                .unwrap()
                .unwrap()
                .wait_for_leader
        );
    }

    fn export_then_import_round_trips_and_keeps_pins(backend: Backend) {
        let dir = demo(backend);
        let before = dir.list(None).unwrap();
        let file = export(&dir, None);
        // The export has empty PINs: re-importing it keeps every organiser's PIN.
        assert_eq!(
            import_str(&dir, &file).unwrap(),
            ImportSummary {
                added: 0,
                updated: 3
            }
        );
        assert_eq!(dir.list(None).unwrap(), before);
        assert_eq!(export(&dir, None), file);
        assert!(
            dir.verify_pin(&t("contoso"), &id("987654321"), &pin("24680"))
                .unwrap()
        );

        // Into an empty directory the same file is refused: new organisers need PINs.
        let empty = empty(backend);
        let errors = refused(import_str(&empty, &file));
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(errors.iter().all(|e| e.problem == RowProblem::PinRequired));
        assert!(empty.list(None).unwrap().is_empty());
    }

    fn reimport_updates_a_pin_and_the_provider(backend: Backend) {
        let dir = demo(backend);
        let telco = Provider::parse("telco-a").unwrap();
        let file = format!(
            "{HEADER}
contoso,adele@contoso.com,Adele Vance,+33170000100,,123456789,86420,yes
contoso,megan@contoso.com,Megan Bowen,+14255550100,+18885550100,987654321,,yes
"
        );
        let summary = dir.import_csv(file.as_bytes(), &telco).unwrap();
        assert_eq!(
            summary,
            ImportSummary {
                added: 0,
                updated: 2
            }
        );
        let c = t("contoso");
        assert!(dir.verify_pin(&c, &id("123456789"), &pin("86420")).unwrap());
        assert!(!dir.verify_pin(&c, &id("123456789"), &pin("13579")).unwrap());
        // Empty PIN: kept.
        assert!(dir.verify_pin(&c, &id("987654321"), &pin("24680")).unwrap());

        let adele = dir
            .organiser(&c, &org("adele@contoso.com"))
            .unwrap()
            .unwrap();
        assert_eq!(
            adele.provider, telco,
            "one provider at a time: the importer's"
        );
        assert_eq!(adele.toll_number.as_str(), "+33170000100");
        assert_eq!(adele.toll_free_number, None);
        assert!(adele.wait_for_leader);
        // Ravi was not in the file: untouched.
        let ravi = dir
            .organiser(&t("fabrikam"), &org("ravi@fabrikam.com"))
            .unwrap()
            .unwrap();
        assert_eq!(ravi.provider, Provider::dialbridge());
    }

    fn conference_ids_are_unique_per_tenant_only(backend: Backend) {
        let dir = demo(backend);
        // Same ID twice in one tenant within the file.
        let dup = format!(
            "{HEADER}
fabrikam,a@fabrikam.com,A,+493070000100,,700000001,1111,no
fabrikam,b@fabrikam.com,B,+493070000100,,700000001,2222,no
contoso,c@contoso.com,C,+14255550100,,700000001,3333,no
"
        );
        assert_eq!(
            refused(import_str(&dir, &dup)),
            [RowError {
                line: 3,
                problem: RowProblem::DuplicateConferenceId { first_line: 2 }
            }]
        );
        // Against an existing organiser of the same tenant.
        let taken =
            format!("{HEADER}\nfabrikam,a@fabrikam.com,A,+493070000100,,555000111,1111,no\n");
        assert_eq!(
            refused(import_str(&dir, &taken)),
            [RowError {
                line: 2,
                problem: RowProblem::ConferenceIdTaken {
                    owner: org("ravi@fabrikam.com")
                }
            }]
        );
        // The same ID in another tenant is fine.
        let other_tenant =
            format!("{HEADER}\ncontoso,c@contoso.com,C,+14255550100,,555000111,3333,no\n");
        assert_eq!(import_str(&dir, &other_tenant).unwrap().added, 1);
        assert_eq!(
            dir.lookup(&t("contoso"), &id("555000111"))
                .unwrap()
                .unwrap()
                .organiser,
            org("c@contoso.com")
        );
        assert_eq!(
            dir.lookup(&t("fabrikam"), &id("555000111"))
                .unwrap()
                .unwrap()
                .organiser,
            org("ravi@fabrikam.com")
        );

        // The same rule through upsert_organiser.
        let mut record = dir
            .organiser(&t("contoso"), &org("c@contoso.com"))
            .unwrap()
            .unwrap();
        record.conference_id = id("987654321");
        match dir.upsert_organiser(&record, None) {
            Err(DirectoryError::ConferenceIdTaken { owner, .. }) => {
                assert_eq!(owner, org("megan@contoso.com"));
            }
            other => panic!("expected ConferenceIdTaken, got {other:?}"),
        }
    }

    fn conference_ids_can_swap_between_organisers_in_one_import(backend: Backend) {
        let dir = demo(backend);
        let swap = format!(
            "{HEADER}
contoso,adele@contoso.com,Adele Vance,+14255550100,+18885550100,987654321,,no
contoso,megan@contoso.com,Megan Bowen,+14255550100,+18885550100,123456789,,yes
"
        );
        assert_eq!(import_str(&dir, &swap).unwrap().updated, 2);
        let c = t("contoso");
        let info = dir.lookup(&c, &id("987654321")).unwrap().unwrap();
        assert_eq!(info.organiser, org("adele@contoso.com"));
        // PINs follow their organiser.
        assert!(dir.verify_pin(&c, &id("987654321"), &pin("13579")).unwrap());
        assert!(dir.verify_pin(&c, &id("123456789"), &pin("24680")).unwrap());
    }

    fn header_problems_are_line_one(backend: Backend) {
        let dir = empty(backend);
        let errors = refused(import_str(
            &dir,
            "tenant,organiser,display_name,toll_number,conference_id,pin\ncontoso,a@b,A,+1,123456,1234\n",
        ));
        assert_eq!(
            errors,
            [
                RowError {
                    line: 1,
                    problem: RowProblem::MissingColumn(Column::TollFreeNumber)
                },
                RowError {
                    line: 1,
                    problem: RowProblem::MissingColumn(Column::WaitForLeader)
                },
            ]
        );
        assert_eq!(refused(import_str(&dir, "")).len(), 8);

        // Columns in another order, other case, an extra column and a BOM are fine.
        let file = "\u{feff}PIN,conference_id,tenant,organiser,display_name,toll_number,toll_free_number,wait_for_leader,notes
1234,123456,contoso,a@contoso.com,A,+14255550100,,no,hello
";
        assert_eq!(import_str(&dir, file).unwrap().added, 1);
        assert!(
            dir.verify_pin(&t("contoso"), &id("123456"), &pin("1234"))
                .unwrap()
        );
    }

    fn non_utf8_row_is_reported_by_line(backend: Backend) {
        let dir = demo(backend);
        let mut file = format!(
        "{HEADER}\ncontoso,x@contoso.com,X,+14255550100,,600000001,1234,no\ncontoso,y@contoso.com,"
    )
    .into_bytes();
        file.extend_from_slice(b"Y\xff\xfe,+14255550100,,600000002,1234,no\n");
        let errors = match dir.import_csv(&file[..], &Provider::dialbridge()) {
            Err(DirectoryError::ImportRefused(r)) => r.errors,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            errors,
            [RowError {
                line: 3,
                problem: RowProblem::Unreadable("not UTF-8 text".into())
            }]
        );
        assert_eq!(dir.list(None).unwrap().len(), 3);
    }

    fn pins_are_stored_only_as_argon2_hashes(backend: Backend) {
        let path = TempPath::new("pins");
        let pg = (backend == Backend::Postgres).then(PostgresDb::create);
        let open = || match &pg {
            Some(db) => Directory::open_postgres(db.url()).unwrap(),
            None => Directory::open(path.as_str()).unwrap(),
        };
        {
            let dir = open();
            let file = std::fs::File::open(fixture()).unwrap();
            dir.import_csv(file, &Provider::dialbridge()).unwrap();
            dir.set_pin(&t("fabrikam"), &org("ravi@fabrikam.com"), &pin("97531"))
                .unwrap();
        }
        // The stored hashes, and every byte the database holds for the organisers.
        let (hashes, stored): (Vec<String>, Vec<(String, Vec<u8>)>) = match &pg {
            None => {
                let conn = rusqlite::Connection::open(path.as_str()).unwrap();
                let mode: String = conn
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(mode, "wal");
                let mut stmt = conn.prepare("SELECT pin_hash FROM organisers").unwrap();
                let hashes = stmt
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let files = path
                    .all_files()
                    .into_iter()
                    .filter_map(|f| Some((f.display().to_string(), std::fs::read(&f).ok()?)))
                    .collect();
                (hashes, files)
            }
            Some(db) => {
                let mut client = ::postgres::Client::connect(db.url(), ::postgres::NoTls).unwrap();
                let hashes = client
                    .query("SELECT pin_hash FROM directory.organisers", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let rows: String = client
                    .query_one(
                        "SELECT string_agg(o::text, ' ') FROM directory.organisers o",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                (
                    hashes,
                    vec![("directory.organisers".into(), rows.into_bytes())],
                )
            }
        };
        assert_eq!(hashes.len(), 3);
        let (m, passes, p) = PIN_HASH_PARAMS;
        let prefix = format!("$argon2id$v=19$m={m},t={passes},p={p}$");
        for h in &hashes {
            assert!(h.starts_with(&prefix), "not a PHC argon2id string: {h}");
        }
        let mut unique = hashes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        // And the clear PINs are nowhere in what is stored (5-digit strings cannot turn
        // up by chance in base64 salts and hashes often enough to matter).
        assert!(!stored.is_empty());
        for (name, bytes) in &stored {
            for secret in [&b"13579"[..], b"24680", b"97531"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "clear PIN in {name}"
                );
            }
        }
        // The database reopens with its data.
        let dir = open();
        assert!(
            dir.verify_pin(&t("fabrikam"), &id("555000111"), &pin("97531"))
                .unwrap()
        );
        assert!(
            !dir.verify_pin(&t("fabrikam"), &id("555000111"), &pin("9999"))
                .unwrap()
        );
    }

    fn upsert_set_reset_and_remove(backend: Backend) {
        let dir = empty(backend);
        let mut record = OrganiserRecord {
            tenant: t("contoso"),
            organiser: org("lee@contoso.com"),
            display_name: "Lee Gu".into(),
            toll_number: TelNumber::parse("+14255550100").unwrap(),
            toll_free_number: None,
            conference_id: id("246813579"),
            wait_for_leader: false,
            provider: Provider::default(),
        };
        assert!(matches!(
            dir.upsert_organiser(&record, None),
            Err(DirectoryError::PinRequired)
        ));
        assert_eq!(
            dir.upsert_organiser(&record, Some(&pin("4321"))).unwrap(),
            Upsert::Added
        );
        record.wait_for_leader = true;
        assert_eq!(
            dir.upsert_organiser(&record, None).unwrap(),
            Upsert::Updated
        );
        assert_eq!(dir.list(None).unwrap(), [record.clone()]);
        let c = t("contoso");
        assert!(dir.verify_pin(&c, &id("246813579"), &pin("4321")).unwrap());

        dir.set_pin(&c, &record.organiser, &pin("8765")).unwrap();
        assert!(!dir.verify_pin(&c, &id("246813579"), &pin("4321")).unwrap());
        assert!(dir.verify_pin(&c, &id("246813579"), &pin("8765")).unwrap());

        let fresh = dir.reset_pin(&c, &record.organiser).unwrap();
        assert_eq!(fresh.expose().len(), 6);
        assert_eq!(format!("{fresh:?}"), "***");
        assert!(dir.verify_pin(&c, &id("246813579"), &fresh).unwrap());

        let nobody = org("nobody@contoso.com");
        assert!(matches!(
            dir.set_pin(&c, &nobody, &pin("1111")),
            Err(DirectoryError::NoSuchOrganiser { .. })
        ));
        assert!(dir.remove_organiser(&c, &record.organiser).unwrap());
        assert!(!dir.remove_organiser(&c, &record.organiser).unwrap());
        assert_eq!(dir.lookup(&c, &id("246813579")).unwrap(), None);
        assert!(!dir.verify_pin(&c, &id("246813579"), &fresh).unwrap());

        record.tenant = t("");
        assert!(matches!(
            dir.upsert_organiser(&record, Some(&pin("1234"))),
            Err(DirectoryError::InvalidTenant)
        ));
    }

    fn usable_from_several_threads(backend: Backend) {
        let dir = demo(backend);
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert!(
                            dir.lookup(&t("contoso"), &id("123456789"))
                                .unwrap()
                                .is_some()
                        );
                    }
                    let right = if i % 2 == 0 { "13579" } else { "13578" };
                    dir.verify_pin(&t("contoso"), &id("123456789"), &pin(right))
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, [true, false, true, false]);
    }

    /// Timing note: prints what one verification costs here (not asserted: it depends on
    /// the machine and its load; the parameters are asserted instead).
    fn verify_timing_note(backend: Backend) {
        let dir = demo(backend);
        let (c, i, p) = (t("contoso"), id("123456789"), pin("13579"));
        let start = Instant::now();
        let n: u32 = 5;
        for _ in 0..n {
            assert!(dir.verify_pin(&c, &i, &p).unwrap());
        }
        let each = start.elapsed() / n;
        eprintln!(
            "verify_pin: {each:?} per verification with argon2id m={} KiB t={} p={}",
            PIN_HASH_PARAMS.0, PIN_HASH_PARAMS.1, PIN_HASH_PARAMS.2
        );
        assert_eq!(PIN_HASH_PARAMS, (16 * 1024, 2, 1));
    }

    // What only a shared database has.

    /// Two nodes' directories on one PostgreSQL database: what one writes the other
    /// reads at once, PINs and the guessing guard's lock-outs included.
    #[test]
    fn two_nodes_share_organisers_pins_and_lock_outs() {
        let a = demo(Backend::Postgres);
        let b = a.other_node();
        let c = t("contoso");
        assert!(b.verify_pin(&c, &id("123456789"), &pin("13579")).unwrap());

        let mut record = OrganiserRecord {
            tenant: c.clone(),
            organiser: org("lee@contoso.com"),
            display_name: "Lee Gu".into(),
            toll_number: TelNumber::parse("+14255550100").unwrap(),
            toll_free_number: None,
            conference_id: id("246813579"),
            wait_for_leader: true,
            provider: Provider::default(),
        };
        assert_eq!(
            a.upsert_organiser(&record, Some(&pin("4321"))).unwrap(),
            Upsert::Added
        );
        let found = b.lookup(&c, &id("246813579")).unwrap().unwrap();
        assert_eq!(found.organiser, record.organiser);
        assert!(found.wait_for_leader);
        assert!(b.verify_pin(&c, &id("246813579"), &pin("4321")).unwrap());
        // A PIN set through one node is the one the other checks.
        b.set_pin(&c, &record.organiser, &pin("8765")).unwrap();
        assert!(!a.verify_pin(&c, &id("246813579"), &pin("4321")).unwrap());
        assert!(a.verify_pin(&c, &id("246813579"), &pin("8765")).unwrap());
        // One tenant's conference IDs are unique across the nodes.
        record.organiser = org("kim@contoso.com");
        record.conference_id = id("987654321");
        assert!(matches!(
            b.upsert_organiser(&record, Some(&pin("1111"))),
            Err(DirectoryError::ConferenceIdTaken { owner, .. }) if owner == org("megan@contoso.com")
        ));
        assert!(b.remove_organiser(&c, &org("lee@contoso.com")).unwrap());
        assert_eq!(a.lookup(&c, &id("246813579")).unwrap(), None);

        // A lock-out one node stores, another restores (whole milliseconds: stored so).
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let locked = GuardRecord {
            scope: GuardScope::Caller(CallerKey("telco-a/+15550001111".into())),
            failures: 5,
            window_start: now,
            blocked_until: Some(now + Duration::from_secs(900)),
        };
        let counted = GuardRecord {
            scope: GuardScope::Conference(ConferenceKey {
                tenant: c.clone(),
                id: id("123456789"),
            }),
            failures: 2,
            window_start: now,
            blocked_until: None,
        };
        a.save_guard_records(std::slice::from_ref(&locked), now, Duration::from_secs(600))
            .unwrap();
        b.save_guard_records(
            std::slice::from_ref(&counted),
            now,
            Duration::from_secs(600),
        )
        .unwrap();
        let mut restored = b.guard_records().unwrap();
        restored.sort_by_key(|r| r.failures);
        assert_eq!(restored, [counted, locked]);
        assert_eq!(a.guard_records().unwrap().len(), 2);
    }

    /// Two nodes importing files that move every conference ID, and upserting new
    /// organisers that want the same ID, at the same time: every import applies whole
    /// (never half of one and half of the other), and each ID goes to exactly one.
    #[test]
    fn two_nodes_writing_at_once_leave_a_consistent_directory() {
        let a = empty(Backend::Postgres);
        let b = a.other_node();
        // Ten organisers with PINs, then two files that give them each other's IDs,
        // without PINs (kept: no hashing while racing).
        let row = |n: usize, shift: usize, pin: &str| {
            format!(
                "contoso,o{n}@contoso.com,O{n},+14255550100,,60000000{},{pin},no\n",
                (n + shift) % 10
            )
        };
        let file = |shift: usize, pins: bool| {
            let rows: String = (0..10)
                .map(|n| {
                    row(
                        n,
                        shift,
                        &if pins {
                            format!("100{n}")
                        } else {
                            String::new()
                        },
                    )
                })
                .collect();
            format!("{HEADER}\n{rows}")
        };
        assert_eq!(import_str(&a, &file(0, true)).unwrap().added, 10);
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [(a.dir.clone(), 1), (b.clone(), 2)]
            .into_iter()
            .map(|(dir, shift)| {
                let (barrier, text) = (barrier.clone(), file(shift, false));
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..4 {
                        assert_eq!(import_str(&dir, &text).unwrap().updated, 10);
                    }
                })
            })
            .collect();
        for racer in racers {
            racer.join().unwrap();
        }
        // One file's IDs throughout, and every PIN still its organiser's.
        let records = b.list(None).unwrap();
        assert_eq!(records.len(), 10);
        let shift_of = |r: &OrganiserRecord| {
            let n: usize = r.organiser.as_str()[1..2].parse().unwrap();
            let i: usize = r.conference_id.as_str()[8..].parse().unwrap();
            (i + 10 - n) % 10
        };
        let shift = shift_of(&records[0]);
        assert!(shift == 1 || shift == 2, "{records:?}");
        assert!(records.iter().all(|r| shift_of(r) == shift), "{records:?}");
        let i = (3 + shift) % 10;
        assert!(
            a.verify_pin(&t("contoso"), &id(&format!("60000000{i}")), &pin("1003"))
                .unwrap()
        );

        // New organisers of both nodes racing for one conference ID: one gets it.
        for k in 0..3 {
            let racers: Vec<_> = [(a.dir.clone(), "p"), (b.clone(), "q")]
                .into_iter()
                .map(|(dir, who)| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let record = OrganiserRecord {
                            tenant: t("contoso"),
                            organiser: org(&format!("{who}{k}@contoso.com")),
                            display_name: String::new(),
                            toll_number: TelNumber::parse("+14255550100").unwrap(),
                            toll_free_number: None,
                            conference_id: id(&format!("70000000{k}")),
                            wait_for_leader: false,
                            provider: Provider::default(),
                        };
                        barrier.wait();
                        dir.upsert_organiser(&record, Some(&pin("2468")))
                    })
                })
                .collect();
            let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
            let added = results
                .iter()
                .filter(|r| matches!(r, Ok(Upsert::Added)))
                .count();
            let taken = results
                .iter()
                .filter(|r| matches!(r, Err(DirectoryError::ConferenceIdTaken { .. })))
                .count();
            assert_eq!((added, taken), (1, 1), "{results:?}");
            let owner = a
                .lookup(&t("contoso"), &id(&format!("70000000{k}")))
                .unwrap();
            assert_eq!(
                owner,
                b.lookup(&t("contoso"), &id(&format!("70000000{k}")))
                    .unwrap()
            );
        }
        assert_eq!(a.list(None).unwrap().len(), 13);
    }

    /// PostgreSQL stops: the directory's operations fail (no panic); once it is back
    /// they work again on the same `Directory`, whether or not anything was tried while
    /// it was down.
    #[test]
    fn an_outage_fails_operations_and_the_directory_comes_back_by_itself() {
        let mut server = Postgres::start();
        taking_logins(&server.url());
        let dir = Directory::open_postgres(&server.url()).unwrap();
        let file = std::fs::File::open(fixture()).unwrap();
        dir.import_csv(file, &Provider::dialbridge()).unwrap();
        let (c, adele) = (t("contoso"), id("123456789"));
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let record = |failures| GuardRecord {
            scope: GuardScope::Caller(CallerKey("telco-a/+15550001111".into())),
            failures,
            window_start: now,
            blocked_until: None,
        };
        let window = Duration::from_secs(600);

        server.stop();
        assert!(dir.lookup(&c, &adele).is_err());
        assert!(dir.verify_pin(&c, &adele, &pin("13579")).is_err());
        assert!(dir.list(None).is_err());
        assert!(dir.save_guard_records(&[record(1)], now, window).is_err());
        server.resume();
        taking_logins(&server.url());
        assert!(dir.lookup(&c, &adele).unwrap().is_some());

        // Nothing tried while it was down: the first read, then the first write, after
        // a restart find their connection dead and go on on a fresh one.
        for write in [false, true] {
            server.stop();
            server.resume();
            taking_logins(&server.url());
            if write {
                dir.save_guard_records(&[record(2)], now, window).unwrap();
            } else {
                assert!(dir.verify_pin(&c, &adele, &pin("13579")).unwrap());
            }
        }
        assert_eq!(dir.guard_records().unwrap(), [record(2)]);
    }

    /// Waits (bounded) until the server takes logins: it accepts TCP connections a
    /// moment before it has finished starting up.
    fn taking_logins(url: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while let Err(e) = ::postgres::Client::connect(url, ::postgres::NoTls) {
            assert!(Instant::now() < end, "postgres never took a login: {e}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A database path under the temp dir, removed (with its -wal and -shm) on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!(
                "dialbridge-directory-{tag}-{}-{nanos}.db",
                std::process::id()
            );
            Self(std::env::temp_dir().join(name))
        }

        fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }

        fn all_files(&self) -> Vec<PathBuf> {
            ["", "-wal", "-shm", "-journal"]
                .iter()
                .map(|s| PathBuf::from(format!("{}{s}", self.as_str())))
                .collect()
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            for f in self.all_files() {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}
