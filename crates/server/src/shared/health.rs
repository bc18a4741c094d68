//! Whether the shared PostgreSQL answers (`[shared] postgres`): a thread of its own asks
//! it every second (`SELECT 1` on one connection, connecting again when lost), so a new
//! call can be refused with 503 while it is away instead of being admitted and failing
//! at its first lookup, its first minute or its record. Calls in progress are left alone;
//! each store reconnects by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dialbridge_store::pg;

/// How often the database is asked.
const EVERY: Duration = Duration::from_secs(1);

/// The answer of the last probe; the prober stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct PostgresHealth {
    up: Arc<AtomicBool>,
}

impl PostgresHealth {
    /// Starts probing `url` (up until a probe says otherwise: the stores have just
    /// opened on it).
    pub fn start(url: &str) -> Result<PostgresHealth, crate::Error> {
        let config =
            pg::config(url).map_err(|e| crate::Error::Config(format!("[shared] postgres: {e}")))?;
        let up = Arc::new(AtomicBool::new(true));
        let weak = Arc::downgrade(&up);
        std::thread::Builder::new()
            .name("postgres-health".into())
            .spawn(move || probe(&config, &weak))
            .map_err(|e| crate::Error::Config(format!("[shared] postgres: {e}")))?;
        Ok(PostgresHealth { up })
    }

    /// Whether the last probe was answered.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

fn probe(config: &postgres::Config, up: &Weak<AtomicBool>) {
    let mut client: Option<postgres::Client> = None;
    loop {
        std::thread::sleep(EVERY);
        let Some(flag) = up.upgrade() else {
            return;
        };
        if client.as_ref().is_none_or(postgres::Client::is_closed) {
            client = pg::connect(config).ok();
        }
        let answered = client
            .as_mut()
            .is_some_and(|c| c.simple_query("SELECT 1").is_ok());
        if !answered {
            client = None;
        }
        let was = flag.swap(answered, Ordering::Relaxed);
        if was && !answered {
            tracing::error!(
                "shared PostgreSQL unavailable: new calls are refused (503) until it answers, calls in progress go on"
            );
        } else if !was && answered {
            tracing::warn!("shared PostgreSQL answers again; new calls are admitted");
        }
    }
}
