//! Who really sent a request: the packet's source, or, when that source is a trusted SIP
//! proxy (Kamailio in front of the nodes, deploy/kamailio/), the caller the proxy names
//! in `X-Dialbridge-Source`. Pure: the signaling task rewrites every request it receives
//! here, once, and everything that decides who a caller is (trunk identity, digest
//! authentication, lock-outs, trunk TLS policy, latching) reads the [`Origin`], while
//! responses and in-dialog requests still follow Via and the route set back through the
//! proxy.
//!
//! The header's grammar, as the proxy writes it:
//!
//! ```text
//! X-Dialbridge-Source: <udp|tcp|tls> <ip>:<port> *( ";name=" <dns-name> )
//! ```
//!
//! with `[v6]:port` for IPv6, and a `name` per DNS name of a client certificate the
//! proxy verified on a TLS connection (SAN dNSNames, or the CN lacking any: the names the
//! node's own TLS listener would take).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dialbridge_sip::rsip::{self, Header};
use dialbridge_sip::transaction::{PeerAddr, TransportKind};

/// The header a trusted proxy names the original caller in.
pub const SOURCE_HEADER: &str = "X-Dialbridge-Source";

/// At most this many certificate names are taken from the header (as the TLS listener
/// takes at most this many from a certificate).
const MAX_NAMES: usize = 16;

/// The caller a request came from, as the node's rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The caller's address and port.
    pub addr: SocketAddr,
    /// The transport the caller used (to the proxy, when relayed).
    pub transport: TransportKind,
    /// The DNS names of the client certificate verified on the caller's TLS connection.
    pub names: Option<Arc<[String]>>,
    /// Whether a trusted proxy relayed it (for the log).
    pub relayed: bool,
}

impl Origin {
    /// A request that came straight from `peer`, with the names of the certificate
    /// verified on its connection.
    pub fn direct(peer: PeerAddr, names: Option<Arc<[String]>>) -> Origin {
        let names = names.filter(|_| peer.transport == TransportKind::Tls);
        Origin {
            addr: peer.addr,
            transport: peer.transport,
            names,
            relayed: false,
        }
    }
}

/// What [`rewrite`] made of a request's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// The request is the sender's own: no trusted proxy, or the proxy's own request.
    Direct(Origin),
    /// A trusted proxy relayed it for this caller.
    Relayed(Origin),
    /// The sender is a trusted proxy but its header is unreadable (`reason`): taken as
    /// the proxy's own request, so it is identified as nobody's trunk.
    Malformed {
        origin: Origin,
        reason: &'static str,
    },
    /// An untrusted sender carried the header: dropped, and the request is its own.
    Spoofed(Origin),
}

impl Rewrite {
    /// The origin the node's rules go by.
    pub fn into_origin(self) -> Origin {
        match self {
            Rewrite::Direct(o) | Rewrite::Relayed(o) | Rewrite::Spoofed(o) => o,
            Rewrite::Malformed { origin, .. } => origin,
        }
    }
}

/// Decides who sent `request` (received from `peer`, over a connection whose verified
/// certificate names `names`) and removes every `X-Dialbridge-Source` from it, so that
/// nothing later reads a header no trusted proxy vouched for.
pub fn rewrite(
    request: &mut rsip::Request,
    peer: PeerAddr,
    names: Option<Arc<[String]>>,
    trusted: &[IpAddr],
) -> Rewrite {
    let values = take_source_headers(request);
    let direct = Origin::direct(peer, names);
    if values.is_empty() {
        return Rewrite::Direct(direct);
    }
    let source = peer.addr.ip().to_canonical();
    if !trusted.iter().any(|t| t.to_canonical() == source) {
        return Rewrite::Spoofed(direct);
    }
    // Our proxy removes what callers sent and adds one: two mean a proxy in front of it
    // that we do not know, or a configuration that forgot to remove them.
    let [value] = values.as_slice() else {
        return Rewrite::Malformed {
            origin: direct,
            reason: "more than one header",
        };
    };
    match parse(value) {
        Ok(origin) => Rewrite::Relayed(origin),
        Err(reason) => Rewrite::Malformed {
            origin: direct,
            reason,
        },
    }
}

/// Reads one header value (see the module's grammar).
pub fn parse(value: &str) -> Result<Origin, &'static str> {
    let mut parts = value.trim().split(';');
    let head = parts.next().unwrap_or_default();
    let (transport, addr) = head
        .trim()
        .split_once(char::is_whitespace)
        .ok_or("no address after the transport")?;
    let transport = match transport.to_ascii_lowercase().as_str() {
        "udp" => TransportKind::Udp,
        "tcp" => TransportKind::Tcp,
        "tls" => TransportKind::Tls,
        _ => return Err("unknown transport"),
    };
    let addr: SocketAddr = addr.trim().parse().map_err(|_| "unreadable address")?;
    if addr.port() == 0 {
        return Err("port 0");
    }
    let mut names = Vec::new();
    for param in parts {
        let (key, name) = param.split_once('=').ok_or("parameter without a value")?;
        if !key.trim().eq_ignore_ascii_case("name") {
            return Err("unknown parameter");
        }
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let fits = |c: char| c.is_ascii_alphanumeric() || "-.*_".contains(c);
        if name.is_empty() || name.len() > 253 || !name.chars().all(fits) {
            return Err("unreadable certificate name");
        }
        if names.len() == MAX_NAMES {
            return Err("too many certificate names");
        }
        names.push(name);
    }
    if !names.is_empty() && transport != TransportKind::Tls {
        return Err("certificate names without TLS");
    }
    Ok(Origin {
        addr: SocketAddr::new(addr.ip().to_canonical(), addr.port()),
        transport,
        names: (!names.is_empty()).then(|| names.into()),
        relayed: true,
    })
}

/// Removes every `X-Dialbridge-Source` header, returning their values.
fn take_source_headers(request: &mut rsip::Request) -> Vec<String> {
    let is_source = |h: &Header| matches!(h, Header::Other(name, _) if name.trim().eq_ignore_ascii_case(SOURCE_HEADER));
    if !request.headers.iter().any(is_source) {
        return Vec::new();
    }
    let values = request
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Other(name, value) if name.trim().eq_ignore_ascii_case(SOURCE_HEADER) => {
                Some(value.clone())
            }
            _ => None,
        })
        .collect();
    request.headers.retain(|h| !is_source(h));
    values
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use dialbridge_sip::message;
    use dialbridge_sip::rsip::SipMessage;

    const PROXY: &str = "127.0.0.1";

    fn invite(extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE sip:+14255550100@127.0.1.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-proxy\r\n\
             Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bK-caller\r\n\
             From: <sip:+15550001111@127.0.0.10>;tag=a\r\n\
             To: <sip:+14255550100@127.0.1.1>\r\n\
             Call-ID: origin-test\r\n\
             CSeq: 1 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!("a request"),
        }
    }

    fn from(ip: &str, transport: TransportKind) -> PeerAddr {
        PeerAddr {
            transport,
            addr: SocketAddr::new(ip.parse().unwrap(), 5060),
            connection: None,
        }
    }

    fn trusted() -> Vec<IpAddr> {
        vec![PROXY.parse().unwrap()]
    }

    fn has_source_header(request: &rsip::Request) -> bool {
        message::encode(&request.clone().into())
            .windows(SOURCE_HEADER.len())
            .any(|w| w.eq_ignore_ascii_case(SOURCE_HEADER.as_bytes()))
    }

    #[test]
    fn a_trusted_proxy_names_the_caller_and_the_header_is_removed() {
        let mut request = invite("X-Dialbridge-Source: udp 127.0.0.10:5062\r\n");
        let rewrite = rewrite(
            &mut request,
            from(PROXY, TransportKind::Udp),
            None,
            &trusted(),
        );
        let want = Origin {
            addr: "127.0.0.10:5062".parse().unwrap(),
            transport: TransportKind::Udp,
            names: None,
            relayed: true,
        };
        assert_eq!(rewrite, Rewrite::Relayed(want));
        assert!(!has_source_header(&request));
    }

    #[test]
    fn over_tls_the_proxy_passes_the_verified_certificate_names() {
        let mut request = invite(
            "x-dialbridge-source: tls [::1]:40000;name=SBC1.Example.com.;name=sbc2.example.com\r\n",
        );
        let rewrite = rewrite(
            &mut request,
            from(PROXY, TransportKind::Udp),
            None,
            &trusted(),
        );
        let origin = rewrite.clone().into_origin();
        assert_eq!(origin.addr, "[::1]:40000".parse().unwrap());
        assert_eq!(origin.transport, TransportKind::Tls);
        let names: Vec<&str> = origin
            .names
            .iter()
            .flat_map(|n| n.iter())
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["sbc1.example.com", "sbc2.example.com"]);
    }

    #[test]
    fn an_untrusted_sender_is_itself_whatever_its_header_says() {
        // A caller claiming to be the Microsoft trunk, from a softphone's address.
        let mut request = invite("X-Dialbridge-Source: udp 127.0.0.10:5060\r\n");
        let peer = from("127.0.0.99", TransportKind::Udp);
        let rewrite = rewrite(&mut request, peer, None, &trusted());
        assert_eq!(rewrite, Rewrite::Spoofed(Origin::direct(peer, None)));
        assert_eq!(rewrite.clone().into_origin().addr, peer.addr);
        assert!(!has_source_header(&request));
        // With no trusted proxy configured, the proxy's address is no one special either.
        let mut request = invite("X-Dialbridge-Source: udp 127.0.0.10:5060\r\n");
        let proxy = from(PROXY, TransportKind::Udp);
        assert_eq!(
            super::rewrite(&mut request, proxy, None, &[]),
            Rewrite::Spoofed(Origin::direct(proxy, None))
        );
    }

    #[test]
    fn without_the_header_a_request_is_its_senders_own() {
        let mut request = invite("");
        let peer = from(PROXY, TransportKind::Udp);
        assert_eq!(
            rewrite(&mut request, peer, None, &trusted()),
            Rewrite::Direct(Origin::direct(peer, None))
        );
        // Names a TLS listener verified count only for TLS.
        let names: Arc<[String]> = vec!["sbc1.example.com".to_string()].into();
        let tls = from("127.0.0.20", TransportKind::Tls);
        let direct = Origin::direct(tls, Some(names.clone()));
        assert_eq!(direct.names, Some(names.clone()));
        assert_eq!(Origin::direct(peer, Some(names)).names, None);
    }

    #[test]
    fn a_malformed_header_from_the_proxy_is_ignored_never_trusted_in_part() {
        let peer = from(PROXY, TransportKind::Udp);
        let rows = [
            "X-Dialbridge-Source: \r\n",
            "X-Dialbridge-Source: udp\r\n",
            "X-Dialbridge-Source: sctp 127.0.0.10:5060\r\n",
            "X-Dialbridge-Source: udp 127.0.0.10\r\n",
            "X-Dialbridge-Source: udp 127.0.0.10:0\r\n",
            "X-Dialbridge-Source: udp 127.0.0.10:99999\r\n",
            "X-Dialbridge-Source: udp ::1:5060\r\n",
            "X-Dialbridge-Source: udp 127.0.0.10:5060;name=sbc1.example.com\r\n",
            "X-Dialbridge-Source: tls 127.0.0.10:5060;name=\r\n",
            "X-Dialbridge-Source: tls 127.0.0.10:5060;name=a b\r\n",
            "X-Dialbridge-Source: tls 127.0.0.10:5060;cn=sbc1.example.com\r\n",
            "X-Dialbridge-Source: tls 127.0.0.10:5060;name\r\n",
            "X-Dialbridge-Source: udp 127.0.0.10:5060\r\nX-Dialbridge-Source: udp 127.0.0.20:5060\r\n",
            "X-Dialbridge-Source: udp \u{e9}\u{e9}:5060\r\n",
        ];
        for row in rows {
            let mut request = invite(row);
            let rewrite = rewrite(&mut request, peer, None, &trusted());
            assert!(
                matches!(&rewrite, Rewrite::Malformed { origin, .. } if *origin == Origin::direct(peer, None)),
                "{row:?}: {rewrite:?}"
            );
            assert!(!has_source_header(&request), "{row:?}");
        }
        let many = (0..=MAX_NAMES)
            .map(|i| format!(";name=n{i}.example.com"))
            .collect::<String>();
        assert_eq!(
            parse(&format!("tls 127.0.0.1:5061{many}")),
            Err("too many certificate names")
        );
    }

    #[test]
    fn an_ipv4_mapped_proxy_address_is_the_proxy() {
        let mut request = invite("X-Dialbridge-Source: tcp 127.0.0.30:6000\r\n");
        let peer = from("::ffff:127.0.0.1", TransportKind::Tcp);
        let rewrite = rewrite(&mut request, peer, None, &trusted());
        assert!(
            matches!(rewrite, Rewrite::Relayed(ref o) if o.addr == "127.0.0.30:6000".parse().unwrap()),
            "{rewrite:?}"
        );
    }
}
