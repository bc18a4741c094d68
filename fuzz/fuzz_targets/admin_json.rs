//! Arbitrary bytes as the JSON body of every admin API route that takes one, read as
//! the handlers read them (axum's `Json` extractor, then our refusal). Nothing panics,
//! a refusal is a 4xx, and a body accepted is accepted with the same meaning however
//! it is formatted (re-serialised from its JSON value).
#![no_main]

use dialbridge_server::admin::fuzzing::{BODIES, read_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reprinted = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok());
    for route in BODIES {
        let read = read_body(route, data).expect("a route with a body");
        match &read {
            Ok(_) => {
                let again = read_body(route, reprinted.as_deref().expect("accepted is JSON"));
                assert_eq!(
                    again.as_ref(),
                    Some(&read),
                    "{route}: formatting changed the meaning"
                );
            }
            Err((status, message)) => {
                assert!((400..500).contains(status), "{route}: status {status}");
                assert!(!message.is_empty());
            }
        }
    }
});
