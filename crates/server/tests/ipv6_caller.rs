//! A caller over IPv6: SIP to the bridge's [::1] listener, SDP `c=IN IP6 ::1`, RTP on
//! ::1. It keys into adele's meeting and is heard by, and hears, a caller that came over
//! IPv4. `dialbridge serve` runs the demo on free ports, listening for SIP on both
//! 127.0.0.1 and [::1] (`[sip] udp = ["127.0.0.1:P", "[::1]:P"]`) with media on ::1 for
//! IPv6 callers (`[media] address6 = "::1"`). The IPv6 caller is a softphone (alice,
//! digest), since ::1 is no trunk's address; the IPv4 caller is Telco A. sbc-sim's
//! IPv6 socket cannot send to an IPv4 address: hearing each other means the bridge
//! answered `c=IN IP6` and sent from ::1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dialbridge_testkit::caller::{JOIN_ADELE, assert_hears, caller, place, tone};
use dialbridge_testkit::ports::{free_udp_tcp_port, free_udp_tcp_port_on};
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::{ip, scratch_dir};
use sbc_sim::CallOutcome;

const TELCO_A: &str = "127.0.0.20";
/// Telco A's number for the Contoso bridge.
const TELCO_A_NUMBER: &str = "+33170000100";
/// The Contoso number a softphone dials.
const SOFTPHONE_NUMBER: &str = "+14255550100";
/// Stay this long after keying in: both callers overlap for several seconds.
const HOLD: Duration = Duration::from_secs(9);

/// `dialbridge serve` on the demo deployment, SIP on 127.0.0.1 and [::1] (one port),
/// media on 127.0.0.1 and ::1; the bridge's SIP address on each.
async fn bridge() -> (Serve, SocketAddr, SocketAddr) {
    let (lo4, lo6) = (ip("127.0.0.1"), ip("::1"));
    let sip = free_udp_tcp_port_on(&[lo4, lo6]);
    let (tls, admin) = (free_udp_tcp_port(lo4), free_udp_tcp_port(lo4));
    let scratch = scratch_dir("ipv6-caller");
    let config = DemoToml::new(&scratch)
        .on_loopback_ports(sip, tls, admin)
        .set(
            "sip",
            "udp",
            &format!("[\"127.0.0.1:{sip}\", \"[::1]:{sip}\"]"),
        )
        .set("media", "address6", "\"::1\"");
    let serve = Serve::start(
        Path::new(env!("CARGO_BIN_EXE_dialbridge")),
        &config,
        SocketAddr::new(lo4, admin),
        &scratch,
    )
    .await;
    (serve, SocketAddr::new(lo4, sip), SocketAddr::new(lo6, sip))
}

fn hears(name: &str, o: &CallOutcome, hz: f64, bridge: &Serve) {
    assert_hears(name, o, hz, &bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_on_ipv6_loopback_gets_in_hears_and_is_heard_by_an_ipv4_caller() {
    let (bridge, sip4, sip6) = bridge().await;
    let mut v6 = caller(SOFTPHONE_NUMBER, tone(440.0), JOIN_ADELE, HOLD);
    v6.from_user = "alice".into();
    v6.credentials = Some(("alice".into(), "alice-secret".into()));
    let v6 = tokio::spawn(place(sip6, "::1", v6));
    let v4 = tokio::spawn(place(
        sip4,
        TELCO_A,
        caller(TELCO_A_NUMBER, tone(1000.0), JOIN_ADELE, HOLD),
    ));
    let (v6, v4) = (v6.await.unwrap(), v4.await.unwrap());
    hears("the IPv6 caller", &v6, 1000.0, &bridge);
    hears("the IPv4 caller", &v4, 440.0, &bridge);
}
