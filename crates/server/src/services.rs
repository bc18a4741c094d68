//! What every call needs, built once at start-up and shared: the router, the media
//! engine, the prompts, the organiser directory, the IVR settings and the ledger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dialbridge_conference::guard::{CallerKey, GuardRecord, GuessGuard, PinEntry};
use dialbridge_conference::ivr::{ConferenceKey, PinResult};

use dialbridge_conference::directory::{Directory, DirectoryError, Provider};
use dialbridge_conference::ivr::PromptId;
use dialbridge_ledger::Ledger;
use dialbridge_media::{CountAnnouncer, EngineOptions, MediaEngine, Prompt, Tone};
use dialbridge_router::Router;

use crate::Error;
use crate::call_flow::Notice;
use crate::cdr::CdrStore;
use crate::conferences::{Conferences, MeetingSettings};
use crate::config::{Config, IvrConfig, NonceSecret};

/// The shared services.
pub struct Services {
    pub router: Router,
    pub media: MediaEngine,
    pub prompts: Prompts,
    pub directory: Directory,
    pub ivr: IvrConfig,
    /// How long a call may stay silent (no RTP, no RTCP) before it is ended.
    pub media_timeouts: crate::call_flow::MediaTimeouts,
    /// The meetings in progress.
    pub conferences: Conferences,
    /// "There are N people in the meeting."
    pub counts: CountAnnouncer,
    /// What callers hear in the lobby while they wait for the leader.
    pub music_on_hold: Arc<Prompt>,
    /// Call detail records (billing data), committed as each call ends.
    pub cdrs: CdrStore,
    /// The meetings' dial-outs, in progress and recently finished.
    pub dial_outs: crate::dial_out::DialOuts,
    /// Credits, pools and their rows; `None` without `[money]` (nothing is billed).
    pub ledger: Option<Ledger>,
    /// Calls refused or ended for money, by reason (for `/metrics`).
    pub money_refusals: Arc<crate::metrics::MoneyRefusals>,
    /// Capacity shared with other nodes in Redis (`[shared] redis`); `None`: this
    /// node's router alone decides.
    pub shared_capacity: Option<crate::shared::SharedCapacity>,
    /// Whether the shared PostgreSQL answers (`[shared] postgres`).
    pub postgres_health: Option<crate::shared::health::PostgresHealth>,
    /// Failure limits counted on every node (`[shared] redis`).
    pub shared_limits: Option<crate::shared::limits::SharedLimits>,
    /// Wrong conference IDs and PINs, counted per caller and per conference.
    guard: Mutex<GuessGuard>,
    /// The guard's changed counters, to the one thread that writes them in order.
    guard_writes: std::sync::mpsc::Sender<Vec<GuardRecord>>,
    /// The key of the digest nonces (configured, or generated once and kept in the CDR
    /// database). A secret: `Services`' Debug leaves it out.
    pub nonce_secret: Vec<u8>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

impl Services {
    /// Loads everything `config` names; any fault stops the start with a message naming
    /// the file at fault.
    pub fn start(
        config: &Config,
        gauges: Arc<crate::metrics::Gauges>,
    ) -> Result<Arc<Services>, Error> {
        let router = Router::new(crate::plan_from(config)?);
        let ports = config.media.rtp_ports.clone();
        let media = MediaEngine::with_options(
            config.media.address,
            ports.start..=ports.end - 1,
            EngineOptions {
                address6: config.media.address6,
                shards: config.media.shards,
            },
        )?;
        let prompts = Prompts::load(config)?;
        let (directory, stored) = open_directory(config)?;
        // The guard's counters from before a restart: a guesser is not forgiven.
        let mut guard = GuessGuard::new(config.guard);
        guard.restore(stored, Instant::now(), SystemTime::now());
        let guard_writes = guard_writer(directory.clone(), config.guard.window);
        let cdrs = open_cdr_store(config)?;
        // With PostgreSQL, the secret is read (or made) through its blocking client.
        let nonce_secret = off_runtime("nonce secret", || nonce_secret(config, &cdrs))?;
        let ledger = open_ledger(config)?;
        let shared_limits = crate::shared::limits::SharedLimits::start(config)?;
        let postgres_health = match &config.shared.postgres {
            Some(url) => Some(crate::shared::health::PostgresHealth::start(url)?),
            None => None,
        };
        let shared_capacity = match &config.shared.redis {
            Some(url) => Some(
                crate::shared::SharedCapacity::start(url, &config.shared.capacity()).map_err(
                    |e| Error::Config(format!("{}: [shared] {e}", config.path.display())),
                )?,
            ),
            None => None,
        };
        let counts = CountAnnouncer::load(config.media.prompts.join("count")).map_err(|e| {
            Error::Config(format!(
                "{}: {e}",
                config.media.prompts.join("count").display()
            ))
        })?;
        let conferences = Conferences::new(
            media.clone(),
            MeetingSettings {
                max_members: config.conference.max_members,
                join_leave_tones: config.conference.join_leave_tones,
                recordings_dir: config.conference.recordings_dir.clone().into(),
            },
            gauges,
        );
        Ok(Arc::new(Services {
            router,
            media,
            conferences,
            counts,
            music_on_hold: Arc::new(music_on_hold()),
            cdrs,
            dial_outs: Default::default(),
            ledger,
            money_refusals: Arc::default(),
            shared_capacity,
            shared_limits,
            postgres_health,
            prompts,
            directory,
            ivr: config.ivr.clone(),
            media_timeouts: config.media.timeouts,
            guard: Mutex::new(guard),
            guard_writes,
            nonce_secret,
        }))
    }

    /// Whether `caller` may try a conference ID (not in a guessing cool-down).
    pub fn guard_allows_id(&self, caller: &CallerKey) -> bool {
        self.guard()
            .is_none_or(|g| g.id_entry_allowed(caller, Instant::now()))
    }

    /// Whether `caller` may try the leader PIN of `conference`, and after how long.
    pub fn guard_pin_entry(&self, caller: &CallerKey, conference: &ConferenceKey) -> PinEntry {
        self.guard().map_or(
            PinEntry::Check {
                delay: Duration::ZERO,
            },
            |g| g.pin_entry(caller, conference, Instant::now()),
        )
    }

    /// Counts a conference ID that was not found.
    pub fn guard_wrong_id(&self, caller: &CallerKey) {
        if let Some(limits) = &self.shared_limits {
            limits.caller_failed(caller);
        }
        if let Some(mut g) = self.guard() {
            g.handle_wrong_id(caller, Instant::now());
            while g.poll_event().is_some() {} // the guard logs its own security events
            self.store_guard(&mut g);
        }
    }

    /// Hands the guard's changed counters to their writer (taken under the guard's
    /// lock, so they reach the file in the order they changed).
    fn store_guard(&self, guard: &mut GuessGuard) {
        let records = guard.take_changes(Instant::now(), SystemTime::now());
        if !records.is_empty() {
            let _ = self.guard_writes.send(records);
        }
    }

    /// Counts the outcome of a leader PIN check.
    pub fn guard_pin_result(
        &self,
        caller: &CallerKey,
        conference: &ConferenceKey,
        result: PinResult,
    ) {
        if let (PinResult::Invalid, Some(limits)) = (result, &self.shared_limits) {
            limits.caller_failed(caller);
            limits.conference_failed(conference);
        }
        if let Some(mut g) = self.guard() {
            match result {
                PinResult::Invalid => g.handle_wrong_pin(caller, conference, Instant::now()),
                PinResult::Valid => g.handle_pin_ok(caller),
                PinResult::Refused | PinResult::Failed => {}
            }
            while g.poll_event().is_some() {}
            self.store_guard(&mut g);
        }
    }

    /// The guard, unless a thread panicked holding it (then the defence is off rather
    /// than every call failing; the panic itself is logged where it happened).
    fn guard(&self) -> Option<std::sync::MutexGuard<'_, GuessGuard>> {
        let mut guard = self.guard.lock().ok()?;
        // Blocks other nodes' guessers earned, heard since the guard was last used.
        if let Some(limits) = &self.shared_limits {
            let blocks = limits.take_guard_blocks();
            if !blocks.is_empty() {
                let wall = SystemTime::now();
                let records = blocks
                    .into_iter()
                    .map(|(scope, until)| GuardRecord {
                        scope,
                        failures: 0,
                        window_start: wall,
                        blocked_until: Some(until),
                    })
                    .collect();
                guard.restore(records, Instant::now(), wall);
            }
        }
        Some(guard)
    }
}

/// The thread that writes the guard's counters to the directory's file, one batch
/// after another; it ends when the services are dropped.
fn guard_writer(
    directory: Directory,
    window: Duration,
) -> std::sync::mpsc::Sender<Vec<GuardRecord>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<GuardRecord>>();
    std::thread::Builder::new()
        .name("guard-writer".into())
        .spawn(move || {
            for records in rx {
                if let Err(e) = directory.save_guard_records(&records, SystemTime::now(), window) {
                    tracing::warn!(error = %e, "the guessing guard's counters were not stored");
                }
            }
        })
        .map_or_else(
            |e| tracing::warn!(error = %e, "no guard writer: counters stay in memory"),
            drop,
        );
    tx
}

/// The organiser directory, `[directory] import` applied, and the guessing guard's
/// stored counters: in the SQLite file of `[directory] database` by default, in the
/// PostgreSQL database of `[shared] postgres` when that is set (shared with the other
/// nodes: their organisers and lock-outs too).
fn open_directory(config: &Config) -> Result<(Directory, Vec<GuardRecord>), Error> {
    // Opened, imported and read off the runtime's threads whichever the backend: one
    // path to test.
    off_runtime("directory", || open_directory_here(config))
}

fn open_directory_here(config: &Config) -> Result<(Directory, Vec<GuardRecord>), Error> {
    let (opened, backend, database, key) = match &config.shared.postgres {
        Some(url) => {
            // Never the URL itself in a message: it may carry a password.
            let target = dialbridge_store::pg::target(url);
            let key = format!("[shared] postgres {target}: the organiser directory");
            (Directory::open_postgres(url), "postgres", target, key)
        }
        None => {
            let path = config.directory.database.clone();
            let opened = Directory::open(&path);
            (opened, "sqlite", path, "[directory] database".to_string())
        }
    };
    let fault = |what: &str, e: DirectoryError| {
        Error::Config(format!("{}: {key}{what}: {e}", config.path.display()))
    };
    let directory = opened.map_err(|e| fault("", e))?;
    if let Some(path) = &config.directory.import {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        directory
            .import_csv(file, &Provider::dialbridge())
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    }
    let stored = directory
        .guard_records()
        .map_err(|e| fault(" (guard counters)", e))?;
    tracing::info!(backend, database = %database, "directory open");
    Ok((directory, stored))
}

/// The ledger of `[money]` (its reservations left open by a crash settled), or `None`
/// without the section: in the SQLite file of `[money] database` by default, in the
/// PostgreSQL database of `[shared] postgres` when that is set (shared with the other
/// nodes, this one known by its `[shared] node` name).
fn open_ledger(config: &Config) -> Result<Option<Ledger>, Error> {
    let Some(money) = &config.money else {
        return Ok(None);
    };
    let now = SystemTime::now();
    let (ledger, backend, database) = match &config.shared.postgres {
        Some(url) => {
            // Never the URL itself in a message: it may carry a password.
            let target = dialbridge_store::pg::target(url);
            let ledger = off_runtime("ledger", || {
                Ledger::open_postgres(url, &config.shared.node, money.clone(), now).map_err(|e| {
                    Error::Config(format!(
                        "{}: [shared] postgres {target}: the ledger's PostgreSQL database: {e}",
                        config.path.display()
                    ))
                })
            })?;
            (ledger, "postgres", target)
        }
        None => {
            let path = money
                .database
                .clone()
                .unwrap_or_else(|| ":memory:".to_string());
            let ledger = Ledger::open(&path, money.clone(), now).map_err(|e| {
                Error::Config(format!(
                    "{}: [money] database {path}: {e}",
                    config.path.display()
                ))
            })?;
            (ledger, "sqlite", path)
        }
    };
    tracing::info!(
        tenants = money.tenants.len(),
        rates = money.rates.len(),
        settled_after_crash = ledger.recovered(),
        backend,
        database = %database,
        "ledger open"
    );
    Ok(Some(ledger))
}

/// Runs `f` on a thread of its own and waits for it. The PostgreSQL client blocks on a
/// runtime of its own, which may not start on a thread of ours that drives tasks (as
/// start-up's is): whatever may reach it at start runs here.
fn off_runtime<T: Send>(
    what: &str,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    std::thread::scope(|scope| scope.spawn(f).join())
        .map_err(|_| Error::Config(format!("the {what}'s opening thread panicked")))?
}

/// The CDR store `config` names: the SQLite file of `[admin] cdr_database`, or the
/// PostgreSQL database of `[shared] postgres` when that is set (shared with the other
/// nodes: their records, tokens, plan edits and nonce secret). A fault is a
/// configuration error naming the setting. May be called from a runtime's thread.
pub fn open_cdr_store(config: &Config) -> Result<CdrStore, Error> {
    let store = off_runtime("CDR store", || {
        match &config.shared.postgres {
            Some(url) => CdrStore::open_postgres(url),
            None => CdrStore::open(&config.admin.cdr_database),
        }
        .map_err(|e| {
            Error::Config(format!(
                "{}: {}: {e}",
                config.path.display(),
                cdr_location(config)
            ))
        })
    })?;
    tracing::info!(
        backend = store.backend(),
        database = %cdr_database(config),
        "CDR store open"
    );
    Ok(store)
}

/// Where the CDR store is, as the configuration says it: `[admin] cdr_database PATH` or
/// `[shared] postgres user@host:port/db` (never the URL's password), for messages.
pub fn cdr_location(config: &Config) -> String {
    match &config.shared.postgres {
        Some(_) => format!("[shared] postgres {}", cdr_database(config)),
        None => format!("[admin] cdr_database {}", cdr_database(config)),
    }
}

fn cdr_database(config: &Config) -> String {
    match &config.shared.postgres {
        Some(url) => dialbridge_store::pg::target(url),
        None => config.admin.cdr_database.clone(),
    }
}

/// The digest nonce key: given in the configuration, read from the file it names, or
/// generated on the first start and kept in the CDR database, so restarts keep it
/// (with `[shared] postgres`, the first node makes it and every node reads that one, so
/// a nonce one node issued is good at another).
fn nonce_secret(config: &Config, cdrs: &CdrStore) -> Result<Vec<u8>, Error> {
    match &config.auth.nonce_secret {
        Some(NonceSecret::Value(value)) => Ok(value.as_bytes().to_vec()),
        Some(NonceSecret::File { path, line }) => {
            let fault = |what: &str| {
                Error::Config(format!(
                    "{}:{line}: [auth] nonce_secret_file {}: {what}",
                    config.path.display(),
                    path.display()
                ))
            };
            let mut bytes = std::fs::read(path).map_err(|e| fault(&e.to_string()))?;
            // A key written by `echo` or an editor ends in a newline that is no part of it.
            while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                bytes.pop();
            }
            if bytes.len() < 16 {
                return Err(fault("holds fewer than 16 bytes"));
            }
            Ok(bytes)
        }
        None => cdrs.secret("digest-nonce").map_err(|e| {
            Error::Config(format!(
                "{}: {} (the nonce secret is kept there): {e}",
                config.path.display(),
                cdr_location(config)
            ))
        }),
    }
}

/// A quiet, slow arpeggio that loops without a seam: lobby music that needs no file
/// (and no licence).
fn music_on_hold() -> Prompt {
    const NOTES: [f64; 8] = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23];
    let gap = Tone::silence(60);
    NOTES.iter().fold(Tone::silence(0), |tune, &hz| {
        tune.then(&Tone::sine(hz, 340, 2500)).then(&gap)
    })
}

/// The IVR's prompts and the bridge's notices, decoded once (16-bit PCM WAVs resampled
/// to 8 kHz).
#[derive(Debug)]
pub struct Prompts {
    by_id: HashMap<PromptId, Arc<Prompt>>,
    notices: HashMap<Notice, Arc<Prompt>>,
}

impl Prompts {
    fn load(config: &Config) -> Result<Prompts, Error> {
        let mut by_id = HashMap::new();
        for id in PromptId::ALL {
            let path = if id == PromptId::Welcome {
                config.media.welcome_prompt.clone()
            } else {
                config.media.prompts.join(format!("{}.wav", id.file_stem()))
            };
            let prompt = Prompt::load(&path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            by_id.insert(id, Arc::new(prompt));
        }
        let mut notices = HashMap::new();
        for notice in Notice::ALL {
            let path = config
                .media
                .prompts
                .join(format!("{}.wav", notice.file_stem()));
            let prompt = Prompt::load(&path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            notices.insert(notice, Arc::new(prompt));
        }
        Ok(Prompts { by_id, notices })
    }

    /// The prompt for `id` (every id is loaded at start-up).
    pub fn get(&self, id: PromptId) -> Option<Arc<Prompt>> {
        self.by_id.get(&id).cloned()
    }

    /// The recording of `notice` (every notice is loaded at start-up).
    pub fn notice(&self, notice: Notice) -> Option<Arc<Prompt>> {
        self.notices.get(&notice).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::metrics::Gauges;

    #[tokio::test]
    async fn a_locked_out_caller_stays_locked_out_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("dialbridge-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("directory.sqlite");
        let _ = std::fs::remove_file(&file);
        let mut config = crate::testing::demo_config();
        config.directory.database = file.to_string_lossy().into_owned();
        locked_out_across_a_restart(config).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same with the directory in PostgreSQL (`[shared] postgres`), opened, used
    /// from the blocking pool and dropped on this task's thread as the server does.
    #[tokio::test]
    async fn a_locked_out_caller_stays_locked_out_across_a_restart_with_postgres() {
        let db = dialbridge_testkit::servers::PostgresDb::create();
        let mut config = crate::testing::demo_config();
        config.shared.postgres = Some(db.url().to_string());
        locked_out_across_a_restart(config).await;
    }

    async fn locked_out_across_a_restart(mut config: Config) {
        config.guard.max_failures_per_caller = 3;
        let guesser = CallerKey("telco-a/+15550001111".into());
        let other = CallerKey("telco-a/+15550002222".into());

        let services = Services::start(&config, Arc::new(Gauges::default())).unwrap();
        for _ in 0..3 {
            services.guard_wrong_id(&guesser);
        }
        assert!(!services.guard_allows_id(&guesser));
        // The counters are written off the task: wait (bounded) for the lock-out to land.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let directory = services.directory.clone();
            let records = tokio::task::spawn_blocking(move || directory.guard_records())
                .await
                .unwrap()
                .unwrap();
            if records.iter().any(|r| r.blocked_until.is_some()) {
                break;
            }
            assert!(
                Instant::now() < end,
                "the guard's counters were never stored"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(services);

        let restarted = Services::start(&config, Arc::new(Gauges::default())).unwrap();
        assert!(
            !restarted.guard_allows_id(&guesser),
            "forgiven by a restart"
        );
        assert!(restarted.guard_allows_id(&other));
    }

    #[tokio::test]
    async fn a_directory_database_out_of_reach_is_a_config_error_naming_shared_postgres() {
        let mut config = crate::testing::demo_config();
        config.shared.postgres = Some("postgres://bridge:s3cret@127.0.0.1:1/dialbridge".into());
        let err = match Services::start(&config, Arc::new(Gauges::default())) {
            Err(Error::Config(err)) => err,
            other => panic!("{other:?}"),
        };
        assert!(
            err.contains(
                "[shared] postgres bridge@127.0.0.1:1/dialbridge: the organiser directory"
            ),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    use crate::config::NonceSecret;

    fn with_secret(secret: Option<NonceSecret>) -> Config {
        let mut config = crate::testing::demo_config();
        config.auth.nonce_secret = secret;
        config
    }

    #[test]
    fn the_nonce_secret_comes_from_the_config_a_file_or_the_cdr_database() {
        crate::cdr::tests::on_both_backends(nonce_secret_on);
    }

    fn nonce_secret_on(cdrs: &CdrStore) {
        let value = NonceSecret::Value("0123456789abcdef".into());
        let config = with_secret(Some(value));
        assert_eq!(nonce_secret(&config, cdrs).unwrap(), b"0123456789abcdef");

        let path =
            std::env::temp_dir().join(format!("dialbridge-nonce-{}.key", std::process::id()));
        std::fs::write(&path, "a key of the operator's, shared\n").unwrap();
        let file = |path: &std::path::Path| NonceSecret::File {
            path: path.to_path_buf(),
            line: 42,
        };
        let config = with_secret(Some(file(&path)));
        assert_eq!(
            nonce_secret(&config, cdrs).unwrap(),
            b"a key of the operator's, shared"
        );
        std::fs::write(&path, "short\n").unwrap();
        let err = nonce_secret(&config, cdrs).unwrap_err().to_string();
        assert!(
            err.contains("demo.toml:42: [auth] nonce_secret_file"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = nonce_secret(&config, cdrs).unwrap_err().to_string();
        assert!(err.contains("demo.toml:42:"), "{err}");

        // Neither: made once, the same on the next start.
        let config = with_secret(None);
        let made = nonce_secret(&config, cdrs).unwrap();
        assert_eq!(made.len(), 32);
        assert_eq!(nonce_secret(&config, cdrs).unwrap(), made);
    }
}
