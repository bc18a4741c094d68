//! Bridge nodes behind Kamailio (deploy/kamailio/), as `scripts/cluster.sh` runs them:
//! nodes on addresses of their own (127.0.1.x) sharing a Redis and a PostgreSQL, each
//! trusting Kamailio's `X-Dialbridge-Source`, and callers that only ever dial Kamailio.
//! The trunks (by address, or by the TLS client certificate Kamailio verifies), the
//! softphone's digest and every refusal are what one node says; the
//! number of capacity 2 admits exactly 2 of 20 calls spread over three nodes; a
//! SIGKILLed node's capacity comes back within the lease while the others answer; a
//! draining node takes no new call while its own finishes; BYEs either way reach the
//! node that holds the call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dialbridge_testkit::serve::{DemoToml, Serve, toml_string};
use dialbridge_testkit::servers::{Kamailio, PostgresDb, Redis};
use dialbridge_testkit::sipp::{Sipp, SippTransport};
use dialbridge_testkit::uac::{self, header};
use dialbridge_testkit::{ip, scratch_dir};

const MICROSOFT: &str = "127.0.0.10";
const TELCO_A: &str = "127.0.0.20";
const TELCO_B: &str = "127.0.0.30";
/// No trunk's address: a softphone that must prove itself.
const STRANGER: &str = "127.0.0.99";
/// Capacity 2, reached over the Microsoft trunk.
const USER_NUMBER: &str = "+14255550123";
const SERVICE_NUMBER: &str = "+14255550100";

struct Node {
    serve: Serve,
    sip: SocketAddr,
}

/// Kamailio in front of `count` nodes on 127.0.1.1, .2, ..., with Redis and a
/// PostgreSQL database they share. Dropped in field order: Kamailio first.
/// Each test runs Kamailio, Redis, PostgreSQL and up to three bridges on a shared
/// two-core machine: one cluster at a time, or their timers starve each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    kamailio: Kamailio,
    nodes: Vec<Node>,
    _postgres: PostgresDb,
    _redis: Redis,
    /// Held while this cluster runs (dropped last).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    async fn start(what: &str, count: u8, lease_s: u64) -> Cluster {
        Cluster::start_with(what, count, lease_s, |c| c).await
    }

    async fn start_with(
        what: &str,
        count: u8,
        lease_s: u64,
        edit: impl Fn(DemoToml) -> DemoToml,
    ) -> Cluster {
        Cluster::start_full(what, count, lease_s, edit, None).await
    }

    /// With `client_ca`, Kamailio asks TLS callers for a certificate verified against it.
    async fn start_full(
        what: &str,
        count: u8,
        lease_s: u64,
        edit: impl Fn(DemoToml) -> DemoToml,
        client_ca: Option<&std::path::Path>,
    ) -> Cluster {
        let turn = ONE_AT_A_TIME.lock().await;
        let (redis, postgres) = (Redis::start(), PostgresDb::create());
        let bin = env!("CARGO_BIN_EXE_dialbridge").as_ref();
        let mut nodes = Vec::new();
        for i in 1..=count {
            let shared = [
                format!("redis = {}", toml_string(&redis.url())),
                format!("postgres = {}", toml_string(postgres.url())),
                format!("node = \"node{i}\""),
                format!("lease_s = {lease_s}"),
            ];
            let trusting = ["trusted_proxies = [\"127.0.0.1\"]".to_string()];
            let dir = scratch_dir(&format!("{what}-node{i}"));
            let at = IpAddr::from([127, 0, 1, i]);
            let (serve, sip) = Serve::start_demo_on(bin, &dir, at, |c| {
                edit(c)
                    .add_table("shared", &shared)
                    .add_table("cluster", &trusting)
            })
            .await;
            serve.wait_shared_ready().await;
            nodes.push(Node { serve, sip });
        }
        let sips: Vec<SocketAddr> = nodes.iter().map(|n| n.sip).collect();
        let kamailio = Kamailio::start_with(&sips, client_ca);
        Cluster {
            kamailio,
            nodes,
            _postgres: postgres,
            _redis: redis,
            _turn: turn,
        }
    }

    fn sip(&self) -> SocketAddr {
        self.kamailio.sip_addr()
    }

    /// The node whose Contact answered `call`: the one that holds it.
    fn holder(&self, call: &uac::Call) -> usize {
        let contact = header(&call.response, "Contact").unwrap_or_default();
        self.nodes
            .iter()
            .position(|n| contact.contains(&format!("@{}", n.sip)))
            .unwrap_or_else(|| panic!("no node's Contact: {}", call.response))
    }

    /// Kamailio's log and every node's, for a failure's message.
    fn logs(&self) -> String {
        let mut out = format!("--- kamailio ---\n{}", self.kamailio.log());
        for (i, node) in self.nodes.iter().enumerate() {
            out.push_str(&format!("--- node{} ---\n{}", i + 1, node.serve.log()));
        }
        out
    }
}

/// How many new calls the node's router has decided on (admitted or refused).
async fn decisions(serve: &Serve) -> u64 {
    let (_, metrics) = serve.get("/metrics").await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("dialbridge_router_admitted_total")
                || l.starts_with("dialbridge_router_refused_total")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Calls `number` through Kamailio until one is answered (bounded); the refusals on the
/// way must all be "busy".
async fn call_until_answered(cluster: &Cluster, number: &str) -> uac::Call {
    for _ in 0..200 {
        let call = uac::call(cluster.sip(), ip(MICROSOFT), number).await;
        if call.status == 200 {
            return call;
        }
        assert_eq!(call.status, 486, "{}", call.response);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no call to {number} was answered within 40 s");
}

/// Through Kamailio, each trunk's calls are what they are on one node: its numbers
/// answered, another provider's number refused with the same status and reason, an
/// unassigned number 404, a stranger challenged — and a stranger's forged header does
/// not make it a trunk. Every answered call's BYE reaches the node that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_through_kamailio_are_admitted_and_refused_as_on_one_node() {
    let cluster = Cluster::start("cluster-rules", 2, 15).await;
    let rows = [
        (MICROSOFT, SERVICE_NUMBER, 200),
        (MICROSOFT, "+18885550100", 200),
        (TELCO_A, "+33170000100", 200),
        (TELCO_B, "+493070000100", 200),
        // A Microsoft number from an operator's trunk, and the reverse.
        (TELCO_A, SERVICE_NUMBER, 403),
        (MICROSOFT, "+33170000100", 403),
        (MICROSOFT, "+14255550999", 404),
        (STRANGER, SERVICE_NUMBER, 401),
    ];
    let direct = cluster.nodes[0].sip;
    for (from, number, want) in rows {
        let through = uac::call(cluster.sip(), ip(from), number).await;
        let alone = uac::call(direct, ip(from), number).await;
        assert_eq!(
            through.status,
            want,
            "{from} -> {number}: {}\n{}",
            through.response,
            cluster.logs()
        );
        assert_eq!(alone.status, want, "{from} -> {number}: {}", alone.response);
        assert_eq!(
            header(&through.response, "Reason"),
            header(&alone.response, "Reason"),
            "{from} -> {number}"
        );
        if want == 200 {
            assert_eq!(through.hang_up().await, 200, "{}", cluster.logs());
            assert_eq!(alone.hang_up().await, 200);
        }
    }

    // A stranger naming the Microsoft trunk in the header Kamailio writes: Kamailio
    // replaces it, so the node challenges.
    let forged = forged_invite(cluster.sip(), ip(STRANGER), "udp 127.0.0.10:5060").await;
    assert_eq!(forged, 401, "{}", cluster.logs());
}

/// An INVITE from `from` carrying `X-Dialbridge-Source: {source}`; its final status.
async fn forged_invite(to: SocketAddr, from: IpAddr, source: &str) -> u16 {
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .unwrap();
    let local = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:{SERVICE_NUMBER}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-forged-{port};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001111@{ip}>;tag=forged\r\n\
         To: <sip:{SERVICE_NUMBER}@{to}>\r\n\
         Call-ID: forged-{port}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         X-Dialbridge-Source: {source}\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip(),
        port = local.port(),
    );
    sock.send_to(invite.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    for _ in 0..20 {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await
        else {
            return 0;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            return status;
        }
    }
    0
}

/// The sipp scenarios through Kamailio, over UDP and TCP (TCP to Kamailio, UDP to the
/// nodes: record-routed on both sides); the softphone's digest over Kamailio's address
/// (the digest `uri` names it); and a call the node ends, whose BYE must follow the
/// route set back through Kamailio to sipp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sipp_scenarios_pass_through_kamailio() {
    let short_ivr = |c: DemoToml| {
        let ivr = ["first_digit_timeout_ms = 1000", "max_attempts = 1"];
        c.add_table("ivr", &ivr.map(String::from))
    };
    let cluster = Cluster::start_with("cluster-sipp", 2, 15, short_ivr).await;
    let kamailio = cluster.sip();
    for transport in [SippTransport::Udp, SippTransport::Tcp] {
        let outcome = Sipp::new("uac-call.xml", kamailio, ip(MICROSOFT), SERVICE_NUMBER)
            .transport(transport)
            .run()
            .await;
        assert!(
            outcome.passed(),
            "{transport:?}: {}\n{}",
            outcome.log,
            cluster.logs()
        );
    }
    let digest_uri = format!("{SERVICE_NUMBER}@{kamailio}");
    let outcome = Sipp::new("uac-digest.xml", kamailio, ip(STRANGER), SERVICE_NUMBER)
        .args(&[
            "-au",
            "alice",
            "-ap",
            "alice-secret",
            "-auth_uri",
            &digest_uri,
        ])
        .run()
        .await;
    assert!(outcome.passed(), "{}\n{}", outcome.log, cluster.logs());
    Sipp::new(
        "uac-digest-forbidden.xml",
        kamailio,
        ip(STRANGER),
        SERVICE_NUMBER,
    )
    .args(&[
        "-au",
        "alice",
        "-ap",
        "not-her-password",
        "-auth_uri",
        &digest_uri,
    ])
    .passes()
    .await;
    let outcome = Sipp::new(
        "uac-bridge-hangup.xml",
        kamailio,
        ip(MICROSOFT),
        SERVICE_NUMBER,
    )
    .timeout(Duration::from_secs(90))
    .run()
    .await;
    assert!(outcome.passed(), "{}\n{}", outcome.log, cluster.logs());
}

/// TLS on Kamailio's TLS port with the test certificate the single bridge uses: the
/// trunk is still known by its address, and the call is answered and ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_calls_over_tls_through_kamailio() {
    let cluster = Cluster::start("cluster-tls", 1, 15).await;
    let tls = dialbridge_testkit::tls::client_config(None);
    let call = uac::call_over_tls(
        cluster.kamailio.tls_addr(),
        ip(MICROSOFT),
        SERVICE_NUMBER,
        uac::G711_OFFER,
        tls,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(call.status, 200, "{}\n{}", call.response, cluster.logs());
    assert!(
        call.receive_raw(Duration::from_secs(5)).await.is_some(),
        "no media from the node"
    );
    assert_eq!(call.hang_up().await, 200, "{}", cluster.logs());
}

/// A trunk known by its TLS client certificate (Direct Routing's way): Kamailio verifies
/// it and passes its DNS name, so the node identifies the trunk from any address, and
/// refuses the trunk's own address without it, as one node with the certificate would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_known_by_its_certificate_is_known_through_kamailio() {
    let ca = dialbridge_testkit::tls::TestCa::new("SBC operator CA");
    let bundle = scratch_dir("cluster-cert-ca").join("sbc-ca.pem");
    ca.write_pem(&bundle);
    let named = |c: DemoToml| {
        c.trunk_set("microsoft-pstn", "tls_names = [\"sbc1.example.com\"]")
            .set(
                "sip",
                "tls_client_ca",
                &toml_string(&bundle.to_string_lossy()),
            )
    };
    let cluster = Cluster::start_full("cluster-cert", 1, 15, named, Some(&bundle)).await;
    let tls = cluster.kamailio.tls_addr();
    let client = ca.client(&["sbc1.example.com"]);
    let with_cert = dialbridge_testkit::tls::client_config(Some(&client));
    // From no trunk's address, known by the certificate alone.
    let call = uac::call_over_tls(
        tls,
        ip(STRANGER),
        SERVICE_NUMBER,
        uac::G711_OFFER,
        with_cert,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(call.status, 200, "{}\n{}", call.response, cluster.logs());
    assert_eq!(call.hang_up().await, 200, "{}", cluster.logs());
    // The trunk's own address without a certificate is not enough.
    let without = dialbridge_testkit::tls::client_config(None);
    let call = uac::call_over_tls(tls, ip(MICROSOFT), SERVICE_NUMBER, uac::G711_OFFER, without)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(call.status, 403, "{}\n{}", call.response, cluster.logs());
    assert!(
        header(&call.response, "Reason")
            .is_some_and(|r| r.contains("requires a TLS client certificate")),
        "{}",
        call.response
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_of_capacity_two_admits_exactly_two_of_twenty_calls_spread_over_three_nodes() {
    let cluster = Cluster::start("cluster-race", 3, 15).await;
    let kamailio = cluster.sip();
    let calls: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { uac::call(kamailio, ip(MICROSOFT), USER_NUMBER).await }))
        .collect();
    let mut answered = Vec::new();
    for call in calls {
        let call = call.await.unwrap();
        match call.status {
            200 => answered.push(call),
            486 => assert_eq!(
                header(&call.response, "Reason"),
                Some("Q.850;cause=17;text=\"number at its concurrent-call capacity\""),
                "{}",
                call.response
            ),
            other => panic!("{other}: {}\n{}", call.response, cluster.logs()),
        }
    }
    assert_eq!(
        answered.len(),
        2,
        "exactly the number's capacity is admitted"
    );
    // Round robin: every node decided on some of the twenty.
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert!(
            decisions(&node.serve).await > 0,
            "node{} got no call",
            i + 1
        );
    }
    for call in answered {
        assert_eq!(call.hang_up().await, 200, "{}", cluster.logs());
    }
    // Given back on every node: two more are admitted, wherever they land.
    let a = call_until_answered(&cluster, USER_NUMBER).await;
    let b = call_until_answered(&cluster, USER_NUMBER).await;
    let third = uac::call(kamailio, ip(MICROSOFT), USER_NUMBER).await;
    assert_eq!(third.status, 486, "{}", third.response);
    assert_eq!(a.hang_up().await, 200);
    assert_eq!(b.hang_up().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_nodes_capacity_comes_back_within_the_lease_and_the_others_answer() {
    let mut cluster = Cluster::start("cluster-kill", 3, 3).await;
    let first = uac::call(cluster.sip(), ip(MICROSOFT), USER_NUMBER).await;
    assert_eq!(first.status, 200, "{}", first.response);
    let second = uac::call(cluster.sip(), ip(MICROSOFT), USER_NUMBER).await;
    assert_eq!(second.status, 200, "{}", second.response);
    let doomed = cluster.holder(&first);
    let survivor = second;
    // The second call may be on the same node: then both die with it.
    let survives = cluster.holder(&survivor) != doomed;
    let busy = uac::call(cluster.sip(), ip(MICROSOFT), USER_NUMBER).await;
    assert_eq!(busy.status, 486, "{}", busy.response);

    drop(cluster.nodes.remove(doomed).serve); // SIGKILL: nothing given back
    std::mem::forget(first);
    // New calls keep being answered (Kamailio tries the next node when one is silent,
    // then its probe takes the dead one out), each BYE reaching its node.
    for _ in 0..6 {
        let call = uac::call(cluster.sip(), ip(MICROSOFT), SERVICE_NUMBER).await;
        assert_eq!(call.status, 200, "{}\n{}", call.response, cluster.logs());
        assert_eq!(call.hang_up().await, 200, "{}", cluster.logs());
    }
    // Within the lease (3 s) and a heartbeat, the dead node's call is given back: the
    // number takes calls again, up to its capacity with the survivor still counted.
    let again = call_until_answered(&cluster, USER_NUMBER).await;
    if survives {
        let full = uac::call(cluster.sip(), ip(MICROSOFT), USER_NUMBER).await;
        assert_eq!(full.status, 486, "{}", full.response);
        assert_eq!(survivor.hang_up().await, 200);
    } else {
        std::mem::forget(survivor);
    }
    assert_eq!(again.hang_up().await, 200, "{}", cluster.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_gets_no_new_calls_while_its_call_finishes() {
    let long_drain = |c: DemoToml| c.set("sip", "drain_timeout_ms", "60000");
    let cluster = Cluster::start_with("cluster-drain", 3, 15, long_drain).await;
    let held = uac::call(cluster.sip(), ip(MICROSOFT), SERVICE_NUMBER).await;
    assert_eq!(held.status, 200, "{}", held.response);
    let draining = cluster.holder(&held);
    let pid = cluster.nodes[draining].serve.pid().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    // The node says so to new calls and to Kamailio's probes (bounded wait).
    let node = cluster.nodes[draining].sip;
    let mut refusing = false;
    for _ in 0..100 {
        let probe =
            dialbridge_testkit::options::ping(node, ip("127.0.0.1"), Duration::from_secs(1));
        if probe.await == Some(503) {
            refusing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refusing,
        "the draining node never answered OPTIONS with 503"
    );
    // Every new call is answered, by the others.
    for _ in 0..6 {
        let call = uac::call(cluster.sip(), ip(MICROSOFT), SERVICE_NUMBER).await;
        assert_eq!(call.status, 200, "{}\n{}", call.response, cluster.logs());
        assert_ne!(
            cluster.holder(&call),
            draining,
            "a new call reached the draining node"
        );
        assert_eq!(call.hang_up().await, 200, "{}", cluster.logs());
    }
    // Its own call goes on, and ends by the caller's BYE through Kamailio.
    assert!(
        held.receive_raw(Duration::from_secs(5)).await.is_some(),
        "the draining node's call lost its media"
    );
    assert_eq!(held.hang_up().await, 200, "{}", cluster.logs());
    // With its last call gone the node exits (bounded wait).
    let mut exited = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        if stat.as_ref().map_or(true, |s| s.contains(") Z ")) {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exited,
        "the drained node did not exit:\n{}",
        cluster.nodes[draining].serve.log()
    );
}

/// The calls a node holds right now (`dialbridge_calls_in_progress`).
async fn calls_in_progress(serve: &Serve) -> u64 {
    let (_, metrics) = serve.get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialbridge_calls_in_progress "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The calls every node holds.
async fn cluster_calls(cluster: &Cluster) -> u64 {
    let mut total = 0;
    for node in &cluster.nodes {
        total += calls_in_progress(&node.serve).await;
    }
    total
}

/// baresip, a softphone we did not write, with the README's settings (an account, its
/// password, no registration) dials Kamailio as it would the single bridge: the node
/// that gets the call challenges it (the digest sees the softphone, not the proxy), the
/// call is set up with media both ways, and baresip's BYE ends it on that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_dials_in_through_kamailio_with_digest_credentials() {
    let cluster = Cluster::start("cluster-baresip", 2, 15).await;
    let tone = dialbridge_testkit::fixtures().join("prompts/help.wav");
    let baresip = dialbridge_testkit::baresip::Baresip::new("cluster", &tone);
    let child = baresip.dial("alice", "alice-secret", "+14255550100", cluster.sip(), 8);
    let mut seen_up = false;
    for _ in 0..60 {
        if cluster_calls(&cluster).await == 1 {
            seen_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = dialbridge_testkit::baresip::Baresip::finish(child, Duration::from_secs(20)).await;
    let log = &run.log;
    assert!(
        seen_up,
        "a node held baresip's call:\n{log}\n{}",
        cluster.logs()
    );
    assert!(run.established(), "{log}");
    assert!(run.heard_rtp(), "a node's media reached baresip:\n{log}");
    for _ in 0..50 {
        if cluster_calls(&cluster).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cluster_calls(&cluster).await,
        0,
        "baresip's BYE reached the node and ended the call"
    );
}

/// sbc-sim, as the README dials in, through Kamailio: two callers of adele's meeting
/// from Telco A land on the two nodes (round robin) and each hears the other's tone, so
/// the meeting spans the nodes behind the proxy as it does behind nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sbc_sim_callers_through_kamailio_hear_each_other_across_two_nodes() {
    use dialbridge_testkit::caller::{JOIN_ADELE, assert_hears, caller, place, tone};
    let cluster = Cluster::start("cluster-sbc-sim", 2, 15).await;
    let script = format!("{JOIN_ADELE}, wait 9s");
    let hold = Duration::from_millis(200);
    let first = place(
        cluster.sip(),
        "127.0.0.20",
        caller("+33170000100", tone(1000.0), &script, hold),
    );
    let second = async {
        // The second joins once the first is in: its node is then a satellite.
        tokio::time::sleep(Duration::from_millis(300)).await;
        place(
            cluster.sip(),
            "127.0.0.20",
            caller("+33170000100", tone(1800.0), &script, hold),
        )
        .await
    };
    let (first, second) = tokio::join!(first, second);
    let logs = cluster.logs();
    assert_hears("the first caller", &first, 1800.0, &logs);
    assert_hears("the second caller", &second, 1000.0, &logs);
    let legs = cluster
        .nodes
        .iter()
        .filter(|n| {
            n.serve
                .log()
                .contains("joined the meeting's home through a leg")
        })
        .count();
    assert_eq!(
        legs, 1,
        "one node reached the other's meeting through a leg:\n{logs}"
    );
}
