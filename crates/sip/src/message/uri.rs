//! SIP, SIPS and tel URIs and name-addr header values, read by our own parser (RFC 3261
//! §19.1, §20.10, §25.1; RFC 3966; RFC 5118's IPv6 references).
//!
//! rsip 0.4 cannot read an IPv6 reference (`sip:alice@[fd00::2]`), a quoted header
//! parameter (RFC 5626's `+sip.instance="<urn:uuid:…>"`, sent by Linphone, Zoiper and
//! Bria), a `;` in a user part or a `tel:` URI, and it prints IPv6 hosts without their
//! brackets. So every URI and name-addr the stack acts on is read here, and an
//! [`rsip::Uri`] is only a vessel that prints our text back ([`Uri::to_rsip`]).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Why a URI or name-addr could not be read. [`UriError::UnsupportedScheme`] as a
/// Request-URI is answered 416 (RFC 3261 §8.2.2.1); everything else 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// Nothing where a URI should be.
    #[error("empty URI")]
    Empty,
    /// A well-formed URI of a scheme we do not act on (`http:`, `urn:`...).
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    /// Not a URI: the phrase says which part is wrong.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A URI, by scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri),
    /// `tel:` (RFC 3966), as trunks send for PSTN numbers.
    Tel(TelUri),
    /// Any other absoluteURI (`urn:`, `mailto:`, `http:`), kept as written. A From or To
    /// may carry one; as a Request-URI or a Contact it is refused.
    Other(String),
}

/// A `sip:` or `sips:` URI. Escapes (`%40`) are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, if any.
    pub user: Option<String>,
    /// The password of the userinfo (deprecated by RFC 3261, still legal).
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, if written.
    pub port: Option<u16>,
    /// The uri-parameters, in order.
    pub params: Vec<Param>,
    /// The headers part after `?`, as written.
    pub headers: Option<String>,
}

/// A URI's host: a name or an IP literal (IPv6 printed in brackets, RFC 5118 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A domain name, as written.
    Name(String),
    /// An IPv4 address or an IPv6 reference.
    Ip(IpAddr),
}

/// A `tel:` URI (RFC 3966 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The telephone-subscriber: `+` and digits (visual separators kept), or a local
    /// number.
    pub number: String,
    /// Parameters (`phone-context`, `ext`, `isub`...), in order.
    pub params: Vec<Param>,
}

/// One `;name[=value]` parameter. Values are as written: a quoted header parameter
/// keeps its quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name, as written.
    pub name: String,
    /// The value, if any.
    pub value: Option<String>,
}

/// A From, To, Contact, Route or Record-Route value (RFC 3261 §20.10, §25.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (a quoted string keeps its quotes).
    pub display_name: Option<String>,
    /// The address.
    pub uri: Uri,
    /// The header parameters (`tag`, `expires`, `+sip.instance`...), in order.
    pub params: Vec<Param>,
}

impl Uri {
    /// Reads one URI (no surrounding `<>`).
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim_matches([' ', '\t']);
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let (scheme, rest) = text
            .split_once(':')
            .ok_or(UriError::Malformed("URI without scheme"))?;
        if !is_scheme(scheme) {
            return Err(UriError::Malformed("bad URI scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse(rest).map(Uri::Tel)
        } else if rest.is_empty() || rest.bytes().any(|b| b <= b' ' || b"<>\"".contains(&b)) {
            Err(UriError::Malformed("bad URI"))
        } else {
            Ok(Uri::Other(text.to_owned()))
        }
    }

    /// Reads a Request-URI: like [`Uri::parse`], but a well-formed URI of another scheme
    /// is [`UriError::UnsupportedScheme`] (416).
    pub fn parse_request_uri(text: &str) -> Result<Self, UriError> {
        match Self::parse(text)? {
            Uri::Other(_) => Err(UriError::UnsupportedScheme),
            uri => Ok(uri),
        }
    }

    /// The user part of a SIP URI, or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(sip) => sip.user.as_deref(),
            Uri::Tel(tel) => Some(&tel.number),
            Uri::Other(_) => None,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(sip) => Some(sip),
            _ => None,
        }
    }

    /// The value of a uri-parameter (`Some(None)` when present without a value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        let params = match self {
            Uri::Sip(sip) => &sip.params,
            Uri::Tel(tel) => &tel.params,
            Uri::Other(_) => return None,
        };
        find_param(params, name)
    }

    /// The same URI as an [`rsip::Uri`] that prints exactly our text (for rsip's
    /// Request-URI slot). Read it back with [`Uri::parse`], never through rsip's fields.
    pub fn to_rsip(&self) -> rsip::Uri {
        rsip_vessel(&self.to_string())
    }
}

/// An [`rsip::Uri`] that prints `text` as it is (rsip keeps a domain unchecked).
pub(crate) fn rsip_vessel(text: &str) -> rsip::Uri {
    rsip::Uri {
        scheme: None,
        auth: None,
        host_with_port: rsip::Host::Domain(text.into()).into(),
        params: Vec::new(),
        headers: Vec::new(),
    }
}

impl SipUri {
    /// A plain `sip:[user@]host[:port]` URI.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        Self {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: None,
        }
    }

    /// Reads what follows `sip:` or `sips:`.
    fn parse(rest: &str, secure: bool) -> Result<Self, UriError> {
        // The userinfo ends at the first `@`: an `@` inside a user or password must be
        // escaped (§25.1), while `;`, `?` and `/` may appear unescaped (RFC 4475 semiuri).
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((userinfo, hostpart)) => (Some(userinfo), hostpart),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if user.is_empty() || !user.bytes().all(is_user_char) {
                    return Err(UriError::Malformed("bad user part in URI"));
                }
                if password.is_some_and(|p| !p.bytes().all(is_password_char)) {
                    return Err(UriError::Malformed("bad password in URI"));
                }
                (Some(user.to_owned()), password.map(str::to_owned))
            }
        };
        let (hostport, params_and_headers) = split_host_end(hostpart);
        let (host, port) = parse_hostport(hostport)?;
        let (params, headers) = match params_and_headers.split_once('?') {
            Some((p, h)) => (p, Some(h)),
            None => (params_and_headers, None),
        };
        let params = parse_uri_params(params)?;
        if headers.is_some_and(|h| h.is_empty() || !h.bytes().all(is_header_char)) {
            return Err(UriError::Malformed("bad headers in URI"));
        }
        Ok(Self {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers: headers.map(str::to_owned),
        })
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ip(ip) => Some(ip),
            Host::Name(_) => None,
        }
    }
}

impl TelUri {
    fn parse(rest: &str) -> Result<Self, UriError> {
        let (number, params) = match rest.split_once(';') {
            Some((n, p)) => (n, Some(p)),
            None => (rest, None),
        };
        let global = number.strip_prefix('+');
        let digits_ok = match global {
            // global-number-digits: "+" *phonedigit DIGIT *phonedigit
            Some(d) => d.bytes().all(is_phonedigit) && d.bytes().any(|b| b.is_ascii_digit()),
            // local-number-digits: hex digits, `*`, `#` and separators
            None => {
                number
                    .bytes()
                    .all(|b| is_phonedigit(b) || b.is_ascii_hexdigit() || b == b'*' || b == b'#')
                    && number
                        .bytes()
                        .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            }
        };
        if !digits_ok {
            return Err(UriError::Malformed("bad tel: number"));
        }
        let params = match params {
            Some(p) => parse_uri_params(&format!(";{p}"))?,
            None => Vec::new(),
        };
        Ok(Self {
            number: number.to_owned(),
            params,
        })
    }
}

impl NameAddr {
    /// Reads a name-addr or addr-spec with its header parameters. Without `<>`, every `;`
    /// parameter is the header's (§20.10).
    pub fn parse(value: &str) -> Result<Self, UriError> {
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(UriError::Empty);
        }
        let (display_name, rest) = if value.starts_with('"') {
            let end = quoted_end(value).ok_or(UriError::Malformed("unterminated display name"))?;
            let (name, rest) = value.split_at(end);
            let rest = rest.trim_start_matches([' ', '\t']);
            if !rest.starts_with('<') {
                return Err(UriError::Malformed("display name without <URI>"));
            }
            (Some(name.to_owned()), rest)
        } else if let Some(open) = value.find('<') {
            let (name, rest) = value.split_at(open);
            let name = name.trim_matches([' ', '\t']);
            if name
                .bytes()
                .any(|b| b.is_ascii_control() || b == b'"' || b == b'>')
            {
                return Err(UriError::Malformed("bad display name"));
            }
            ((!name.is_empty()).then(|| name.to_owned()), rest)
        } else {
            (None, value)
        };
        let (uri_text, params) = match rest.strip_prefix('<') {
            Some(inner) => inner
                .split_once('>')
                .ok_or(UriError::Malformed("missing >"))?,
            None => match rest.find(';') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            },
        };
        if uri_text.is_empty() {
            return Err(UriError::Empty);
        }
        Ok(Self {
            display_name,
            uri: Uri::parse(uri_text)?,
            params: parse_header_params(params)?,
        })
    }

    /// Every value of a header that may list several, split at commas outside quotes
    /// and `<>` (Route, Record-Route, Contact).
    pub fn parse_list(value: &str) -> Result<Vec<Self>, UriError> {
        split_list(value).map(Self::parse).collect()
    }

    /// A header parameter (`Some(None)` when present without a value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter (§19.3).
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// Sets (or replaces) the `tag` parameter.
    pub fn set_tag(&mut self, tag: &str) {
        self.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
        self.params.push(Param {
            name: "tag".to_owned(),
            value: Some(tag.to_owned()),
        });
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(sip) => sip.fmt(f),
            Uri::Tel(tel) => {
                write!(f, "tel:{}", tel.number)?;
                write_params(f, &tel.params)
            }
            Uri::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)?;
        if let Some(headers) = &self.headers {
            write!(f, "?{headers}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{name} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for param in params {
        match &param.value {
            Some(value) => write!(f, ";{}={value}", param.name)?,
            None => write!(f, ";{}", param.name)?,
        }
    }
    Ok(())
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// Splits `host[:port]` from what follows it (`;params?headers`).
fn split_host_end(hostpart: &str) -> (&str, &str) {
    // An IPv6 reference holds colons, so look for the end only after its `]`.
    let search_from = if hostpart.starts_with('[') {
        hostpart.find(']').unwrap_or(0)
    } else {
        0
    };
    let end = hostpart
        .get(search_from..)
        .and_then(|tail| tail.find([';', '?']))
        .map_or(hostpart.len(), |i| i + search_from);
    hostpart.split_at(end)
}

/// `host [":" port]` with IPv6 references (RFC 5118 §4.1–4.4).
fn parse_hostport(hostport: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or(UriError::Malformed("unterminated IPv6 reference"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(UriError::Malformed("bad host in URI"))?,
            ),
        };
        (Host::Ip(IpAddr::V6(parse_ipv6(addr)?)), port)
    } else {
        let (name, port) = match hostport.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (hostport, None),
        };
        let host = if let Ok(ip) = name.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if is_hostname(name) {
            Host::Name(name.to_owned())
        } else {
            return Err(UriError::Malformed("bad host in URI"));
        };
        (host, port)
    };
    let port = match port {
        None => None,
        // 1*DIGIT that fits a port: `70000` and `` are not ports.
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(
            p.parse()
                .map_err(|_| UriError::Malformed("bad port in URI"))?,
        ),
        Some(_) => return Err(UriError::Malformed("bad port in URI")),
    };
    Ok((host, port))
}

/// An IPv6 address; RFC 5118 §4.10 asks us to be robust to the `:::` that a bug in RFC
/// 3261's ABNF allows before an embedded IPv4 address.
fn parse_ipv6(text: &str) -> Result<Ipv6Addr, UriError> {
    const BAD: UriError = UriError::Malformed("bad IPv6 reference");
    if let Ok(ip) = text.parse() {
        return Ok(ip);
    }
    if text.contains(":::") && text.contains('.') {
        return text.replacen(":::", "::", 1).parse().map_err(|_| BAD);
    }
    Err(BAD)
}

/// `*( ";" name [ "=" value ] )` of a URI: no spaces, no quotes.
fn parse_uri_params(text: &str) -> Result<Vec<Param>, UriError> {
    const BAD: UriError = UriError::Malformed("bad URI parameter");
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let text = text.strip_prefix(';').ok_or(BAD)?;
    text.split(';')
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || !name.bytes().all(is_param_char) {
                return Err(BAD);
            }
            if value.is_some_and(|v| v.is_empty() || !v.bytes().all(is_param_char)) {
                return Err(BAD);
            }
            Ok(Param {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            })
        })
        .collect()
}

/// `*( SEMI generic-param )` of a header (§25.1): token names, values that are a token,
/// a host or a quoted string, optional whitespace around the separators.
fn parse_header_params(text: &str) -> Result<Vec<Param>, UriError> {
    const BAD: UriError = UriError::Malformed("bad header parameter");
    let mut params = Vec::new();
    let mut rest = text.trim_start_matches([' ', '\t']);
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or(BAD)?
            .trim_start_matches([' ', '\t']);
        let name_len = rest.bytes().take_while(|b| is_token(*b)).count();
        let (name, after) = rest.split_at(name_len);
        if name.is_empty() {
            return Err(BAD);
        }
        rest = after.trim_start_matches([' ', '\t']);
        let mut value = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start_matches([' ', '\t']);
            let len = if after_eq.starts_with('"') {
                quoted_end(after_eq).ok_or(BAD)?
            } else {
                after_eq
                    .bytes()
                    .take_while(|b| is_token(*b) || matches!(b, b'[' | b']' | b':'))
                    .count()
            };
            let (v, after) = after_eq.split_at(len);
            if v.is_empty() {
                return Err(BAD);
            }
            value = Some(v.to_owned());
            rest = after.trim_start_matches([' ', '\t']);
        }
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
    Ok(params)
}

/// The index just past the closing quote of the quoted string `text` starts with.
fn quoted_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Splits a header value at the commas that separate values (none inside quotes or <>).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut in_angle) = (0, false);
    for (i, c) in unquoted(value) {
        match c {
            '<' => in_angle = true,
            '>' => in_angle = false,
            ',' if !in_angle => {
                parts.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts.into_iter()
}

/// The characters of a header value that are not inside a quoted string (§25.1
/// quoted-string, with its quoted-pairs), with their byte offsets. The quotes
/// themselves are left out too.
pub(crate) fn unquoted(value: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut in_quote, mut escaped) = (false, false);
    value.char_indices().filter(move |&(_, c)| {
        if in_quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
            return false;
        }
        if c == '"' {
            in_quote = true;
            return false;
        }
        true
    })
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// RFC 3261 §25.1 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// `user`: unreserved, escaped, user-unreserved. `#` is not legal unescaped, but PSTN
/// gateways send it in user parts (`sip:*9#@host`), so we take it rather than refuse a
/// call over it.
fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"%&=+$,;?/#".contains(&b)
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || b"%&=+$,".contains(&b)
}

/// `paramchar`: param-unreserved, unreserved, escaped.
fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || b"%[]/:&+$".contains(&b)
}

/// `hname` / `hvalue` characters and the `=`/`&` between them.
fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || b"%[]/?:+$=&@".contains(&b)
}

/// RFC 3966 `phonedigit`: a digit or a visual separator.
fn is_phonedigit(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')')
}

fn is_token(b: u8) -> bool {
    super::normalize::is_token(b)
}

#[cfg(test)]
mod tests;
