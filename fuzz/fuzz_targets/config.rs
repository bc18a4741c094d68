//! Arbitrary text as the configuration file, through what `dialbridge serve` does with
//! it: the server's sections (`Config::parse`) and then the number plan
//! (`plan_from`), and the router's reading of the plan on its own. Nothing panics,
//! and every refusal names the file and a line the file has.
#![no_main]

use std::path::Path;

use dialbridge_router::Plan;
use dialbridge_server::config::Config;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(FILE);
    // A line past the end is allowed: a fault at the end of the file.
    let lines = text.split('\n').count();
    match Config::parse(path, Path::new("/nonexistent/dialbridge-fuzz"), text) {
        Ok(config) => {
            if let Err(e) = dialbridge_server::plan_from(&config) {
                assert!(
                    e.to_string().contains(FILE),
                    "refusal without the file: {e}"
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            let at = message.find(FILE).expect("refusal names the file");
            let after = &message[at + FILE.len()..];
            if let Some(line) = after.strip_prefix(':').and_then(|s| s.split(':').next()) {
                if let Ok(line) = line.parse::<usize>() {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}");
                }
            }
        }
    }
    if let Err(e) = Plan::from_toml_str(path, text) {
        assert!(!e.faults.is_empty(), "a refusal without a fault");
        for fault in &e.faults {
            if let Some(line) = fault.line {
                assert!((1..=lines).contains(&line), "fault line {line} of {lines}");
            }
        }
    }
});
