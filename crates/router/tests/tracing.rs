//! Each decision is one `tracing` event carrying number, trunk, tenant, bridge and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use dialbridge_router::{Plan, Router};

/// Records the fields of every event.
#[derive(Default)]
struct Capture(Mutex<Vec<HashMap<String, String>>>);

struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(HashMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_decision_is_an_event_with_its_context() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.toml");
    let router = Router::new(Plan::load(&path).unwrap());
    let capture = Arc::new(Capture::default());
    tracing::subscriber::with_default(capture.clone(), || {
        let telco_a = router.identify_trunk([127, 0, 0, 20].into()).unwrap();
        let ms = router.identify_trunk([127, 0, 0, 10].into()).unwrap();
        let _grant = router.route(telco_a, "sip:+33170000100@127.0.0.1").unwrap();
        let _ = router.route(ms, "sip:+33170000100@127.0.0.1").unwrap_err();
    });
    let events = capture.0.lock().unwrap();
    let decisions: Vec<_> = events
        .iter()
        .filter(|e| e.contains_key("outcome"))
        .collect();
    assert_eq!(decisions.len(), 2, "{events:?}");
    let get = |i: usize, k: &str| decisions[i].get(k).cloned().unwrap_or_default();
    assert_eq!(
        [
            get(0, "number"),
            get(0, "trunk"),
            get(0, "tenant"),
            get(0, "bridge"),
            get(0, "outcome")
        ],
        [
            "+33170000100",
            "telco-a",
            "contoso",
            "contoso-bridge",
            "admitted"
        ]
        .map(String::from)
    );
    assert_eq!(
        [get(1, "trunk"), get(1, "bridge"), get(1, "outcome")],
        ["microsoft-pstn", "contoso-bridge", "wrong_provider"].map(String::from)
    );
}
