//! Transaction identifiers and how a message maps to one (RFC 3261 §17.1.3, §17.2.3).

use crate::Error;
use crate::message::fields;
use rsip::{Method, Request, Response};
use std::hash::{Hash, Hasher};

/// A server transaction: top Via branch + sent-by + method, with ACK folded into INVITE
/// (§17.2.3). CANCEL keeps its own method, so it gets its own transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    branch: String,
    /// sent-by host, lowercased (hosts compare case-insensitively).
    host: String,
    port: Option<u16>,
    method: Method,
}

/// A client transaction: the branch we put in our top Via + the CSeq method (§17.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    branch: String,
    method: Method,
}

/// Either kind, for events that can concern both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// A server transaction (a request we received).
    Server(ServerKey),
    /// A client transaction (a request we sent).
    Client(ClientKey),
}

impl ServerKey {
    /// The key of the transaction `request` belongs to. An ACK maps to its INVITE.
    ///
    /// Fails with [`Error::BadHeader`] when the top Via, its branch or the CSeq is missing
    /// or unparsable, or when the CSeq method disagrees with the request method.
    /// Reads the header text with [`fields`] (no rsip typed parsing: it allocates and
    /// cannot read IPv6 sent-by).
    pub fn from_request(request: &Request) -> Result<Self, Error> {
        let via = fields::top_via(&request.headers).map_err(|_| Error::BadHeader("Via"))?;
        let branch = via.branch.filter(|b| !b.is_empty());
        let branch = branch.ok_or(Error::BadHeader("Via branch"))?;
        let cseq = fields::cseq(&request.headers).map_err(|_| Error::BadHeader("CSeq"))?;
        if cseq.method.parse::<Method>().ok() != Some(request.method) {
            return Err(Error::BadHeader("CSeq"));
        }
        Ok(Self {
            branch: branch.to_owned(),
            host: via.host.to_ascii_lowercase(),
            port: via.port,
            method: match request.method {
                Method::Ack => Method::Invite,
                other => other,
            },
        })
    }

    /// The same transaction identity with another method: the INVITE a CANCEL targets (§9.2).
    pub fn with_method(&self, method: Method) -> Self {
        Self {
            method,
            ..self.clone()
        }
    }

    /// The method of the transaction (INVITE for an ACK).
    pub fn method(&self) -> Method {
        self.method
    }

    /// The branch from the top Via.
    pub fn branch(&self) -> &str {
        &self.branch
    }
}

impl ClientKey {
    /// The key for a request we are about to send: our top Via branch + the method.
    pub fn from_request(request: &Request) -> Result<Self, Error> {
        let via = fields::top_via(&request.headers).map_err(|_| Error::BadHeader("Via"))?;
        let branch = via.branch.filter(|b| !b.is_empty());
        let branch = branch.ok_or(Error::BadHeader("Via branch"))?;
        Ok(Self {
            branch: branch.to_owned(),
            method: request.method,
        })
    }

    /// The key of the client transaction a response belongs to (§17.1.3).
    pub fn from_response(response: &Response) -> Result<Self, Error> {
        let via = fields::top_via(&response.headers).map_err(|_| Error::BadHeader("Via"))?;
        let branch = via.branch.filter(|b| !b.is_empty());
        let branch = branch.ok_or(Error::BadHeader("Via branch"))?;
        let cseq = fields::cseq(&response.headers).map_err(|_| Error::BadHeader("CSeq"))?;
        let method = cseq
            .method
            .parse::<Method>()
            .map_err(|_| Error::BadHeader("CSeq"))?;
        Ok(Self {
            branch: branch.to_owned(),
            method,
        })
    }

    /// The method of the request.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The branch of our top Via.
    pub fn branch(&self) -> &str {
        &self.branch
    }
}

// rsip's Method has no Hash; its discriminant does.
impl Hash for ServerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        self.host.hash(state);
        self.port.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

impl Hash for ClientKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, via: &str, cseq: &str) -> Request {
        let raw = format!(
            "{method} sip:bridge@example.com SIP/2.0\r\n{via}\
             From: <sip:a@example.com>;tag=f\r\nTo: <sip:bridge@example.com>\r\n\
             Call-ID: c1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).unwrap()
    }

    const VIA: &str = "Via: SIP/2.0/UDP Pc.Example.com:5060;branch=z9hG4bKabc\r\n";

    #[test]
    fn ack_matches_its_invite_and_cancel_does_not() {
        let invite = ServerKey::from_request(&request("INVITE", VIA, "1 INVITE")).unwrap();
        let ack = ServerKey::from_request(&request("ACK", VIA, "1 ACK")).unwrap();
        let cancel = ServerKey::from_request(&request("CANCEL", VIA, "1 CANCEL")).unwrap();
        assert_eq!(invite, ack);
        assert_ne!(invite, cancel);
        assert_eq!(cancel.with_method(Method::Invite), invite);
    }

    #[test]
    fn sent_by_is_part_of_the_key() {
        let a = ServerKey::from_request(&request("INVITE", VIA, "1 INVITE")).unwrap();
        let other = "Via: SIP/2.0/UDP other.example.com;branch=z9hG4bKabc\r\n";
        let b = ServerKey::from_request(&request("INVITE", other, "1 INVITE")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn ipv6_sent_by_and_host_case() {
        let v6 = "Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKabc\r\n";
        let a = ServerKey::from_request(&request("INVITE", v6, "1 INVITE")).unwrap();
        let b = ServerKey::from_request(&request("ACK", v6, "1 ACK")).unwrap();
        assert_eq!(a, b);
        let lower = "Via: SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bKabc\r\n";
        let c = ServerKey::from_request(&request("INVITE", lower, "1 INVITE")).unwrap();
        let d = ServerKey::from_request(&request("INVITE", VIA, "1 INVITE")).unwrap();
        assert_eq!(c, d);
    }

    #[test]
    fn odd_requests_are_errors_not_panics() {
        let no_branch = "Via: SIP/2.0/UDP pc.example.com\r\n";
        assert!(matches!(
            ServerKey::from_request(&request("INVITE", no_branch, "1 INVITE")),
            Err(Error::BadHeader("Via branch"))
        ));
        assert!(matches!(
            ServerKey::from_request(&request("INVITE", "", "1 INVITE")),
            Err(Error::BadHeader("Via"))
        ));
        assert!(matches!(
            ServerKey::from_request(&request("INVITE", VIA, "1 BYE")),
            Err(Error::BadHeader("CSeq"))
        ));
        assert!(matches!(
            ServerKey::from_request(&request("INVITE", VIA, "x INVITE")),
            Err(Error::BadHeader("CSeq"))
        ));
    }
}
