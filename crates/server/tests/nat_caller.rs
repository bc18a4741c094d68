//! A caller behind NAT, as softphones on a LAN and some trunks are: its SDP gives one
//! address (`c=IN IP4 127.0.0.99`, where nothing listens), its RTP comes from another
//! (its socket on 127.0.0.20). The bridge must take its RTP as it comes and send back to
//! where it comes from (symmetric RTP): the caller keys into adele's meeting, hears a
//! second caller there and is heard by it. `dialbridge serve` runs the demo on free
//! ports with `symmetric_rtp = true` for Telco A; both callers are sbc-sim, from Telco
//! A's address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dialbridge_testkit::caller::{JOIN_ADELE, assert_hears, caller, place, tone};
use dialbridge_testkit::ports::free_udp_tcp_port;
use dialbridge_testkit::serve::{DemoToml, Serve};
use dialbridge_testkit::{ip, scratch_dir};
use sbc_sim::CallOutcome;

const TELCO_A: &str = "127.0.0.20";
/// Telco A's number for the Contoso bridge.
const SERVICE: &str = "+33170000100";
/// Where the NAT caller's SDP says its media is: loopback, and nothing listens there.
const SDP_ADDRESS: &str = "127.0.0.99";
/// Stay this long after keying in: both callers overlap for several seconds.
const HOLD: Duration = Duration::from_secs(9);

/// `dialbridge serve` on the demo deployment, every listener on a free port.
async fn bridge() -> (Serve, SocketAddr) {
    let lo = ip("127.0.0.1");
    let (sip, tls, admin) = (
        free_udp_tcp_port(lo),
        free_udp_tcp_port(lo),
        free_udp_tcp_port(lo),
    );
    let scratch = scratch_dir("nat-caller");
    // Symmetric RTP is per trunk, off by default: Telco A's SBC is the one behind a NAT.
    let config = DemoToml::new(&scratch)
        .on_loopback_ports(sip, tls, admin)
        .trunk_set("telco-a", "symmetric_rtp = true");
    let serve = Serve::start(
        Path::new(env!("CARGO_BIN_EXE_dialbridge")),
        &config,
        SocketAddr::new(lo, admin),
        &scratch,
    )
    .await;
    (serve, SocketAddr::new(lo, sip))
}

fn hears(name: &str, o: &CallOutcome, hz: f64, bridge: &Serve) {
    assert_hears(name, o, hz, &bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_sdp_address_is_not_its_rtp_source_gets_in_hears_and_is_heard() {
    let (bridge, sip) = bridge().await;
    let mut natted = caller(SERVICE, tone(440.0), JOIN_ADELE, HOLD);
    natted.sdp_address = Some(ip(SDP_ADDRESS));
    let natted = tokio::spawn(place(sip, TELCO_A, natted));
    let other = tokio::spawn(place(
        sip,
        TELCO_A,
        caller(SERVICE, tone(1000.0), JOIN_ADELE, HOLD),
    ));
    let (natted, other) = (natted.await.unwrap(), other.await.unwrap());
    hears("the caller behind NAT", &natted, 1000.0, &bridge);
    hears("the other caller", &other, 440.0, &bridge);
}
