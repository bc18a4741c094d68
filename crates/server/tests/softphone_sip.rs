//! What real softphones and trunks send, as raw SIP over real sockets (issue 11): quoted
//! and unknown Contact parameters (RFC 5626 `+sip.instance`), IPv6 references in From and
//! the Request-URI, `tel:` Request-URIs, IPv6 listeners; and every answer well-formed: a
//! To tag on every final response, 416 for a scheme we do not serve, 400 with a reason
//! that says what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};
use dialbridge_sip::auth::respond;
use tokio::net::UdpSocket;

/// A raw SIP peer on one UDP socket.
struct Peer {
    sock: UdpSocket,
    bridge: SocketAddr,
}

impl Peer {
    async fn new(local_ip: &str, bridge: SocketAddr) -> Peer {
        let sock = UdpSocket::bind(SocketAddr::new(local_ip.parse().unwrap(), 0))
            .await
            .unwrap();
        Peer { sock, bridge }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sends `request` (Content-Length filled in) and returns the first final response.
    async fn request(&self, request: &str, body: &str) -> String {
        let text = format!("{request}Content-Length: {}\r\n\r\n{body}", body.len());
        self.send_raw(text.as_bytes()).await
    }

    async fn send_raw(&self, bytes: &[u8]) -> String {
        self.sock.send_to(bytes, self.bridge).await.unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("an answer in time")
                    .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }
}

fn status(response: &str) -> u16 {
    response[8..11].parse().unwrap()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn to_tag(response: &str) -> Option<&str> {
    let to = header(response, "To")?;
    to.split(';').find_map(|p| p.trim().strip_prefix("tag="))
}

fn sdp(ip: &str, port: u16) -> String {
    let family = if ip.contains(':') { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=- 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_final_answer_carries_a_to_tag() {
    let bridge = TestBridge::start(demo_config()).await;
    let peer = Peer::new("127.0.0.1", bridge.sip_addr()).await;
    let local = peer.local();
    let options = format!(
        "OPTIONS sip:{b} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-opt1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=o1\r\nTo: <sip:{b}>\r\n\
         Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\n",
        b = bridge.sip_addr()
    );
    let ok = peer.request(&options, "").await;
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(to_tag(&ok).is_some(), "{ok}");

    // A softphone's INVITE without credentials: 401, with a To tag.
    let invite = format!(
        "INVITE sip:+14255550100@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=i1\r\nTo: <sip:+14255550100@{b}>\r\n\
         Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\n\
         Content-Type: application/sdp\r\n",
        b = bridge.sip_addr()
    );
    let challenge = peer.request(&invite, &sdp("127.0.0.1", 40000)).await;
    assert_eq!(status(&challenge), 401, "{challenge}");
    assert!(to_tag(&challenge).is_some(), "{challenge}");

    // One the parser refuses (stateless 400): a tag too, the same on a retransmission.
    let broken = "INVITE sip:+14255550100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-bad1\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=b1\r\nTo: <sip:+14255550100@127.0.0.1>\r\n\
         Call-ID: bad-1\r\nCSeq: one INVITE\r\nContent-Length: 0\r\n\r\n";
    let first = peer.send_raw(broken.as_bytes()).await;
    let again = peer.send_raw(broken.as_bytes()).await;
    assert_eq!(status(&first), 400, "{first}");
    assert!(to_tag(&first).is_some(), "{first}");
    assert_eq!(to_tag(&first), to_tag(&again));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_uris_are_read_or_refused_precisely() {
    let bridge = TestBridge::start(demo_config()).await;
    // From the Microsoft PSTN trunk (127.0.0.10): no digest in the way.
    let trunk = Peer::new("127.0.0.10", bridge.sip_addr()).await;
    let local = trunk.local();
    let invite = |uri: &str, n: u32| {
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ruri{n}\r\n\
             Max-Forwards: 70\r\nFrom: <tel:+14255551234>;tag=r{n}\r\nTo: <{uri}>\r\n\
             Call-ID: ruri-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:+14255551234@{local}>\r\n\
             Content-Type: application/sdp\r\n"
        )
    };
    let body = sdp("127.0.0.10", 40002);
    // tel: reaches the router: the unassigned number is refused by it, not by the parser.
    let unassigned = trunk.request(&invite("tel:+14255550999", 1), &body).await;
    assert_eq!(status(&unassigned), 404, "{unassigned}");
    // A scheme we do not serve: 416.
    let http = trunk
        .request(&invite("http://example.com/x", 2), &body)
        .await;
    assert_eq!(status(&http), 416, "{http}");
    assert!(to_tag(&http).is_some(), "{http}");
    // `<>` is no URI: 400 before anything else looks at it.
    let empty = trunk.request(&invite("<>", 3), &body).await;
    assert_eq!(status(&empty), 400, "{empty}");
    assert!(empty.starts_with("SIP/2.0 400 bad Request-URI"), "{empty}");
    // An IPv6 reference in the Request-URI is a valid one.
    let v6 = trunk
        .request(&invite("sip:+14255550999@[::1]:5060", 4), &body)
        .await;
    assert_eq!(status(&v6), 404, "{v6}");

    // A NUL byte inside From: 400 that says why.
    let nul = format!(
        "INVITE sip:+14255550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-nul\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ali\0ce@127.0.0.1>;tag=n1\r\nTo: <sip:+14255550100@127.0.0.1>\r\n\
         Call-ID: nul-1\r\nCSeq: 1 INVITE\r\n"
    );
    let refused = trunk.request(&nul, "").await;
    assert!(
        refused.starts_with("SIP/2.0 400 control character in header"),
        "{refused}"
    );
    assert_eq!(bridge.calls_in_progress(), 0);
    bridge.stop().await;
}

/// The INVITE Linphone sends with its defaults: a From with the IPv6 address it guessed
/// for itself, a Contact with quoted RFC 5626 parameters. With alice's password it is
/// answered 200, and its BYE (same From) ends the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_softphone_with_instance_contact_and_ipv6_from_is_answered() {
    let bridge = TestBridge::start(demo_config()).await;
    let phone = Peer::new("127.0.0.1", bridge.sip_addr()).await;
    let local = phone.local();
    let ruri = format!("sip:+14255550100@{}", bridge.sip_addr());
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK.lin{cseq};rport\r\n\
             From: \"Alice\" <sip:alice@[fd00::2]>;tag=lin1\r\nTo: <{ruri}>\r\n\
             CSeq: {cseq} INVITE\r\nCall-ID: linphone-like-1\r\nMax-Forwards: 70\r\n\
             Supported: replaces, outbound, gruu, path\r\n{auth}\
             Contact: <sip:{local};transport=udp>;expires=3600;\
             +sip.instance=\"<urn:uuid:8b3d1a4e-0d1b-4a39-9c1e-5f6a7b8c9d0e>\";+org.linphone.specs=\"lime\"\r\n\
             Content-Type: application/sdp\r\nUser-Agent: LinphoneLike/5.1\r\n"
        )
    };
    let body = sdp("fd00::2", 7078);
    let challenge = phone.request(&invite(20, ""), &body).await;
    assert_eq!(status(&challenge), 401, "{challenge}");
    let www = header(&challenge, "WWW-Authenticate").unwrap();
    let authorization =
        respond(www, "alice", "alice-secret", "INVITE", &ruri, "c0ffee", 1).unwrap();
    // ACK for the 401 (same branch), then the INVITE again with credentials.
    let ack = format!(
        "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK.lin20;rport\r\n\
         From: \"Alice\" <sip:alice@[fd00::2]>;tag=lin1\r\nTo: {to}\r\nCSeq: 20 ACK\r\n\
         Call-ID: linphone-like-1\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        to = header(&challenge, "To").unwrap()
    );
    phone
        .sock
        .send_to(ack.as_bytes(), bridge.sip_addr())
        .await
        .unwrap();
    let ok = phone
        .request(
            &invite(21, &format!("Authorization: {authorization}\r\n")),
            &body,
        )
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
    let to = header(&ok, "To").unwrap().to_owned();
    let ack = format!(
        "ACK sip:dialbridge@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK.lin21ack;rport\r\n\
         From: \"Alice\" <sip:alice@[fd00::2]>;tag=lin1\r\nTo: {to}\r\nCSeq: 21 ACK\r\n\
         Call-ID: linphone-like-1\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        b = bridge.sip_addr()
    );
    phone
        .sock
        .send_to(ack.as_bytes(), bridge.sip_addr())
        .await
        .unwrap();
    dialbridge_testkit::wait_until(
        "the call to be up",
        || bridge.calls_in_progress() == 1,
        Duration::from_secs(5),
    )
    .await;
    let bye = format!(
        "BYE sip:dialbridge@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK.lin22;rport\r\n\
         From: \"Alice\" <sip:alice@[fd00::2]>;tag=lin1\r\nTo: {to}\r\nCSeq: 22 BYE\r\n\
         Call-ID: linphone-like-1\r\nMax-Forwards: 70\r\n",
        b = bridge.sip_addr()
    );
    let bye_ok = phone.request(&bye, "").await;
    assert_eq!(status(&bye_ok), 200, "{bye_ok}");
    dialbridge_testkit::wait_until(
        "the call to end",
        || bridge.calls_in_progress() == 0,
        Duration::from_secs(5),
    )
    .await;
    bridge.stop().await;
}

/// A bridge listening on IPv4 and IPv6 answers on both, naming itself in the family the
/// peer used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_listens_on_ipv6_too() {
    let mut config = demo_config();
    config.sip.udp.push("[::1]:0".parse().unwrap());
    let bridge = TestBridge::start(config).await;
    let v6 = bridge.sip_addr_v6().expect("an IPv6 listener");
    let peer = Peer::new("::1", v6).await;
    let local = peer.local();
    let invite = format!(
        "INVITE sip:+14255550999@{v6} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-v6inv;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@[{ip}]>;tag=v6\r\nTo: <sip:+14255550999@{v6}>\r\n\
         Call-ID: v6-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\n\
         Content-Type: application/sdp\r\n",
        ip = local.ip()
    );
    let challenge = peer.request(&invite, &sdp("::1", 40004)).await;
    assert_eq!(status(&challenge), 401, "{challenge}");
    // The Via we answer along carries the IPv6 source (RFC 3581: rport filled in,
    // received without brackets, RFC 5118 §4.5).
    let via = header(&challenge, "Via").unwrap();
    assert!(
        via.ends_with(&format!(";rport={};received=::1", local.port())),
        "{via}"
    );
    bridge.stop().await;
}
