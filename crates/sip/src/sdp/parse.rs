//! RFC 4566 parser: the lines offer/answer needs, every other line skipped.

use std::net::IpAddr;

use super::{Direction, MAX_CRYPTO, MAX_FORMATS, MAX_LINES, MAX_MEDIA, MAX_SDP_LEN, SdpError};

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (empty when absent: some peers omit it and we have no use for it).
    pub session_name: String,
    /// Session-level `c=`, the default for every media section.
    pub connection: Option<Connection>,
    /// Session-level direction attribute, the default for every media section.
    pub direction: Option<Direction>,
    /// `t=` value, echoed in answers (RFC 3264 §6); `0 0` when absent.
    pub timing: String,
    /// `m=` sections in order.
    pub media: Vec<Media>,
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>` (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// username (`-` when none).
    pub username: String,
    /// sess-id, digits (kept as text: peers use numbers wider than 64 bits).
    pub session_id: String,
    /// sess-version, digits.
    pub session_version: String,
    /// unicast-address, as written (may be a host name).
    pub address: String,
}

/// `c=IN IP4|IP6 <address>`: only IP literals, since media needs an address now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The connection address (a multicast `/ttl` suffix is dropped).
    pub address: IpAddr,
}

impl Connection {
    /// `c=IN IP4 0.0.0.0`: RFC 2543 hold (RFC 3264 §8.4).
    pub fn is_hold(&self) -> bool {
        self.address.is_unspecified()
    }
}

/// Transport protocol of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// `RTP/AVP` (RFC 3551).
    RtpAvp,
    /// `RTP/SAVP` (RFC 3711, keyed by `a=crypto`).
    RtpSavp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVPF`.
    RtpSavpf,
    /// Anything else (`UDP/TLS/RTP/SAVPF`, `udp`, `TCP/MSRP`...).
    Other(String),
}

impl Proto {
    fn parse(s: &str) -> Proto {
        match s {
            "RTP/AVP" => Proto::RtpAvp,
            "RTP/SAVP" => Proto::RtpSavp,
            "RTP/AVPF" => Proto::RtpAvpf,
            "RTP/SAVPF" => Proto::RtpSavpf,
            other => Proto::Other(other.to_owned()),
        }
    }

    /// As written on the `m=` line.
    pub fn as_str(&self) -> &str {
        match self {
            Proto::RtpAvp => "RTP/AVP",
            Proto::RtpSavp => "RTP/SAVP",
            Proto::RtpAvpf => "RTP/AVPF",
            Proto::RtpSavpf => "RTP/SAVPF",
            Proto::Other(s) => s,
        }
    }

    /// Whether the formats are RTP payload types.
    pub fn is_rtp(&self) -> bool {
        !matches!(self, Proto::Other(_))
    }
}

/// One `m=` section with the attributes offer/answer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type: `audio`, `video`, ...
    pub kind: String,
    /// Port; 0 means the stream is rejected or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The `/<number of ports>` suffix, if any.
    pub port_count: Option<u16>,
    /// Transport.
    pub proto: Proto,
    /// Formats as written.
    pub formats: Vec<String>,
    /// The formats as payload types, when `proto` is RTP (same order).
    pub payload_types: Vec<u8>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in ms.
    pub ptime: Option<u32>,
    /// `a=maxptime` in ms.
    pub maxptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=crypto` lines (RFC 4568).
    pub crypto: Vec<Crypto>,
    /// `a=rtcp` (RFC 3605).
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
}

impl Media {
    /// The `a=rtpmap` of a payload type.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The `a=fmtp` parameters of a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, f)| f.as_str())
    }

    /// The first payload type mapped to `telephone-event/8000` (RFC 4733 §7.1.1).
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.telephone_event_at(8000)
    }

    /// The telephone-event to use beside an audio codec with RTP clock `clock_rate`,
    /// and its clock: RFC 4733 §2.1 wants the events on the audio's clock (an Opus
    /// softphone offers `telephone-event/48000`), so that one first, else
    /// `telephone-event/8000`, which most trunks offer whatever the codec.
    pub fn telephone_event_for(&self, clock_rate: u32) -> Option<(u8, u32)> {
        self.telephone_event_at(clock_rate)
            .map(|pt| (pt, clock_rate))
            .or_else(|| self.telephone_event_at(8000).map(|pt| (pt, 8000)))
    }

    fn telephone_event_at(&self, clock_rate: u32) -> Option<u8> {
        self.payload_types.iter().copied().find(|pt| {
            self.rtpmap(*pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == clock_rate
            })
        })
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type (0-127).
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (1 when not written).
    pub channels: u8,
}

/// `a=rtcp:<port> [IN IP4 <address>]` (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address when it is not the RTP one.
    pub address: Option<IpAddr>,
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]` (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag, echoed in the answer.
    pub tag: u32,
    /// Suite name, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// Key parameters (one or more, `;`-separated on the wire).
    pub key_params: Vec<KeyParam>,
    /// Session parameters (`UNENCRYPTED_SRTCP`, `KDR=...`), as written.
    pub session_params: Vec<String>,
}

/// One `inline:<key||salt>[|<lifetime>][|<MKI>:<length>]` key parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// Base64 of the concatenated master key and salt. A secret: never logged.
    pub key_salt: String,
    /// Lifetime as written (`2^20`, `1048576`).
    pub lifetime: Option<String>,
    /// MKI value and length, as written (`1:4`).
    pub mki: Option<String>,
}

impl std::fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyParam")
            .field("key_salt", &"***")
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

impl SessionDescription {
    /// Parses an SDP body received in a SIP message.
    pub fn parse_bytes(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge("body"));
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed {
            line: 0,
            reason: "not UTF-8",
        })?;
        Self::parse(text)
    }

    /// Parses SDP text (CRLF or bare LF line ends).
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge("body"));
        }
        let mut parser = Parser::default();
        let mut saw_version = false;
        for (index, raw) in text.split('\n').enumerate() {
            if index >= MAX_LINES {
                return Err(SdpError::TooLarge("lines"));
            }
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let fail = |reason| SdpError::Malformed {
                line: index + 1,
                reason,
            };
            let bytes = line.as_bytes();
            let (kind, value) = match bytes {
                [k, b'=', ..] if k.is_ascii_lowercase() => (*k, &line[2..]),
                _ => return Err(fail("not <type>=<value>")),
            };
            if !saw_version {
                if kind != b'v' || value != "0" {
                    return Err(fail("first line is not v=0"));
                }
                saw_version = true;
                continue;
            }
            parser.line(kind, value).map_err(fail)?;
        }
        if !saw_version {
            return Err(SdpError::Malformed {
                line: 0,
                reason: "empty",
            });
        }
        parser.finish()
    }

    /// Direction of a media section: its own attribute, else the session's, else
    /// sendrecv (RFC 3264 §5.1).
    pub fn direction_of(&self, media: &Media) -> Direction {
        media
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }

    /// Connection of a media section: its own `c=`, else the session's.
    pub fn connection_of(&self, media: &Media) -> Option<Connection> {
        media.connection.or(self.connection)
    }
}

#[derive(Default)]
struct Parser {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<Connection>,
    direction: Option<Direction>,
    timing: Option<String>,
    media: Vec<Media>,
}

type LineResult = Result<(), &'static str>;

impl Parser {
    fn line(&mut self, kind: u8, value: &str) -> LineResult {
        match kind {
            b'v' => Err("second v= line"),
            b'o' => {
                if self.origin.is_some() || !self.media.is_empty() {
                    return Err("o= repeated or after m=");
                }
                self.origin = Some(parse_origin(value)?);
                Ok(())
            }
            b's' if self.media.is_empty() => {
                self.session_name.get_or_insert_with(|| value.to_owned());
                Ok(())
            }
            b't' if self.media.is_empty() => {
                self.timing.get_or_insert_with(|| value.to_owned());
                Ok(())
            }
            b'c' => {
                let c = parse_connection(value)?;
                // Several media-level c= lines only occur with layered multicast: keep the first.
                match self.media.last_mut() {
                    Some(m) => {
                        m.connection.get_or_insert(c);
                    }
                    None => {
                        self.connection.get_or_insert(c);
                    }
                }
                Ok(())
            }
            b'm' => {
                if self.origin.is_none() {
                    return Err("m= before o=");
                }
                if self.media.len() >= MAX_MEDIA {
                    return Err("too many m= lines");
                }
                self.media.push(parse_media(value)?);
                Ok(())
            }
            b'a' => self.attribute(value),
            // b= i= u= e= p= k= z= r= and unknown types: nothing offer/answer needs.
            _ => Ok(()),
        }
    }

    fn attribute(&mut self, value: &str) -> LineResult {
        let (name, arg) = match value.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (value, None),
        };
        if let Some(d) = Direction::from_attribute(name) {
            match self.media.last_mut() {
                Some(m) => m.direction = Some(d),
                None => self.direction = Some(d),
            }
            return Ok(());
        }
        let Some(media) = self.media.last_mut() else {
            return Ok(());
        };
        match (name, arg) {
            ("rtpmap", Some(a)) if media.proto.is_rtp() => {
                let map = parse_rtpmap(a)?;
                if media.rtpmap(map.payload_type).is_some() {
                    return Err("duplicate a=rtpmap");
                }
                media.rtpmaps.push(map);
            }
            ("fmtp", Some(a)) if media.proto.is_rtp() => {
                let (pt, params) = a.split_once(' ').unwrap_or((a, ""));
                // An fmtp for a format we cannot read as a payload type is skipped, not fatal.
                if let Ok(pt) = pt.parse::<u8>() {
                    media.fmtps.push((pt, params.trim().to_owned()));
                }
            }
            ("ptime", Some(a)) => media.ptime = Some(parse_ms(a)?),
            ("maxptime", Some(a)) => media.maxptime = Some(parse_ms(a)?),
            ("crypto", Some(a)) => {
                if media.crypto.len() >= MAX_CRYPTO {
                    return Err("too many a=crypto lines");
                }
                media.crypto.push(parse_crypto(a)?);
            }
            ("rtcp", Some(a)) => media.rtcp = Some(parse_rtcp(a)?),
            ("rtcp-mux", None) => media.rtcp_mux = true,
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        let origin = self.origin.ok_or(SdpError::Malformed {
            line: 0,
            reason: "no o= line",
        })?;
        for m in &self.media {
            if m.port != 0 && m.proto.is_rtp() && m.connection.or(self.connection).is_none() {
                return Err(SdpError::Malformed {
                    line: 0,
                    reason: "media without c= line",
                });
            }
        }
        Ok(SessionDescription {
            origin,
            session_name: self.session_name.unwrap_or_default(),
            connection: self.connection,
            direction: self.direction,
            timing: self.timing.unwrap_or_else(|| "0 0".to_owned()),
            media: self.media,
        })
    }
}

fn parse_origin(value: &str) -> Result<Origin, &'static str> {
    let mut it = value.split_ascii_whitespace();
    let (Some(user), Some(id), Some(version), Some(net), Some(_addrtype), Some(addr), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err("o= needs six fields");
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || !digits(version) {
        return Err("o= sess-id or sess-version not numeric");
    }
    if net != "IN" {
        return Err("o= nettype is not IN");
    }
    Ok(Origin {
        username: user.to_owned(),
        session_id: id.to_owned(),
        session_version: version.to_owned(),
        address: addr.to_owned(),
    })
}

fn parse_connection(value: &str) -> Result<Connection, &'static str> {
    let mut it = value.split_ascii_whitespace();
    let (Some("IN"), Some(addrtype), Some(addr), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err("c= is not IN <addrtype> <address>");
    };
    // Multicast addresses carry /ttl[/count]: the address is what precedes them.
    let addr = addr.split('/').next().unwrap_or(addr);
    let address: IpAddr = addr
        .parse()
        .map_err(|_| "c= address is not an IP literal")?;
    match (addrtype, address) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(Connection { address }),
        _ => Err("c= address does not match its address type"),
    }
}

fn parse_media(value: &str) -> Result<Media, &'static str> {
    let mut it = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (it.next(), it.next(), it.next()) else {
        return Err("m= needs <media> <port> <proto> <fmt>...");
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(n.parse::<u16>().map_err(|_| "m= port count")?)),
        None => (port, None),
    };
    let port = parse_port(port, "m= port is not a number", "m= port above 65535")?;
    let proto = Proto::parse(proto);
    let mut formats = Vec::new();
    let mut payload_types = Vec::new();
    for f in it {
        if formats.len() >= MAX_FORMATS {
            return Err("too many formats on m= line");
        }
        if proto.is_rtp() {
            payload_types.push(parse_pt(f)?);
        }
        formats.push(f.to_owned());
    }
    if formats.is_empty() {
        return Err("m= line without formats");
    }
    Ok(Media {
        kind: kind.to_owned(),
        port,
        port_count,
        proto,
        formats,
        payload_types,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        direction: None,
        crypto: Vec::new(),
        rtcp: None,
        rtcp_mux: false,
    })
}

fn parse_pt(s: &str) -> Result<u8, &'static str> {
    match s.parse::<u8>() {
        Ok(pt) if pt <= 127 => Ok(pt),
        _ => Err("payload type is not 0-127"),
    }
}

fn parse_rtpmap(arg: &str) -> Result<RtpMap, &'static str> {
    let (pt, rest) = arg
        .split_once(' ')
        .ok_or("a=rtpmap needs <pt> <encoding>")?;
    let payload_type = parse_pt(pt)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts
        .next()
        .filter(|e| !e.is_empty())
        .ok_or("a=rtpmap encoding")?;
    let clock_rate = parts
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .filter(|r| *r > 0)
        .ok_or("a=rtpmap clock rate")?;
    let channels = match parts.next() {
        Some(c) => c
            .parse::<u8>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or("a=rtpmap channels")?,
        None => 1,
    };
    if parts.next().is_some() {
        return Err("a=rtpmap has too many fields");
    }
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_ms(arg: &str) -> Result<u32, &'static str> {
    // Some phones write "20.0"; the fraction is meaningless for audio frames.
    let whole = arg.trim().split('.').next().unwrap_or("");
    match whole.parse::<u32>() {
        Ok(ms) if (1..=1000).contains(&ms) => Ok(ms),
        _ => Err("a=ptime/maxptime is not 1-1000 ms"),
    }
}

fn parse_rtcp(arg: &str) -> Result<Rtcp, &'static str> {
    let mut it = arg.split_ascii_whitespace();
    let port = it
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("a=rtcp port")?;
    let address = match (it.next(), it.next(), it.next()) {
        (None, _, _) => None,
        (Some(_), Some(t), Some(a)) => Some(parse_connection(&format!("IN {t} {a}"))?.address),
        _ => return Err("a=rtcp address"),
    };
    Ok(Rtcp { port, address })
}

fn parse_crypto(arg: &str) -> Result<Crypto, &'static str> {
    let mut it = arg.split_ascii_whitespace();
    let (Some(tag), Some(suite), Some(keys)) = (it.next(), it.next(), it.next()) else {
        return Err("a=crypto needs <tag> <suite> <key-params>");
    };
    let tag = tag
        .parse::<u32>()
        .ok()
        .filter(|t| *t < 1_000_000_000)
        .ok_or("a=crypto tag")?;
    let mut key_params = Vec::new();
    for kp in keys.split(';') {
        if key_params.len() >= MAX_CRYPTO {
            return Err("a=crypto has too many keys");
        }
        key_params.push(parse_key_param(kp)?);
    }
    let session_params: Vec<String> = it.take(MAX_CRYPTO).map(str::to_owned).collect();
    Ok(Crypto {
        tag,
        suite: suite.to_owned(),
        key_params,
        session_params,
    })
}

fn parse_key_param(kp: &str) -> Result<KeyParam, &'static str> {
    let info = kp
        .strip_prefix("inline:")
        .ok_or("a=crypto key method is not inline")?;
    let mut parts = info.split('|');
    let key_salt = parts.next().unwrap_or("");
    let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    if key_salt.is_empty() || !key_salt.bytes().all(base64) {
        return Err("a=crypto key is not base64");
    }
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        // The MKI is the one with a colon (RFC 4568 §9.1); the lifetime comes first.
        if part.contains(':') && mki.is_none() {
            mki = Some(part.to_owned());
        } else if lifetime.is_none() && mki.is_none() && !part.is_empty() {
            lifetime = Some(part.to_owned());
        } else {
            return Err("a=crypto key parameter");
        }
    }
    Ok(KeyParam {
        key_salt: key_salt.to_owned(),
        lifetime,
        mki,
    })
}

/// A port: digits that fit 16 bits. The two phrases say which rule was broken, since a
/// reason phrase is all a peer learns of why its offer failed.
fn parse_port(
    text: &str,
    not_a_number: &'static str,
    too_large: &'static str,
) -> Result<u16, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number);
    }
    text.parse::<u16>().map_err(|_| too_large)
}
