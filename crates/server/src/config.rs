//! The server's configuration file: the sections the server owns ([sip], [media],
//! [admin], [softphones] accounts, [auth], [ivr], [directory], [trunk_health], [dial_out], [shared],
//! [cluster]).
//! The number plan's sections are parsed and validated by `dialbridge-router`, `[money]`
//! by `dialbridge-ledger`. Every fault names the file and the line.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::call_flow::MediaTimeouts;
use crate::trunk_health::HealthConfig;
use dialbridge_conference::guard::GuardConfig;
use dialbridge_ledger::{LedgerError, MoneyConfig};

/// The demo deployment of shared/DEMO.md, compiled in so `dialbridge serve` works from
/// any directory; its relative paths resolve against the repository's fixtures/.
pub const DEMO_CONFIG: &str = include_str!("../../../fixtures/demo.toml");

/// Where the demo's relative paths (prompts, TLS, organisers) resolve.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages), and the directory relative paths resolve in.
    pub path: PathBuf,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub softphones: SoftphoneConfig,
    pub auth: AuthConfig,
    pub ivr: IvrConfig,
    pub conference: ConferenceConfig,
    pub directory: DirectoryConfig,
    /// The guessing guard's thresholds (wrong conference IDs and leader PINs).
    pub guard: GuardConfig,
    /// Dial-outs from meetings.
    pub dial_out: DialOutConfig,
    /// How the trunks' outbound targets are probed with OPTIONS.
    pub trunk_health: HealthConfig,
    /// `[shared]`: backends shared with other nodes (none by default).
    pub shared: crate::shared::config::SharedConfig,
    /// `[cluster]`: the proxies in front of this node.
    pub cluster: ClusterConfig,
    /// `[money]`: credits, pools, rates; `None` bills nothing and refuses nothing.
    pub money: Option<MoneyConfig>,
    /// The file's text, for the router to parse the number plan from (with line numbers).
    pub text: ConfigText,
}

/// The configuration file's text. It holds secrets (softphone passwords): Debug hides it.
#[derive(Clone)]
pub struct ConfigText(pub String);

impl std::fmt::Debug for ConfigText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfigText({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP listeners (at least one; the first is the primary), e.g. one IPv4 and one
    /// IPv6 address.
    pub udp: Vec<SocketAddr>,
    /// TCP listeners (possibly none).
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners (possibly none).
    pub tls: Vec<SocketAddr>,
    pub tls_certificate: PathBuf,
    pub tls_private_key: PathBuf,
    /// CA bundle (PEM) the TLS listeners verify client certificates against; without
    /// it no client certificate is asked for (and no trunk may list `tls_names`).
    pub tls_client_ca: Option<PathBuf>,
    /// How long the bridge rings (180) before it answers; lets a caller CANCEL.
    pub answer_after: Duration,
    /// On SIGTERM, how long calls in progress may go on before the bridge ends them.
    pub drain_timeout: Duration,
    /// The shortest session interval accepted (RFC 4028 Min-SE).
    pub min_session_expires: u32,
    /// The session interval the bridge asks for when the caller asks for none.
    pub session_expires: u32,
    /// Ask for a session timer (the bridge refreshing) even from callers that do not
    /// support them, so that one that vanished is found.
    pub always_session_timer: bool,
    /// When new calls are shed with 503 before any work.
    pub shed: crate::signaling::ShedConfig,
    /// The host put in Contact headers towards peers of its address family (the
    /// address trunks reach us on, behind a NAT); other peers get the listener's own.
    pub contact_host: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub address: IpAddr,
    /// Where sessions for IPv6 offers (`c=IN IP6`) bind, on the same ports; `None`: no
    /// IPv6 media (such offers get the IPv4 address, and latching where it is on).
    pub address6: Option<Ipv6Addr>,
    /// Even RTP ports from `start` up to and including `end - 1`'s pair.
    pub rtp_ports: Range<u16>,
    /// Media shards: clock and receive threads, each mixing its own rooms. `0`: one
    /// per core.
    pub shards: usize,
    pub prompts: PathBuf,
    pub welcome_prompt: PathBuf,
    /// How long a call may receive no RTP or RTCP (active, and on hold) before it ends.
    pub timeouts: MediaTimeouts,
}

#[derive(Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token every admin API call must carry. A secret: Debug hides it.
    pub token: String,
    /// Where call detail records are kept (SQLite; ":memory:" keeps them for the life of
    /// the process only).
    pub cdr_database: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &"***")
            .field("cdr_database", &self.cdr_database)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct SoftphoneConfig {
    pub realm: String,
    pub accounts: Vec<Account>,
}

/// A softphone account. The password is a secret: Debug hides it.
#[derive(Clone, Deserialize)]
pub struct Account {
    pub user: String,
    pub password: String,
    /// Challenge this account with SHA-256 first (RFC 8760); MD5 otherwise, which every
    /// client understands.
    #[serde(default)]
    pub sha256: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("password", &"***")
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Digest authentication of softphones: nonces, replay memory and lock-outs.
#[derive(Clone)]
pub struct AuthConfig {
    /// How long a nonce is accepted after its challenge.
    pub nonce_lifetime: Duration,
    /// Failed attempts of one source address, or one user, within `failure_window`
    /// that lock it out.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// How long a lock-out lasts (403, no challenge).
    pub lockout: Duration,
    /// Most sources and users tracked by the lock-out counters.
    pub max_tracked: usize,
    /// Most nonces remembered against replay.
    pub max_nonces: usize,
    /// Where the nonce secret comes from; `None`: generated once and kept in the CDR
    /// database.
    pub nonce_secret: Option<NonceSecret>,
}

/// The nonce secret as configured. Nodes behind one load balancer need the same one.
#[derive(Clone)]
pub enum NonceSecret {
    /// Given in the file (`nonce_secret`).
    Value(String),
    /// Read from a file at start (`nonce_secret_file`); `line` is where the key is, for
    /// messages.
    File { path: PathBuf, line: usize },
}

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonceSecret::Value(_) => f.write_str("Value(***)"),
            NonceSecret::File { path, line } => f
                .debug_struct("File")
                .field("path", path)
                .field("line", line)
                .finish(),
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    // The secret stays out; a file's path is not a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = match &self.nonce_secret {
            None => "generated".to_string(),
            Some(NonceSecret::Value(_)) => "***".to_string(),
            Some(NonceSecret::File { path, .. }) => path.display().to_string(),
        };
        f.debug_struct("AuthConfig")
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("max_failures", &self.max_failures)
            .field("failure_window", &self.failure_window)
            .field("lockout", &self.lockout)
            .field("max_tracked", &self.max_tracked)
            .field("max_nonces", &self.max_nonces)
            .field("nonce_secret", &secret)
            .finish()
    }
}

impl AuthConfig {
    /// The policy of the SIP crate's lock-out counters and replay memory.
    pub fn policy(&self) -> dialbridge_sip::auth::AuthPolicy {
        dialbridge_sip::auth::AuthPolicy {
            max_failures: self.max_failures,
            window: self.failure_window,
            lockout: self.lockout,
            max_tracked: self.max_tracked,
            max_nonces: self.max_nonces,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IvrConfig {
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct ConferenceConfig {
    /// Most calls in one meeting, lobby included; the next hears "this meeting is full".
    pub max_members: usize,
    /// A beep to everyone in the meeting when someone is admitted or leaves.
    pub join_leave_tones: bool,
    /// Where meeting recordings (WAV) are written; created on the first recording.
    pub recordings_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub database: String,
    pub import: Option<PathBuf>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Config::parse(path, &dir, &text)
    }

    /// The demo deployment (shared/DEMO.md).
    pub fn demo() -> Result<Config, Error> {
        let dir = demo_dir();
        Config::parse(&dir.join("demo.toml"), &dir, DEMO_CONFIG)
    }

    /// Parses `text` as if read from `path`, resolving relative paths in `dir`.
    pub fn parse(path: &Path, dir: &Path, text: &str) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| located(path, text, &e))?;
        // `crates/server/../../fixtures` reads better in logs and API answers as
        // `fixtures`; a directory that does not exist (yet) is kept as written.
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                without_dot_dot(&dir.join(p))
            }
        };
        let sip = raw.sip;
        if matches!(&sip.udp, OneOrMany::Many(list) if list.is_empty()) {
            return Err(Error::Config(format!(
                "{}: [sip] udp needs at least one address",
                path.display()
            )));
        }
        if sip.session_expires < sip.min_session_expires.max(90) {
            return Err(Error::Config(format!(
                "{}: [sip] session_expires ({}) is below min_session_expires ({}) or RFC 4028's 90 s",
                path.display(),
                sip.session_expires,
                sip.min_session_expires
            )));
        }
        let media = raw.media;
        let [start, end] = media.rtp_ports;
        if start % 2 != 0 || end <= start || end - start < 2 {
            return Err(Error::Config(format!(
                "{}: [media] rtp_ports must be an even start below the end, got [{start}, {end}]",
                path.display()
            )));
        }
        let auth = auth_config(path, text, raw.auth, &resolve)?;
        check_trunk_tls(path, text, &raw.trunk, &sip)?;
        let welcome = resolve(&media.welcome_prompt);
        let prompts = welcome
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        let cdr_database = match raw.admin.cdr_database.as_str() {
            ":memory:" => ":memory:".to_string(),
            p => resolve(p).to_string_lossy().into_owned(),
        };
        let money = money_config(path, text, &cdr_database, &resolve)?;
        let config = Config {
            path: path.to_path_buf(),
            sip: SipConfig {
                udp: sip.udp.into_vec(),
                tcp: sip.tcp.map(OneOrMany::into_vec).unwrap_or_default(),
                tls: sip.tls.map(OneOrMany::into_vec).unwrap_or_default(),
                tls_certificate: resolve(&sip.tls_certificate),
                tls_private_key: resolve(&sip.tls_private_key),
                tls_client_ca: sip.tls_client_ca.as_deref().map(resolve),
                answer_after: Duration::from_millis(sip.answer_after_ms),
                drain_timeout: Duration::from_millis(sip.drain_timeout_ms),
                min_session_expires: sip.min_session_expires,
                session_expires: sip.session_expires,
                always_session_timer: sip.always_session_timer,
                shed: crate::signaling::ShedConfig {
                    max_call_rate: sip.max_call_rate,
                    max_backlog: sip.shed_backlog,
                },
                contact_host: sip.contact_host,
            },
            media: MediaConfig {
                address: media.address,
                address6: media.address6,
                rtp_ports: start..end + 1,
                shards: media.shards,
                prompts,
                welcome_prompt: welcome,
                timeouts: MediaTimeouts {
                    active: Duration::from_millis(media.inactivity_timeout_ms),
                    held: Duration::from_millis(media.hold_timeout_ms),
                },
            },
            admin: AdminConfig {
                listen: raw.admin.listen,
                token: raw.admin.token,
                cdr_database,
            },
            softphones: SoftphoneConfig {
                realm: raw.softphones.realm,
                accounts: raw.softphones.account,
            },
            auth,
            ivr: IvrConfig {
                first_digit_timeout: Duration::from_millis(raw.ivr.first_digit_timeout_ms),
                inter_digit_timeout: Duration::from_millis(raw.ivr.inter_digit_timeout_ms),
                max_attempts: raw.ivr.max_attempts,
            },
            conference: ConferenceConfig {
                max_members: raw.conference.max_members,
                join_leave_tones: raw.conference.join_leave_tones,
                recordings_dir: resolve(&raw.conference.recordings_dir),
            },
            directory: DirectoryConfig {
                database: raw.directory.database,
                import: raw.directory.import.as_deref().map(resolve),
            },
            guard: raw.guard.into_config(path)?,
            dial_out: raw.dial_out.into_config(path)?,
            trunk_health: raw.trunk_health.into_config(path, text)?,
            shared: raw.shared.into_config(path, text)?,
            cluster: raw.cluster.into_config(path, text)?,
            money,
            text: ConfigText(text.to_string()),
        };
        Ok(config)
    }
}

/// `[money]`, validated by the ledger crate, its `database` resolved against the file:
/// given, or beside the CDR database (`cdr.sqlite` → `cdr-ledger.sqlite`; `:memory:` with
/// it).
fn money_config(
    path: &Path,
    text: &str,
    cdr_database: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Option<MoneyConfig>, Error> {
    let money = MoneyConfig::from_toml_str(text).map_err(|e| match &e {
        LedgerError::Config {
            line: Some(line), ..
        } => Error::Config(format!("{}:{line}: {e}", path.display())),
        _ => Error::Config(format!("{}: {e}", path.display())),
    })?;
    Ok(money.map(|mut money| {
        money.database = Some(match money.database.as_deref() {
            Some(":memory:") => ":memory:".to_string(),
            Some(p) => resolve(p).to_string_lossy().into_owned(),
            None if cdr_database == ":memory:" => ":memory:".to_string(),
            None => {
                let cdr = Path::new(cdr_database);
                let stem = cdr.file_stem().map_or_else(
                    || "dialbridge".to_string(),
                    |s| s.to_string_lossy().into_owned(),
                );
                cdr.with_file_name(format!("{stem}-ledger.sqlite"))
                    .to_string_lossy()
                    .into_owned()
            }
        });
        money
    }))
}

/// The [auth] section, checked: every count and duration above zero, at most one
/// source of the secret, a given secret of at least 16 bytes.
fn auth_config(
    path: &Path,
    text: &str,
    raw: RawAuth,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<AuthConfig, Error> {
    let fault = |key: &str, message: &str| {
        let at = match key_line(text, "auth", key) {
            Some(line) => format!("{}:{line}", path.display()),
            None => path.display().to_string(),
        };
        Error::Config(format!("{at}: [auth] {key} {message}"))
    };
    for (key, value) in [
        ("nonce_lifetime_s", raw.nonce_lifetime_s),
        ("max_failures", u64::from(raw.max_failures)),
        ("failure_window_s", raw.failure_window_s),
        ("lockout_s", raw.lockout_s),
        ("max_tracked", raw.max_tracked as u64),
        ("max_nonces", raw.max_nonces as u64),
    ] {
        if value == 0 {
            return Err(fault(key, "must be above zero"));
        }
    }
    // Beyond these a setting is a mistake (and the clocks' arithmetic stays far from
    // overflow).
    for (key, value, most) in [
        ("nonce_lifetime_s", raw.nonce_lifetime_s, 86_400),
        ("failure_window_s", raw.failure_window_s, 86_400),
        ("lockout_s", raw.lockout_s, 7 * 86_400),
    ] {
        if value > most {
            return Err(fault(key, &format!("must be at most {most}")));
        }
    }
    // The recent failures of each subject are kept one by one.
    if raw.max_failures > 1000 {
        return Err(fault("max_failures", "must be at most 1000"));
    }
    let nonce_secret = match (raw.nonce_secret, raw.nonce_secret_file) {
        (Some(_), Some(_)) => {
            return Err(fault(
                "nonce_secret_file",
                "and nonce_secret are both set: give one",
            ));
        }
        (Some(value), None) if value.len() < 16 => {
            return Err(fault("nonce_secret", "must be at least 16 bytes"));
        }
        (Some(value), None) => Some(NonceSecret::Value(value)),
        (None, Some(file)) => Some(NonceSecret::File {
            path: resolve(&file),
            line: key_line(text, "auth", "nonce_secret_file").unwrap_or(0),
        }),
        (None, None) => None,
    };
    Ok(AuthConfig {
        nonce_lifetime: Duration::from_secs(raw.nonce_lifetime_s),
        max_failures: raw.max_failures,
        failure_window: Duration::from_secs(raw.failure_window_s),
        lockout: Duration::from_secs(raw.lockout_s),
        max_tracked: raw.max_tracked,
        max_nonces: raw.max_nonces,
        nonce_secret,
    })
}

/// What the number plan cannot see of a trunk's TLS policy: that the [sip] section can
/// serve it. A trunk that must use TLS needs a TLS listener, and one that lists
/// `tls_names` needs `tls_client_ca` (no client certificate is asked for without it):
/// otherwise every call of that trunk would be refused.
fn check_trunk_tls(
    path: &Path,
    text: &str,
    trunks: &[RawTrunk],
    sip: &RawSip,
) -> Result<(), Error> {
    let fault = |span: std::ops::Range<usize>, message: String| {
        let line = text[..span.start.min(text.len())].lines().count().max(1);
        Error::Config(format!("{}:{line}: {message}", path.display()))
    };
    let no_tls = sip.tls.as_ref().is_none_or(|t| match t {
        OneOrMany::One(_) => false,
        OneOrMany::Many(list) => list.is_empty(),
    });
    for trunk in trunks {
        let names = trunk.tls_names.as_ref().filter(|n| !n.get_ref().is_empty());
        let require = trunk.require_tls.as_ref().filter(|r| *r.get_ref());
        if no_tls && let Some(span) = require.map(|r| r.span()).or(names.map(|n| n.span())) {
            return Err(fault(
                span,
                format!(
                    "[[trunk]] \"{}\" needs TLS, but [sip] has no tls listener",
                    trunk.name
                ),
            ));
        }
        if let Some(names) = names
            && sip.tls_client_ca.is_none()
        {
            return Err(fault(
                names.span(),
                format!(
                    "[[trunk]] \"{}\" lists tls_names, but [sip] tls_client_ca is not set (no client certificate is asked for without it)",
                    trunk.name
                ),
            ));
        }
    }
    Ok(())
}

/// The line (from 1) of `key = ...` in table `[section]`, for messages about a value
/// that parsed but does not validate.
pub(crate) fn key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}]");
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && line.split('=').next().map(str::trim) == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

/// `a/b/../c` as `a/c`: read from the text, not the file system (the path may not
/// exist yet, e.g. a recordings directory).
fn without_dot_dot(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// A toml error as `file:line: message`.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let line = e
        .span()
        // `get`: a span that is not on a character boundary must not panic the check.
        .map(|span| {
            text.get(..span.start)
                .unwrap_or(text)
                .lines()
                .count()
                .max(1)
        });
    match line {
        Some(line) => Error::Config(format!("{}:{line}: {}", path.display(), e.message())),
        None => Error::Config(format!("{}: {}", path.display(), e.message())),
    }
}

#[derive(Deserialize)]
struct RawConfig {
    sip: RawSip,
    media: RawMedia,
    admin: RawAdmin,
    softphones: RawSoftphones,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    ivr: RawIvr,
    #[serde(default)]
    conference: RawConference,
    directory: RawDirectory,
    #[serde(default)]
    guard: RawGuard,
    #[serde(default)]
    dial_out: RawDialOut,
    #[serde(default)]
    trunk_health: RawTrunkHealth,
    #[serde(default)]
    shared: crate::shared::config::RawShared,
    #[serde(default)]
    cluster: RawCluster,
    /// The number plan's trunks, read here for their TLS keys only.
    #[serde(default)]
    trunk: Vec<RawTrunk>,
}

/// A `[[trunk]]` as the server checks it against [sip]; the router reads the rest.
#[derive(Deserialize)]
struct RawTrunk {
    name: String,
    require_tls: Option<toml::Spanned<bool>>,
    tls_names: Option<toml::Spanned<Vec<String>>>,
}

/// `[dial_out]`: how meetings call out (the routes are the number plan's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialOutConfig {
    /// How long a dial-out may ring before it is cancelled as unanswered.
    pub ring_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDialOut {
    ring_timeout_s: u64,
}

impl Default for RawDialOut {
    fn default() -> Self {
        RawDialOut {
            ring_timeout_s: crate::dial_out::attempt::DEFAULT_RING_TIMEOUT.as_secs(),
        }
    }
}

impl RawDialOut {
    fn into_config(self, path: &Path) -> Result<DialOutConfig, Error> {
        // Below a few seconds a phone cannot even be picked up.
        if !(5..=600).contains(&self.ring_timeout_s) {
            return Err(Error::Config(format!(
                "{}: [dial_out] ring_timeout_s must be between 5 and 600",
                path.display()
            )));
        }
        Ok(DialOutConfig {
            ring_timeout: Duration::from_secs(self.ring_timeout_s),
        })
    }
}

/// `[cluster]`: how this node sits behind a SIP proxy (deploy/kamailio/).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The addresses whose `X-Dialbridge-Source` header is believed: the caller it
    /// names is who called, for trunk identity, digest authentication, limits and TLS
    /// policy (`signaling/origin.rs`). Empty (the default): the header is removed from
    /// every request and the packet's source is the caller.
    pub trusted_proxies: Vec<IpAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCluster {
    trusted_proxies: Vec<IpAddr>,
}

impl RawCluster {
    fn into_config(self, path: &Path, text: &str) -> Result<ClusterConfig, Error> {
        // An address no packet comes from would trust nobody, or, as 0.0.0.0 reads to
        // some, everybody: either is a mistake worth stopping for.
        if let Some(bad) = self
            .trusted_proxies
            .iter()
            .find(|ip| ip.is_unspecified() || ip.is_multicast())
        {
            let at = match key_line(text, "cluster", "trusted_proxies") {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            return Err(Error::Config(format!(
                "{at}: [cluster] trusted_proxies: {bad} is no proxy's address"
            )));
        }
        Ok(ClusterConfig {
            trusted_proxies: self
                .trusted_proxies
                .iter()
                .map(IpAddr::to_canonical)
                .collect(),
        })
    }
}

/// `[guard]`: how many wrong conference IDs and PINs before what.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGuard {
    max_failures_per_caller: u32,
    max_pin_failures_per_conference: u32,
    window_s: u64,
    cooldown_s: u64,
    attack_delay_ms: u64,
}

impl Default for RawGuard {
    fn default() -> Self {
        let d = GuardConfig::default();
        RawGuard {
            max_failures_per_caller: d.max_failures_per_caller,
            max_pin_failures_per_conference: d.max_pin_failures_per_conference,
            window_s: d.window.as_secs(),
            cooldown_s: d.cooldown.as_secs(),
            attack_delay_ms: d.attack_delay.as_millis() as u64,
        }
    }
}

impl RawGuard {
    fn into_config(self, path: &Path) -> Result<GuardConfig, Error> {
        if self.max_failures_per_caller == 0 || self.max_pin_failures_per_conference == 0 {
            return Err(Error::Config(format!(
                "{}: [guard] thresholds must be at least 1",
                path.display()
            )));
        }
        Ok(GuardConfig {
            max_failures_per_caller: self.max_failures_per_caller,
            max_pin_failures_per_conference: self.max_pin_failures_per_conference,
            window: Duration::from_secs(self.window_s),
            cooldown: Duration::from_secs(self.cooldown_s),
            attack_delay: Duration::from_millis(self.attack_delay_ms),
            ..GuardConfig::default()
        })
    }
}

/// `[trunk_health]`: the OPTIONS probes of the trunks' outbound targets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTrunkHealth {
    interval_ms: u64,
    timeout_ms: u64,
    down_after: u32,
    up_after: u32,
}

impl Default for RawTrunkHealth {
    fn default() -> Self {
        let d = HealthConfig::default();
        RawTrunkHealth {
            interval_ms: d.interval.as_millis() as u64,
            timeout_ms: d.timeout.as_millis() as u64,
            down_after: d.down_after,
            up_after: d.up_after,
        }
    }
}

impl RawTrunkHealth {
    /// Checked: thresholds of 1 to 100, a timeout above zero, nothing beyond a day.
    fn into_config(self, path: &Path, text: &str) -> Result<HealthConfig, Error> {
        let fault = |key: &str, message: &str| {
            let at = match key_line(text, "trunk_health", key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            Error::Config(format!("{at}: [trunk_health] {key} {message}"))
        };
        const DAY_MS: u64 = 86_400_000;
        for (key, value) in [
            ("interval_ms", self.interval_ms),
            ("timeout_ms", self.timeout_ms),
        ] {
            if value > DAY_MS {
                return Err(fault(key, &format!("must be at most {DAY_MS}")));
            }
        }
        if self.timeout_ms == 0 {
            return Err(fault("timeout_ms", "must be above zero"));
        }
        for (key, value) in [("down_after", self.down_after), ("up_after", self.up_after)] {
            if !(1..=100).contains(&value) {
                return Err(fault(key, "must be from 1 to 100"));
            }
        }
        Ok(HealthConfig {
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            down_after: self.down_after,
            up_after: self.up_after,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConference {
    max_members: usize,
    join_leave_tones: bool,
    recordings_dir: String,
}

impl Default for RawConference {
    fn default() -> Self {
        RawConference {
            max_members: 250,
            join_leave_tones: true,
            recordings_dir: "recordings".to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    udp: OneOrMany<SocketAddr>,
    tcp: Option<OneOrMany<SocketAddr>>,
    tls: Option<OneOrMany<SocketAddr>>,
    tls_certificate: String,
    tls_private_key: String,
    tls_client_ca: Option<String>,
    #[serde(default)]
    answer_after_ms: u64,
    #[serde(default = "default_drain_ms")]
    drain_timeout_ms: u64,
    #[serde(default = "default_min_se")]
    min_session_expires: u32,
    #[serde(default = "default_session_expires")]
    session_expires: u32,
    #[serde(default = "default_true")]
    always_session_timer: bool,
    #[serde(default)]
    max_call_rate: u32,
    #[serde(default = "default_shed_backlog")]
    shed_backlog: usize,
    contact_host: Option<IpAddr>,
}

/// A key that takes one value or a non-empty list (`udp = "127.0.0.1:5060"` or
/// `udp = ["127.0.0.1:5060", "[::1]:5060"]`).
#[derive(Deserialize)]
#[serde(untagged, expecting = "an address or a list of addresses")]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

fn default_min_se() -> u32 {
    90
}

fn default_session_expires() -> u32 {
    1800
}

fn default_shed_backlog() -> usize {
    crate::signaling::ShedConfig::default().max_backlog
}

fn default_true() -> bool {
    true
}

fn default_drain_ms() -> u64 {
    30_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    address: IpAddr,
    address6: Option<Ipv6Addr>,
    rtp_ports: [u16; 2],
    /// Clock threads mixing rooms (and receive threads); 0 or absent: one per core.
    #[serde(default)]
    shards: usize,
    welcome_prompt: String,
    #[serde(default = "default_media_timeout_ms")]
    inactivity_timeout_ms: u64,
    #[serde(default = "default_hold_timeout_ms")]
    hold_timeout_ms: u64,
}

fn default_media_timeout_ms() -> u64 {
    MediaTimeouts::default().active.as_millis() as u64
}

fn default_hold_timeout_ms() -> u64 {
    MediaTimeouts::default().held.as_millis() as u64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: SocketAddr,
    token: String,
    cdr_database: String,
}

#[derive(Deserialize)]
struct RawSoftphones {
    realm: String,
    #[serde(default)]
    account: Vec<Account>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    nonce_lifetime_s: u64,
    max_failures: u32,
    failure_window_s: u64,
    lockout_s: u64,
    max_tracked: usize,
    max_nonces: usize,
    nonce_secret: Option<String>,
    nonce_secret_file: Option<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        let policy = dialbridge_sip::auth::AuthPolicy::default();
        RawAuth {
            nonce_lifetime_s: 300,
            max_failures: policy.max_failures,
            failure_window_s: policy.window.as_secs(),
            lockout_s: policy.lockout.as_secs(),
            max_tracked: policy.max_tracked,
            max_nonces: policy.max_nonces,
            nonce_secret: None,
            nonce_secret_file: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIvr {
    first_digit_timeout_ms: u64,
    inter_digit_timeout_ms: u64,
    max_attempts: u32,
}

impl Default for RawIvr {
    fn default() -> Self {
        RawIvr {
            first_digit_timeout_ms: 5000,
            inter_digit_timeout_ms: 5000,
            max_attempts: 3,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    database: String,
    import: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_paths_read_without_dot_dot() {
        assert_eq!(
            without_dot_dot(Path::new("/srv/fixtures/../target/./recordings")),
            PathBuf::from("/srv/target/recordings")
        );
        assert_eq!(
            without_dot_dot(Path::new("../a/b/..")),
            PathBuf::from("../a")
        );
        assert_eq!(without_dot_dot(Path::new("/..")), PathBuf::from("/"));
    }

    use super::*;

    #[test]
    fn the_demo_loads() {
        let c = Config::demo().unwrap();
        assert_eq!(c.sip.udp[0], "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.sip.tls[0], "127.0.0.1:5061".parse().unwrap());
        assert_eq!(c.admin.listen, "127.0.0.1:8088".parse().unwrap());
        assert_eq!(c.media.rtp_ports, 20000..39999);
        assert_eq!(c.softphones.accounts.len(), 2);
        assert!(c.media.welcome_prompt.ends_with("prompts/welcome.wav"));
    }

    #[test]
    fn trusted_proxies_are_addresses_and_faults_name_the_line() {
        assert!(Config::demo().unwrap().cluster.trusted_proxies.is_empty());
        let with = |value: &str| {
            let text = format!("{DEMO_CONFIG}\n[cluster]\ntrusted_proxies = {value}\n");
            let line = text.lines().count();
            let parsed = Config::parse(Path::new("x/node.toml"), Path::new("x"), &text);
            (parsed, line)
        };
        let (parsed, _) = with(r#"["127.0.0.1", "::ffff:10.0.0.5"]"#);
        let want: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        assert_eq!(parsed.unwrap().cluster.trusted_proxies, want);
        for bad in [
            r#"["kamailio"]"#,
            r#"["0.0.0.0"]"#,
            r#"["127.0.0.1:5060"]"#,
            "\"127.0.0.1\"",
        ] {
            let (parsed, line) = with(bad);
            let err = parsed.unwrap_err().to_string();
            assert!(err.contains(&format!("x/node.toml:{line}")), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_value_names_file_and_line() {
        let text = DEMO_CONFIG.replace("\"127.0.0.1:5060\"", "\"not an address\"");
        let line = text
            .lines()
            .position(|l| l.contains("not an address"))
            .unwrap()
            + 1;
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap_err();
        assert!(
            err.to_string().contains(&format!("x/demo.toml:{line}:")),
            "{err}"
        );
    }

    #[test]
    fn listeners_take_one_address_or_a_list() {
        let text = DEMO_CONFIG.replace(
            "udp = [\"127.0.0.1:5060\", \"[::1]:5060\"]",
            "udp = \"127.0.0.1:5070\"",
        );
        let c = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap();
        assert_eq!(c.sip.udp, ["127.0.0.1:5070".parse().unwrap()]);
        let demo = Config::demo().unwrap();
        assert_eq!(
            demo.sip.udp,
            [
                "127.0.0.1:5060".parse().unwrap(),
                "[::1]:5060".parse().unwrap()
            ]
        );
        let empty = DEMO_CONFIG.replace("udp = [\"127.0.0.1:5060\", \"[::1]:5060\"]", "udp = []");
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &empty).unwrap_err();
        assert!(err.to_string().contains("x/demo.toml"), "{err}");
    }

    #[test]
    fn ipv6_media_is_optional_and_must_be_ipv6() {
        assert_eq!(
            Config::demo().unwrap().media.address6,
            Some(Ipv6Addr::LOCALHOST)
        );
        let text = DEMO_CONFIG.replace("address6 = \"::1\"\n", "");
        let c = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap();
        assert_eq!(c.media.address6, None);
        let text = DEMO_CONFIG.replace("address6 = \"::1\"", "address6 = \"127.0.0.1\"");
        let line = text
            .lines()
            .position(|l| l.starts_with("address6"))
            .unwrap()
            + 1;
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap_err();
        assert!(
            err.to_string().contains(&format!("x/demo.toml:{line}:")),
            "{err}"
        );
    }

    #[test]
    fn timeouts_and_guard_thresholds_have_defaults_and_can_be_set() {
        let demo = Config::demo().unwrap();
        assert_eq!(demo.media.timeouts, MediaTimeouts::default());
        assert!(demo.sip.always_session_timer);
        assert_eq!(demo.guard, GuardConfig::default());
        let text = DEMO_CONFIG
            .replace(
                "max_failures_per_caller = 10",
                "max_failures_per_caller = 4",
            )
            .replace("attack_delay_ms = 3000", "attack_delay_ms = 500");
        let c = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap();
        assert_eq!(c.guard.max_failures_per_caller, 4);
        assert_eq!(c.guard.attack_delay, Duration::from_millis(500));
        let zero = text.replace("max_failures_per_caller = 4", "max_failures_per_caller = 0");
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &zero).unwrap_err();
        assert!(err.to_string().contains("[guard]"), "{err}");
        let short = DEMO_CONFIG.replace("session_expires = 1800", "session_expires = 60");
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &short).unwrap_err();
        assert!(err.to_string().contains("session_expires"), "{err}");
    }

    #[test]
    fn trunk_health_has_production_defaults_and_checked_values() {
        let demo = Config::demo().unwrap();
        assert_eq!(demo.trunk_health, HealthConfig::default());
        assert_eq!(demo.trunk_health.timeout, Duration::from_secs(32));
        let text = DEMO_CONFIG
            .replace("interval_ms = 15000", "interval_ms = 200")
            .replace("timeout_ms = 32000", "timeout_ms = 300");
        let c = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap();
        assert_eq!(c.trunk_health.interval, Duration::from_millis(200));
        assert_eq!(c.trunk_health.timeout, Duration::from_millis(300));
        for (from, to, message) in [
            (
                "down_after = 2",
                "down_after = 0",
                "[trunk_health] down_after must be from 1 to 100",
            ),
            (
                "up_after = 1",
                "up_after = 101",
                "[trunk_health] up_after must be from 1 to 100",
            ),
            (
                "timeout_ms = 32000",
                "timeout_ms = 0",
                "[trunk_health] timeout_ms must be above zero",
            ),
        ] {
            let text = DEMO_CONFIG.replace(from, to);
            let line = text.lines().position(|l| l == to).unwrap() + 1;
            let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("x/demo.toml:{line}: {message}")),
                "{err}"
            );
        }
        let text = DEMO_CONFIG.replace("up_after = 1", "up_after = 1\nupp_after = 1");
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text).unwrap_err();
        assert!(err.to_string().contains("upp_after"), "{err}");
    }

    #[test]
    fn passwords_never_print() {
        let c = Config::demo().unwrap();
        assert!(!format!("{c:?}").contains("alice-secret"));
    }

    /// The demo with its [auth] section's keys replaced by `lines`.
    fn with_auth(lines: &str) -> Result<Config, Error> {
        let mut text = DEMO_CONFIG.to_owned();
        for key in [
            "nonce_lifetime_s",
            "max_failures",
            "failure_window_s",
            "lockout_s",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap()
                .to_owned();
            text = text.replacen(&format!("{line}\n"), "", 1);
        }
        let text = text.replace("[auth]\n", &format!("[auth]\n{lines}\n"));
        Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text)
    }

    /// The line of the first key of the demo's [auth] section.
    fn auth_line() -> usize {
        DEMO_CONFIG.lines().position(|l| l == "[auth]").unwrap() + 2
    }

    #[test]
    fn auth_defaults_and_overrides() {
        let a = Config::demo().unwrap().auth;
        assert_eq!(a.nonce_lifetime, Duration::from_secs(300));
        assert_eq!(
            (a.max_failures, a.failure_window, a.lockout),
            (5, Duration::from_secs(60), Duration::from_secs(900))
        );
        assert!(a.nonce_secret.is_none());
        let a = with_auth("max_failures = 3\nlockout_s = 60\nnonce_secret_file = \"s.key\"")
            .unwrap()
            .auth;
        assert_eq!((a.max_failures, a.lockout), (3, Duration::from_secs(60)));
        assert!(matches!(a.nonce_secret, Some(NonceSecret::File { line, .. }) if line > 0));
        let a = with_auth("nonce_secret = \"0123456789abcdef-shared\"")
            .unwrap()
            .auth;
        assert!(!format!("{a:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn auth_faults_name_file_and_line() {
        let line = auth_line();
        for (lines, message) in [
            ("max_failures = 0", "max_failures must be above zero"),
            (
                "lockout_s = 99999999999",
                "lockout_s must be at most 604800",
            ),
            ("nonce_secret = \"short\"", "at least 16 bytes"),
        ] {
            let err = with_auth(lines).unwrap_err().to_string();
            assert!(err.starts_with(&format!("x/demo.toml:{line}: ")), "{err}");
            assert!(err.contains(message), "{err}");
        }
        let err = with_auth("lockout_s = \"long\"").unwrap_err().to_string();
        assert!(err.starts_with(&format!("x/demo.toml:{line}:")), "{err}");
        let err = with_auth("nonce_secret = \"0123456789abcdef\"\nnonce_secret_file = \"k\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("both set"), "{err}");
    }

    #[test]
    fn tls_client_ca_is_optional_and_resolved_against_the_file() {
        assert_eq!(Config::demo().unwrap().sip.tls_client_ca, None);
        let text = DEMO_CONFIG.replace(
            "tls_private_key = \"tls/key.pem\"",
            "tls_private_key = \"tls/key.pem\"\ntls_client_ca = \"tls/sbc-ca.pem\"",
        );
        let c = Config::parse(Path::new("/x/demo.toml"), Path::new("/x"), &text).unwrap();
        assert_eq!(
            c.sip.tls_client_ca,
            Some(PathBuf::from("/x/tls/sbc-ca.pem"))
        );
    }

    #[test]
    fn a_trunk_the_sip_section_cannot_serve_names_its_line() {
        let trunk = "addresses = [\"127.0.0.10\"]";
        // tls_names without tls_client_ca: no certificate would ever be asked for.
        let text = DEMO_CONFIG.replace(
            trunk,
            &format!("{trunk}\ntls_names = [\"sbc1.example.com\"]"),
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("tls_names"))
            .unwrap()
            + 1;
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("x/demo.toml:{line}: ")), "{err}");
        assert!(
            err.contains("\"microsoft-pstn\"") && err.contains("tls_client_ca"),
            "{err}"
        );
        let with_ca = text.replace(
            "tls_private_key = \"tls/key.pem\"",
            "tls_private_key = \"tls/key.pem\"\ntls_client_ca = \"tls/ca.pem\"",
        );
        Config::parse(Path::new("x/demo.toml"), Path::new("x"), &with_ca).unwrap();
        // require_tls without a TLS listener: every call of the trunk would be refused.
        let text = DEMO_CONFIG
            .replace("tls = [\"127.0.0.1:5061\", \"[::1]:5061\"]\n", "")
            .replace(trunk, &format!("{trunk}\nrequire_tls = true"));
        let line = text
            .lines()
            .position(|l| l.starts_with("require_tls"))
            .unwrap()
            + 1;
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("x/demo.toml:{line}: ")), "{err}");
        assert!(err.contains("no tls listener"), "{err}");
    }

    #[test]
    fn money_is_optional_validated_with_its_line_and_its_database_resolved() {
        let demo = Config::demo().unwrap();
        let money = demo.money.as_ref().unwrap();
        assert_eq!(money.tenants.len(), 2);
        // None given: beside the CDR database.
        let database = money.database.as_deref().unwrap();
        assert!(
            Path::new(database).is_absolute()
                && database.ends_with("target/dialbridge-demo-cdr-ledger.sqlite"),
            "{database}"
        );
        // No [money]: nothing billed.
        let start = DEMO_CONFIG.find("\n[money]").unwrap();
        let without = &DEMO_CONFIG[..start];
        let c = Config::parse(Path::new("/x/demo.toml"), Path::new("/x"), without).unwrap();
        assert!(c.money.is_none());
        // Given: resolved against the file.
        let text =
            DEMO_CONFIG.replace("[money]\n", "[money]\ndatabase = \"money/ledger.sqlite\"\n");
        let c = Config::parse(Path::new("/x/demo.toml"), Path::new("/x"), &text).unwrap();
        assert_eq!(
            c.money.unwrap().database.as_deref(),
            Some("/x/money/ledger.sqlite")
        );
        // A fault names the file, the line and the key.
        let text = DEMO_CONFIG.replace("per_minute = \"0.02\"", "per_minute = \"2 cents\"");
        let line = text.lines().position(|l| l.contains("2 cents")).unwrap() + 1;
        let err = Config::parse(Path::new("x/demo.toml"), Path::new("x"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("x/demo.toml:{line}: [money] rate 2 per_minute:")),
            "{err}"
        );
    }
}
