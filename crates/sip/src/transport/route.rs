//! Where a response goes (RFC 3261 §18.2.2 with RFC 3581 `rport`).

use super::{PeerAddr, TransportKind};

/// The peer a response to a request received from `source` is sent to, given the top
/// Via's sent-by port and whether it carried `rport`.
///
/// Reliable transports answer on the connection the request came on. Over UDP the
/// response goes to the source IP (the `received` address) and, with `rport`, the source
/// port (RFC 3581 §4: NATs and SBCs rewrite ports); without it, to the sent-by port or
/// 5060. `maddr` (multicast) is not supported: no trunk uses it.
pub fn response_peer(source: PeerAddr, sent_by_port: Option<u16>, rport: bool) -> PeerAddr {
    match source.transport {
        TransportKind::Tcp | TransportKind::Tls => source,
        TransportKind::Udp if rport => source,
        TransportKind::Udp => {
            let mut addr = source.addr;
            addr.set_port(sent_by_port.unwrap_or(5060));
            PeerAddr { addr, ..source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(addr: &str) -> PeerAddr {
        PeerAddr {
            transport: TransportKind::Udp,
            addr: addr.parse().unwrap(),
            connection: None,
        }
    }

    #[test]
    fn udp_without_rport_goes_to_received_ip_and_sent_by_port() {
        let p = response_peer(udp("127.0.0.10:40000"), Some(5062), false);
        assert_eq!(p.addr, "127.0.0.10:5062".parse().unwrap());
    }

    #[test]
    fn udp_without_port_defaults_to_5060() {
        let p = response_peer(udp("127.0.0.10:40000"), None, false);
        assert_eq!(p.addr, "127.0.0.10:5060".parse().unwrap());
    }

    #[test]
    fn udp_with_rport_goes_back_to_the_source_port() {
        let p = response_peer(udp("127.0.0.10:40000"), Some(5062), true);
        assert_eq!(p.addr, "127.0.0.10:40000".parse().unwrap());
    }

    #[test]
    fn streams_answer_on_the_same_connection() {
        let source = PeerAddr {
            transport: TransportKind::Tcp,
            addr: "127.0.0.20:45000".parse().unwrap(),
            connection: Some(7),
        };
        assert_eq!(response_peer(source, Some(5060), false), source);
    }
}
