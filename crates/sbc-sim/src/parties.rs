//! Who calls whom, and from where: the calling side's invite session
//! (`dialbridge_sip::session::UacSession`) a call of sbc-sim stands on, so sbc-sim sends
//! what the bridge's own dial-outs and node legs will, and sipp stays the independent
//! peer in the tests.

use std::net::SocketAddr;

use dialbridge_sip::dialog::{Caller, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::uri::{NameAddr, Uri};
use dialbridge_sip::rsip::{self, Header};
use dialbridge_sip::sdp::LocalMedia;
use dialbridge_sip::session::UacSession;

use crate::Error;
use crate::ua::Transport;

/// Who calls whom, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// The number or user in From (`+14155550100`, `alice`).
    pub from_user: String,
    /// The host in From (our address, or the softphone realm); IPv6 in brackets.
    pub from_host: String,
    /// The dialled number.
    pub to: String,
    /// The bridge, `host:port`.
    pub bridge: String,
    /// Our signaling address, for Via and Contact.
    pub local: SocketAddr,
    /// The transport.
    pub transport: Transport,
}

impl Parties {
    /// The session of one call between these parties offering `media`: a fresh Call-ID
    /// and From tag, the dialled number at the bridge as Request-URI and To.
    pub fn session(&self, media: LocalMedia) -> Result<UacSession, Error> {
        let request_uri = format!("sip:{}@{}", self.to, self.bridge);
        let uri = Uri::parse(&request_uri).map_err(|e| Error::invalid("bridge", e.to_string()))?;
        let from = NameAddr::parse(&format!("<sip:{}@{}>", self.from_user, self.from_host))
            .map_err(|e| Error::invalid("from", e.to_string()))?;
        let to = NameAddr::parse(&format!("<{request_uri}>"))
            .map_err(|e| Error::invalid("to", e.to_string()))?;
        let transport = match self.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
            Transport::Tls => rsip::Transport::Tls,
        };
        let local = LocalAddress::new(&self.from_user, self.local, transport);
        let caller = Caller::new(from, to, uri, local, "sbc-sim");
        Ok(UacSession::new(
            caller,
            media,
            SessionTimerConfig::default(),
        ))
    }
}

/// The extra headers of each INVITE: `authorization` (header name and value) when
/// answering a challenge, then what we take and who we are.
pub fn invite_headers(authorization: Option<(&str, &str)>) -> Vec<Header> {
    let mut extra = Vec::with_capacity(4);
    if let Some((name, value)) = authorization {
        extra.push(Header::Other(name.into(), value.into()));
    }
    extra.push(Header::Other("Allow".into(), UacSession::ALLOW.into()));
    extra.push(Header::Other("Supported".into(), "timer".into()));
    extra.push(Header::Other("User-Agent".into(), "sbc-sim".into()));
    extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialbridge_sip::message::fields;

    fn parties() -> Parties {
        Parties {
            from_user: "+14155550100".into(),
            from_host: "127.0.0.20".into(),
            to: "+33170000100".into(),
            bridge: "127.0.0.1:5060".into(),
            local: "127.0.0.20:40000".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    fn media(ip: &str) -> LocalMedia {
        LocalMedia::g711(ip.parse().unwrap(), 30000, 1)
    }

    #[test]
    fn the_invite_dials_the_number_at_the_bridge_with_our_headers() {
        let mut s = parties().session(media("127.0.0.20")).unwrap();
        let invite = s.invite(invite_headers(Some(("Authorization", "Digest x=1"))));
        assert_eq!(invite.uri.to_string(), "sip:+33170000100@127.0.0.1:5060");
        assert_eq!(
            s.caller().request_uri().to_string(),
            invite.uri.to_string(),
            "the digest uri is the Request-URI"
        );
        assert_eq!(fields::cseq(&invite.headers).unwrap().seq, 1);
        assert!(fields::call_id(&invite.headers).is_some_and(|c| c.ends_with("@sbc-sim")));
        let text = invite.to_string();
        for line in [
            "Authorization: Digest x=1\r\n",
            "Allow: INVITE, ACK, CANCEL, BYE, INFO, OPTIONS, UPDATE\r\n",
            "Supported: timer\r\n",
            "User-Agent: sbc-sim\r\n",
            "Content-Type: application/sdp\r\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(String::from_utf8_lossy(&invite.body).contains("m=audio 30000"));
    }

    #[test]
    fn an_ipv6_caller_names_itself_in_brackets() {
        let mut p = parties();
        p.from_host = "[::1]".into();
        p.local = "[::1]:40000".parse().unwrap();
        p.bridge = "[::1]:5060".into();
        let mut s = p.session(media("::1")).unwrap();
        let invite = s.invite(invite_headers(None));
        assert_eq!(invite.uri.to_string(), "sip:+33170000100@[::1]:5060");
        assert_eq!(s.caller().request_uri().to_string(), invite.uri.to_string());
        assert!(
            invite
                .to_string()
                .contains("Contact: <sip:+14155550100@[::1]:40000>"),
            "{invite}"
        );
        let via = fields::top_via(&invite.headers).unwrap();
        assert_eq!((via.host, via.port), ("::1", Some(40000)));
    }
}
