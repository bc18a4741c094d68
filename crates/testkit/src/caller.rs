//! Callers for end-to-end tests, placed with sbc-sim: a trunk call keying its way into a
//! meeting, sending a tone or silence, recording what it hears.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dialbridge_media::Tone;
use sbc_sim::call::{self, CallConfig, Quiet};
use sbc_sim::dtmf::DtmfMode;
use sbc_sim::rtp::Source;
use sbc_sim::script::Script;
use sbc_sim::ua::{Signaling, Transport};
use sbc_sim::{CallOutcome, Expect};

/// The calling number every test caller presents.
pub const CALLING: &str = "+33612345678";

/// Into adele's meeting (123456789) as a participant: the ID, `#`, then `#` for no PIN.
pub const JOIN_ADELE: &str = "wait 500ms, keys 123456789#, wait 1500ms, keys #";

/// A steady sine at `hz` (a participant that talks all the time).
pub fn tone(hz: f64) -> Source {
    Source::Prompt(Arc::new(Tone::sine(hz, 1000, 6000)))
}

/// A caller to `to` sending `source`, keying `script` (RFC 4733), staying `hold` after
/// it, recording up to two minutes of what it hears and expecting a 200.
pub fn caller(to: &str, source: Source, script: &str, hold: Duration) -> CallConfig {
    CallConfig {
        to: to.into(),
        from_user: CALLING.into(),
        from_host: None,
        credentials: None,
        codec: sbc_sim::CallCodec::Pcmu,
        source,
        sdp_address: None,
        dtmf: DtmfMode::Rfc4733,
        script: Script::parse(script).expect("a valid sbc-sim script"),
        hold,
        setup_timeout: Duration::from_secs(5),
        record_limit: 8000 * 120,
        expect: Expect::default(),
    }
}

/// Places `config` from the trunk address `from` (127.0.0.20 is Telco A) over UDP.
pub async fn place(bridge: SocketAddr, from: &str, config: CallConfig) -> CallOutcome {
    let ip: IpAddr = from.parse().expect("an IP address");
    let signaling = Signaling::connect(Transport::Udp, ip, bridge, 4)
        .await
        .expect("sbc-sim binds its signaling socket");
    call::run(&signaling, &config, &Quiet).await
}

/// Asserts that `outcome` (the caller called `name`) was answered, passed, and heard a
/// steady `hz` tone in the 3 s before its last second (both callers were in, the prompts
/// over). `log` (the bridge's) is printed when it did not.
pub fn assert_hears(name: &str, outcome: &CallOutcome, hz: f64, log: &str) {
    use sbc_sim::audio_check::{Expectation, analyse_at};
    let o = outcome;
    assert!(
        o.answered() && o.passed(),
        "{name}: status {:?} {:?}: {:?}\n--- bridge ---\n{log}",
        o.status,
        o.reason,
        o.failures,
    );
    let rate = o.heard_rate as usize;
    let n = o.heard.len();
    assert!(n > rate * 5, "{name} heard only {n} samples at {rate} Hz");
    let analysis = analyse_at(&o.heard[n - rate * 4..n - rate], o.heard_rate, Some(hz));
    assert!(
        Expectation::Tone(hz).check(&analysis).is_ok(),
        "{name} does not hear the other caller's {hz} Hz: {analysis:?} (RTP {:?})\n--- bridge ---\n{log}",
        o.media,
    );
}
