//! Free ports on loopback, so that tests run in parallel without fixed ports.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

/// A port free for both UDP and TCP on `ip` right now (SIP listens on both).
pub fn free_udp_tcp_port(ip: IpAddr) -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind(SocketAddr::new(ip, 0)) else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free UDP+TCP port on {ip}");
}

/// A port free for both UDP and TCP on every address of `ips` right now (a SIP
/// listener on 127.0.0.1 and [::1] with the same port).
pub fn free_udp_tcp_port_on(ips: &[IpAddr]) -> u16 {
    let (first, rest) = ips.split_first().expect("at least one address");
    for _ in 0..100 {
        let port = free_udp_tcp_port(*first);
        let free_on = |ip: &IpAddr| {
            let addr = SocketAddr::new(*ip, port);
            UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
        };
        if rest.iter().all(free_on) {
            return port;
        }
    }
    panic!("no port free for UDP and TCP on all of {ips:?}");
}

/// An even port free for UDP with the next one free too (an RTP/RTCP pair).
pub fn free_rtp_port(ip: IpAddr) -> u16 {
    for _ in 0..1000 {
        let Ok(udp) = UdpSocket::bind(SocketAddr::new(ip, 0)) else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        let port = addr.port() & !1;
        drop(udp);
        if port == 0 || port == u16::MAX - 1 {
            continue;
        }
        let a = UdpSocket::bind(SocketAddr::new(ip, port));
        let b = UdpSocket::bind(SocketAddr::new(ip, port + 1));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
    panic!("no free RTP port pair on {ip}");
}
