//! Meetings that span bridge nodes (issue 16, item 2), over real SIP and RTP: three
//! `dialbridge serve` processes share one Redis and one PostgreSQL (`[shared]`), and
//! callers of one meeting are dialled straight into different nodes.
//!
//! What it proves:
//! - three callers on three nodes each hear both others exactly once (each other tone at
//!   the level of one path, so neither missing nor doubled) and never themselves (no echo
//!   through a node-to-node leg); the meeting's home, recorded in Redis, is the node
//!   whose caller joined first, and the home's admin API lists all three;
//! - when the home is SIGKILLed, within five seconds the Redis key names a surviving
//!   node, and the two surviving callers hear each other again (on audio received after
//!   the kill), the new home listing both;
//! - in megan's meeting, which waits for its leader, guests on two nodes wait in the
//!   lobby (they hear it, not each other, and nobody is in the mix) until the leader
//!   keys the PIN on a third node; then all three hear each other.
//!
//! - through Kamailio, three callers of one meeting land on three nodes (round robin)
//!   and hear each other the same way.
//!
//! The callers are testkit's plain UAC talking live ([`uac::Call::talk`]: a steady tone
//! and RFC 4733 keys), so what each hears is measured in windows the test chooses, and
//! every wait is a bounded poll.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_testkit::audio::{goertzel_power, rms};
use dialbridge_testkit::serve::{Serve, toml_string};
use dialbridge_testkit::servers::{Kamailio, PostgresDb, Redis};
use dialbridge_testkit::uac::{self, TALK_AMPLITUDE, Talker};
use dialbridge_testkit::{ip, scratch_dir};

/// Each test runs three bridges on a shared two-core machine: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The demo's tenant of both meetings below.
const TENANT: &str = "contoso";
/// adele's meeting: no lobby.
const ADELE: &str = "123456789";
/// Into adele's meeting as a participant: the ID, `#`, then `#` for no PIN.
const JOIN_ADELE: &str = "wait 500ms, keys 123456789#, wait 1500ms, keys #";
/// megan's meeting: participants wait for the leader (PIN 24680).
const MEGAN: &str = "987654321";
const MEGAN_GUEST: &str = "wait 500ms, keys 987654321#, wait 1500ms, keys #";
const MEGAN_LEADER: &str = "wait 500ms, keys 987654321#, wait 1500ms, keys 24680#";
/// contoso's toll number over the Microsoft trunk (identified by 127.0.0.10).
const MICROSOFT: (&str, &str) = ("127.0.0.10", "+14255550100");
/// contoso's number over Telco A (127.0.0.20). Telco B (127.0.0.30) reaches only
/// fabrikam, so no caller of a contoso meeting comes from it.
const TELCO_A: (&str, &str) = ("127.0.0.20", "+33170000100");

/// The callers' tones: multiples of 50 Hz, so a 20 ms frame dropped or repeated on the
/// way keeps their phase, and whole cycles in a 100 ms block, so each tone is
/// measured without leaking into another's; clear of the DTMF pairs, the join and leave
/// beeps (600/900 Hz) and the lobby music (below 530 Hz).
const TONES: [f64; 3] = [1000.0, 1800.0, 2500.0];

/// One measuring window while waiting for callers to hear each other.
const WINDOW: Duration = Duration::from_secs(1);
/// The window that must confirm it, once reached.
const CONFIRM: Duration = Duration::from_secs(2);
/// 100 ms at 8 kHz: the blocks a window is measured in.
const BLOCK: usize = 800;
/// Another caller's tone heard once: its power, as a share of one talker's tone heard
/// through one path, lies in this band (three callers on one node measure 1.00 ± 0.02:
/// G.711 and the mix keep the level below the limiter). Heard through two paths it
/// adds up to 2 + 2·cos θ (θ the phase between them): up to four times, and out of the
/// band unless the two paths are close to half-cancelling.
const ONCE: (f64, f64) = (0.5, 1.6);
/// Most of a caller's own tone (or, in the lobby, another's) that it may hear: 1/50 of
/// one path, well under any echo through a leg.
const ABSENT: f64 = 0.02;
/// The new home takes over within this long of the old one's death (issue 16).
const REHOME: Duration = Duration::from_secs(5);

struct Node {
    name: String,
    serve: Serve,
    sip: SocketAddr,
}

/// Three nodes on one Redis and one PostgreSQL, their keys under `namespace`.
struct Cluster {
    /// In front of the nodes, when the callers dial it rather than a node.
    kamailio: Option<Kamailio>,
    redis: Redis,
    _postgres: PostgresDb,
    namespace: String,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn start(namespace: &str) -> Cluster {
        Cluster::start_on(namespace, false).await
    }

    /// With `behind_kamailio`, node N listens on 127.0.1.N and trusts Kamailio's word
    /// of where a call came from, and Kamailio spreads the calls round robin.
    async fn start_on(namespace: &str, behind_kamailio: bool) -> Cluster {
        let (redis, postgres) = (Redis::start(), PostgresDb::create());
        let mut nodes = Vec::new();
        for (i, name) in ["node1", "node2", "node3"].into_iter().enumerate() {
            let shared = [
                format!("redis = {}", toml_string(&redis.url())),
                format!("postgres = {}", toml_string(postgres.url())),
                format!("node = {}", toml_string(name)),
                format!("namespace = {}", toml_string(namespace)),
            ];
            let dir = scratch_dir(&format!("{namespace}-{name}"));
            let bin = env!("CARGO_BIN_EXE_dialbridge").as_ref();
            let (serve, sip) = if behind_kamailio {
                let at = std::net::IpAddr::from([127, 0, 1, i as u8 + 1]);
                let trusting = ["trusted_proxies = [\"127.0.0.1\"]".to_string()];
                Serve::start_demo_on(bin, &dir, at, |c| {
                    c.add_table("shared", &shared)
                        .add_table("cluster", &trusting)
                })
                .await
            } else {
                Serve::start_demo(bin, &dir, |c| c.add_table("shared", &shared)).await
            };
            serve.wait_shared_ready().await;
            nodes.push(Node {
                name: name.to_owned(),
                serve,
                sip,
            });
        }
        let kamailio = behind_kamailio.then(|| {
            let sips: Vec<SocketAddr> = nodes.iter().map(|n: &Node| n.sip).collect();
            Kamailio::start(&sips)
        });
        Cluster {
            kamailio,
            redis,
            _postgres: postgres,
            namespace: namespace.to_owned(),
            nodes,
        }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no live node {name}"))
    }

    /// The home of contoso's `conference` as Redis records it: `<node>:<16 hex>`.
    fn home_instance(&self, conference: &str) -> Option<String> {
        let key = format!("{}:home:{TENANT}:{conference}", self.namespace);
        self.redis.get(&key)
    }

    /// The node name in [`Cluster::home_instance`].
    fn home(&self, conference: &str) -> Option<String> {
        self.home_instance(conference)
            .map(|v| v.split(':').next().unwrap_or_default().to_owned())
    }

    /// The end of each live node's log, for a failure's message.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = n.serve.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!("--- {} (last 40 lines) ---\n{tail}\n", n.name)
            })
            .collect()
    }
}

/// A caller dialled into one node, talking its tone.
struct Party {
    name: &'static str,
    node: String,
    hz: f64,
    call: uac::Call,
    talker: Talker,
}

impl Party {
    /// Stops talking and hangs up; the node must answer the BYE with 200 (the call was
    /// still up).
    async fn hang_up(self) {
        let Party {
            name, call, talker, ..
        } = self;
        drop(talker);
        assert_eq!(call.hang_up().await, 200, "{name}'s BYE");
    }
}

/// Calls `node` from the trunk `(source address, number)` and starts talking `hz` and
/// keying `script`.
async fn dial(
    cluster: &Cluster,
    node: &str,
    name: &'static str,
    (from, number): (&str, &str),
    hz: f64,
    script: &str,
) -> Party {
    let call = uac::call(cluster.node(node).sip, ip(from), number).await;
    assert_eq!(
        call.status, 200,
        "{name} calling {number} on {node}: {}",
        call.response
    );
    let talker = call.talk(hz, script);
    Party {
        name,
        node: node.to_owned(),
        hz,
        call,
        talker,
    }
}

/// Calls Kamailio from the trunk `(source address, number)`, talking `hz` and keying
/// `script`; the party's node is the one whose Contact answered.
async fn dial_via_kamailio(
    cluster: &Cluster,
    name: &'static str,
    (from, number): (&str, &str),
    hz: f64,
    script: &str,
) -> Party {
    let kamailio = cluster
        .kamailio
        .as_ref()
        .expect("a cluster behind Kamailio");
    let call = uac::call(kamailio.sip_addr(), ip(from), number).await;
    assert_eq!(
        call.status, 200,
        "{name} calling {number} through Kamailio: {}",
        call.response
    );
    let contact = call
        .response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
        .unwrap_or_default()
        .to_owned();
    let node = cluster
        .nodes
        .iter()
        .find(|n| contact.contains(&format!("@{}", n.sip)))
        .unwrap_or_else(|| panic!("{name}: no node's Contact in {}", call.response))
        .name
        .clone();
    let talker = call.talk(hz, script);
    Party {
        name,
        node,
        hz,
        call,
        talker,
    }
}

/// The power of `hz` in each 100 ms block of `heard`, as a share of one talker's tone
/// heard through one path (a sine of amplitude A has the normalised power A²/4).
fn shares(heard: &[i16], hz: f64) -> Vec<f64> {
    let one_path = (f64::from(TALK_AMPLITUDE) / 2.0).powi(2);
    heard
        .chunks_exact(BLOCK)
        .map(|b| goertzel_power(b, 8000.0, hz) / one_path)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Whether `heard`, `window` of what `party` received, holds the tone of each of
/// `others` once (its median block in [`ONCE`]) and its own not at all (its mean
/// block under [`ABSENT`]); `Err` says what it heard.
fn judge(party: &Party, others: &[&Party], heard: &[i16], window: Duration) -> Result<(), String> {
    let expected = (window.as_secs_f64() * 8000.0) as usize;
    let mut wrong = Vec::new();
    if heard.len() < expected * 4 / 5 {
        wrong.push(format!(
            "received only {} of {expected} samples",
            heard.len()
        ));
    }
    let mut levels = Vec::new();
    for other in others {
        let level = median(shares(heard, other.hz));
        levels.push(format!("{} {} Hz ×{level:.2}", other.name, other.hz));
        if !(ONCE.0..=ONCE.1).contains(&level) {
            wrong.push(format!(
                "hears {} ({} Hz) at ×{level:.2} of one path, not once ({:?})",
                other.name, other.hz, ONCE
            ));
        }
    }
    let own = mean(&shares(heard, party.hz));
    levels.push(format!("own {} Hz ×{own:.3}", party.hz));
    if own >= ABSENT {
        wrong.push(format!(
            "hears itself ({} Hz) at ×{own:.3} of one path",
            party.hz
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (on {}): {} [{}]",
            party.name,
            party.node,
            wrong.join("; "),
            levels.join(", ")
        ))
    }
}

/// What each of `parties` hears over the same `window`, from now on.
async fn listen_all(parties: &[&Party], window: Duration) -> Vec<Vec<i16>> {
    let listen = |i: usize| parties[i].call.listen_from_now(window);
    match parties.len() {
        2 => {
            let (a, b) = tokio::join!(listen(0), listen(1));
            vec![a, b]
        }
        3 => {
            let (a, b, c) = tokio::join!(listen(0), listen(1), listen(2));
            vec![a, b, c]
        }
        n => panic!("listen_all takes two or three parties, not {n}"),
    }
}

/// Each party's verdict on one common `window`.
async fn verdicts(parties: &[&Party], window: Duration) -> Vec<Result<(), String>> {
    let heard = listen_all(parties, window).await;
    parties
        .iter()
        .zip(&heard)
        .map(|(party, heard)| {
            let others: Vec<&Party> = parties
                .iter()
                .copied()
                .filter(|p| p.name != party.name)
                .collect();
            judge(party, &others, heard, window)
        })
        .collect()
}

/// Listens in [`WINDOW`]s until, in one of them, every party hears each other party
/// once and never itself (bounded by `within` and a number of rounds), then requires a
/// [`CONFIRM`] window to hold it as well. Panics with what each heard and the nodes'
/// logs.
async fn assert_each_hears_the_others(
    cluster: &Cluster,
    parties: &[&Party],
    within: Duration,
    what: &str,
) {
    let end = Instant::now() + within;
    let mut last = Vec::new();
    let rounds = within.as_secs() as usize + 2;
    let mut reached = false;
    for _ in 0..rounds {
        last = verdicts(parties, WINDOW).await;
        if last.iter().all(Result::is_ok) {
            reached = true;
            break;
        }
        if Instant::now() >= end {
            break;
        }
    }
    let report = |v: &[Result<(), String>]| {
        v.iter()
            .map(|r| match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        reached,
        "{what}: within {within:?}, not every caller heard each other caller once and \
         never itself; last window:\n{}\n{}",
        report(&last),
        cluster.logs()
    );
    let confirmed = verdicts(parties, CONFIRM).await;
    assert!(
        confirmed.iter().all(Result::is_ok),
        "{what}: reached, then lost in the next {CONFIRM:?}:\n{}\n{}",
        report(&confirmed),
        cluster.logs()
    );
}

/// Polls `node`'s admin API until it lists `count` participants of `conference` in
/// the mix (bounded), and returns the last listing.
async fn wait_in_meeting(node: &Node, conference: &str, count: usize) -> Vec<String> {
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = node.serve.in_meeting(conference).await;
        if listed.len() == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_callers_on_three_nodes_hear_each_other() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start("span-hear").await;
    // A joins first: node1 becomes the meeting's home.
    let a = dial(&cluster, "node1", "A", MICROSOFT, TONES[0], JOIN_ADELE).await;
    let listed = wait_in_meeting(cluster.node("node1"), ADELE, 1).await;
    assert_eq!(listed.len(), 1, "A in the meeting on node1: {listed:?}");
    let b = dial(&cluster, "node2", "B", TELCO_A, TONES[1], JOIN_ADELE).await;
    let c = dial(&cluster, "node3", "C", MICROSOFT, TONES[2], JOIN_ADELE).await;

    assert_each_hears_the_others(
        &cluster,
        &[&a, &b, &c],
        Duration::from_secs(30),
        "A on node1, B on node2, C on node3",
    )
    .await;

    let instance = cluster.home_instance(ADELE);
    let (node, suffix) = instance
        .as_deref()
        .and_then(|v| v.split_once(':'))
        .unwrap_or_else(|| panic!("the meeting's home in Redis: {instance:?}"));
    assert_eq!(
        node, "node1",
        "the first caller's node is home: {instance:?}"
    );
    assert!(
        suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
        "the home's instance is <node>:<16 hex digits>: {instance:?}"
    );
    let listed = wait_in_meeting(cluster.node(node), ADELE, 3).await;
    assert_eq!(
        listed.len(),
        3,
        "the home's admin API lists every participant, those on other nodes too: \
         {listed:?}"
    );
    for satellite in ["node2", "node3"] {
        let seen = wait_in_meeting(cluster.node(satellite), ADELE, 3).await;
        assert_eq!(
            seen.len(),
            3,
            "{satellite}'s admin API asks the home: {seen:?}"
        );
    }

    // Muted through node3's API, whichever node each is on (node3's own caller, node2's,
    // the home's): the home's meeting says so, and A no longer hears B's tone.
    let (_, listing) = cluster.node("node3").serve.get("/api/v1/conferences").await;
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let ids: Vec<u64> = listing["conferences"][0]["participants"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["id"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 3, "node3 lists three ids: {listing}");
    for id in &ids {
        let (status, body) = cluster
            .node("node3")
            .serve
            .post_json(
                &format!("/api/v1/participants/{id}/mute"),
                r#"{"muted": true}"#,
            )
            .await;
        assert_eq!(status, 200, "mute {id} through node3: {body}");
    }
    let (_, home_view) = cluster.node("node1").serve.get("/api/v1/conferences").await;
    assert_eq!(
        home_view.matches("\"muted\":true").count(),
        3,
        "the home's meeting has all three muted: {home_view}"
    );
    let mut quiet = false;
    for _ in 0..10 {
        let heard = a.call.listen_from_now(WINDOW).await;
        if mean(&shares(&heard, b.hz)) < ABSENT {
            quiet = true;
            break;
        }
    }
    assert!(
        quiet,
        "A stops hearing B once B is muted through another node"
    );
    let unknown = cluster
        .node("node2")
        .serve
        .post_json("/api/v1/participants/999999/mute", r#"{"muted": true}"#)
        .await;
    assert_eq!(
        unknown.0, 404,
        "no such participant anywhere: {}",
        unknown.1
    );

    // Locked through a satellite's API, the meeting at home is locked: a fourth caller,
    // on yet another node's front, is turned away.
    let path = format!("/api/v1/conferences/{TENANT}/{ADELE}/lock");
    let (status, body) = cluster
        .node("node3")
        .serve
        .post_json(&path, r#"{"locked": true}"#)
        .await;
    assert_eq!(status, 200, "lock through node3: {body}");
    let (_, home_view) = cluster.node("node1").serve.get("/api/v1/conferences").await;
    assert!(
        home_view.contains("\"locked\":true"),
        "the home's meeting is locked: {home_view}"
    );
    let d = uac::call(cluster.node("node2").sip, ip(TELCO_A.0), TELCO_A.1).await;
    assert_eq!(d.status, 200, "{}", d.response);
    let _keys = d.talk(TONES[0], JOIN_ADELE);
    let turned_away = d.wait_for_bye(Duration::from_secs(20)).await;
    assert!(turned_away, "a caller of the locked meeting is hung up on");

    for party in [a, b, c] {
        party.hang_up().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_callers_through_kamailio_land_on_three_nodes_and_hear_each_other() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start_on("span-kamailio", true).await;
    let a = dial_via_kamailio(&cluster, "A", MICROSOFT, TONES[0], JOIN_ADELE).await;
    let b = dial_via_kamailio(&cluster, "B", TELCO_A, TONES[1], JOIN_ADELE).await;
    let c = dial_via_kamailio(&cluster, "C", MICROSOFT, TONES[2], JOIN_ADELE).await;
    let mut nodes: Vec<&str> = [&a, &b, &c].iter().map(|p| p.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(
        nodes.len(),
        3,
        "round robin puts the three callers on three nodes"
    );

    assert_each_hears_the_others(
        &cluster,
        &[&a, &b, &c],
        Duration::from_secs(30),
        "A, B and C through Kamailio, one per node",
    )
    .await;
    let home = cluster.home(ADELE).expect("the meeting's home in Redis");
    let listed = wait_in_meeting(cluster.node(&home), ADELE, 3).await;
    assert_eq!(listed.len(), 3, "the home lists everyone: {listed:?}");
    for party in [a, b, c] {
        party.hang_up().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_whose_home_dies_reforms() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start("span-rehome").await;
    let a = dial(&cluster, "node1", "A", MICROSOFT, TONES[0], JOIN_ADELE).await;
    let listed = wait_in_meeting(cluster.node("node1"), ADELE, 1).await;
    assert_eq!(listed.len(), 1, "A in the meeting on node1: {listed:?}");
    let b = dial(&cluster, "node2", "B", TELCO_A, TONES[1], JOIN_ADELE).await;
    let c = dial(&cluster, "node3", "C", MICROSOFT, TONES[2], JOIN_ADELE).await;
    assert_each_hears_the_others(
        &cluster,
        &[&a, &b, &c],
        Duration::from_secs(30),
        "before the home dies",
    )
    .await;

    let home = cluster
        .home(ADELE)
        .unwrap_or_else(|| panic!("no home of the meeting in Redis\n{}", cluster.logs()));
    let at = cluster
        .nodes
        .iter()
        .position(|n| n.name == home)
        .unwrap_or_else(|| panic!("the home {home:?} is none of the nodes"));
    // The home's own caller goes down with it; the other two are the survivors.
    let (mut survivors, doomed): (Vec<Party>, Vec<Party>) =
        [a, b, c].into_iter().partition(|p| p.node != home);
    assert_eq!(survivors.len(), 2, "one caller on each node");
    let killed = Instant::now();
    drop(cluster.nodes.remove(at).serve); // SIGKILL: nothing handed over
    drop(doomed);

    let alive: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let mut now_home = None;
    for _ in 0..200 {
        now_home = cluster.home(ADELE);
        if now_home.as_ref().is_some_and(|h| alive.contains(h)) || killed.elapsed() >= REHOME {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_home = match now_home {
        Some(h) if alive.contains(&h) => h,
        other => panic!(
            "{REHOME:?} after {home} died, the meeting's home in Redis is {other:?}, \
             none of {alive:?}\n{}",
            cluster.logs()
        ),
    };

    // Only audio received from here on counts: every window drops what was queued.
    survivors.sort_by_key(|p| p.name);
    let (first, second) = (&survivors[0], &survivors[1]);
    let heard_by =
        (killed + REHOME + Duration::from_secs(3)).saturating_duration_since(Instant::now());
    assert_each_hears_the_others(
        &cluster,
        &[first, second],
        heard_by,
        &format!(
            "after {home} died ({} and {} survive)",
            first.name, second.name
        ),
    )
    .await;
    let listed = wait_in_meeting(cluster.node(&new_home), ADELE, 2).await;
    assert_eq!(
        listed.len(),
        2,
        "the new home {new_home} lists both survivors: {listed:?}"
    );

    for party in survivors {
        party.hang_up().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_on_one_node_admits_lobby_on_another() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start("span-lobby").await;
    let g2 = dial(
        &cluster,
        "node2",
        "guest2",
        MICROSOFT,
        TONES[1],
        MEGAN_GUEST,
    )
    .await;
    let g3 = dial(&cluster, "node3", "guest3", TELCO_A, TONES[2], MEGAN_GUEST).await;
    // Both keyed in and seen waiting (by the home, or each by its own node).
    let mut waiting = 0;
    for _ in 0..150 {
        waiting = 0;
        for node in &cluster.nodes {
            waiting += node.serve.in_lobby(MEGAN).await.len();
        }
        if waiting >= 2 && g2.talker.keyed() && g3.talker.keyed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        waiting >= 2 && g2.talker.keyed() && g3.talker.keyed(),
        "both guests in the lobby: {waiting} listed\n{}",
        cluster.logs()
    );
    for node in &cluster.nodes {
        let mixed = node.serve.in_meeting(MEGAN).await;
        assert!(
            mixed.is_empty(),
            "nobody is in the mix before the leader ({}): {mixed:?}",
            node.name
        );
    }
    // Three seconds of the lobby: each guest hears it (the announcement, the music),
    // and neither the other guest nor itself.
    let mut heard = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        let window = listen_all(&[&g2, &g3], WINDOW).await;
        for (all, part) in heard.iter_mut().zip(window) {
            all.extend(part);
        }
    }
    for (guest, other, heard) in [(&g2, &g3, &heard[0]), (&g3, &g2, &heard[1])] {
        let blocks = heard.chunks_exact(BLOCK).count();
        let audible = heard
            .chunks_exact(BLOCK)
            .filter(|b| rms(b) >= 200.0)
            .count();
        assert!(
            blocks >= 20 && audible * 2 >= blocks,
            "{} hears the lobby: {audible} of {blocks} blocks audible",
            guest.name
        );
        for (whose, hz) in [(other.name, other.hz), ("its own", guest.hz)] {
            let level = mean(&shares(heard, hz));
            assert!(
                level < ABSENT,
                "{} in the lobby hears {whose} tone ({hz} Hz) at ×{level:.3}\n{}",
                guest.name,
                cluster.logs()
            );
        }
    }

    let leader = dial(&cluster, "node1", "leader", TELCO_A, TONES[0], MEGAN_LEADER).await;
    assert_each_hears_the_others(
        &cluster,
        &[&leader, &g2, &g3],
        Duration::from_secs(30),
        "the leader on node1 admits the guests on node2 and node3",
    )
    .await;
    let home = cluster
        .home(MEGAN)
        .unwrap_or_else(|| panic!("no home of megan's meeting in Redis"));
    let listed = wait_in_meeting(cluster.node(&home), MEGAN, 3).await;
    assert_eq!(
        listed.len(),
        3,
        "the home {home} lists the leader and both guests in the mix: {listed:?}"
    );

    for party in [leader, g2, g3] {
        party.hang_up().await;
    }
}

/// When A (on the home) is unmuted, B beside it and C on another node hear A's tone
/// start: in every round, both. The test prints how much later C's stream carries the
/// onset than B's (in whole 20 ms packets, as each caller's RTP brings them), the
/// cross-node path's extra delay that README's "Meetings that span nodes" quotes:
/// `cargo test -p dialbridge-server --test spanning_meetings an_unmute_at_home -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmute_at_home_is_heard_on_both_nodes_and_the_extra_delay_is_printed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start("span-delay").await;
    let a = dial(&cluster, "node1", "A", MICROSOFT, TONES[0], JOIN_ADELE).await;
    let _ = wait_in_meeting(cluster.node("node1"), ADELE, 1).await;
    let b = dial(&cluster, "node1", "B", TELCO_A, TONES[1], JOIN_ADELE).await;
    let c = dial(&cluster, "node2", "C", MICROSOFT, TONES[2], JOIN_ADELE).await;
    assert_each_hears_the_others(
        &cluster,
        &[&a, &b, &c],
        Duration::from_secs(30),
        "A and B on node1, C on node2",
    )
    .await;
    let (_, listing) = cluster.node("node1").serve.get("/api/v1/conferences").await;
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let a_id = listing["conferences"][0]["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["dialled"] == MICROSOFT.1))
        .and_then(|p| p["id"].as_u64())
        .expect("A in the home's list");
    let path = format!("/api/v1/participants/{a_id}/mute");
    let one_path = (f64::from(TALK_AMPLITUDE) / 2.0).powi(2);
    // The first 5 ms block holding A's tone at a fifth of one path's power.
    let onset = |heard: &[i16]| {
        heard
            .chunks_exact(40)
            .position(|b| goertzel_power(b, 8000.0, a.hz) / one_path > 0.2)
    };
    let mut extra_ms = Vec::new();
    for round in 0..10 {
        let (status, body) = cluster
            .node("node1")
            .serve
            .post_json(&path, r#"{"muted": true}"#)
            .await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let listen = async {
            tokio::join!(
                b.call.listen_from_now(Duration::from_millis(1500)),
                c.call.listen_from_now(Duration::from_millis(1500))
            )
        };
        let unmute = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster
                .node("node1")
                .serve
                .post_json(&path, r#"{"muted": false}"#)
                .await
        };
        let ((heard_b, heard_c), (status, _)) = tokio::join!(listen, unmute);
        assert_eq!(status, 200);
        let (at_b, at_c) = (onset(&heard_b), onset(&heard_c));
        assert!(
            at_b.is_some() && at_c.is_some(),
            "round {round}: A's unmuted tone reaches B ({at_b:?}) and C ({at_c:?})"
        );
        if let (Some(at_b), Some(at_c)) = (at_b, at_c) {
            extra_ms.push((at_c as i64 - at_b as i64) * 5);
        }
    }
    extra_ms.sort_unstable();
    println!(
        "the cross-node path's extra delay, ms (whole packets): {extra_ms:?}, median {}",
        extra_ms[extra_ms.len() / 2]
    );
    for party in [a, b, c] {
        party.hang_up().await;
    }
}
