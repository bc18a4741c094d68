//! Arbitrary bytes as an organiser import file (the CSV a provider sends back), through
//! the checks `Directory::import_csv` runs before the database: nothing panics, every
//! problem is on a line the file has, and the rows it accepts, written as export
//! writes them and read again, are the same rows.
#![no_main]

use dialbridge_conference::directory::{Provider, fuzzing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let provider = Provider::dialbridge();
    let parsed = fuzzing::parse_import(data, &provider).expect("no I/O error reading bytes");
    // Lines count from 1; one past the last is where an unterminated row ends.
    let lines = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    for e in &parsed.errors {
        assert!(e.line <= lines, "problem on line {} of {lines}", e.line);
        let _ = e.to_string();
    }
    for (line, _, _) in &parsed.rows {
        assert!((2..=lines).contains(line), "row on line {line} of {lines}");
    }
    if !parsed.errors.is_empty() {
        return;
    }
    let records: Vec<_> = parsed.rows.iter().map(|(_, r, _)| r.clone()).collect();
    let file = fuzzing::export(&records).expect("export writes to memory");
    let again = fuzzing::parse_import(&file, &provider).expect("reads from memory");
    assert!(
        again.errors.is_empty(),
        "our export is refused: {:?}",
        again.errors
    );
    let back: Vec<_> = again.rows.into_iter().map(|(_, r, _)| r).collect();
    assert_eq!(back, records, "export/import round trip");
});
