//! SDP text we send: one session, `c=` at session level, our m-lines.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::parse::Media;
use super::{Codec, LocalMedia};

/// One m-line of ours and its attributes, ready to print.
#[derive(Debug, Clone)]
pub(super) struct MediaLine {
    kind: String,
    port: u16,
    proto: String,
    formats: Vec<String>,
    attributes: Vec<String>,
}

impl MediaLine {
    pub(super) fn audio(port: u16, proto: &str) -> Self {
        MediaLine {
            kind: "audio".to_owned(),
            port,
            proto: proto.to_owned(),
            formats: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// RFC 3264 §6: a refused stream is answered with its media type, port 0 and
    /// at least one of the offered formats.
    pub(super) fn rejected(offered: &Media) -> Self {
        MediaLine {
            kind: offered.kind.clone(),
            port: 0,
            proto: offered.proto.as_str().to_owned(),
            formats: offered.formats.iter().take(1).cloned().collect(),
            attributes: Vec::new(),
        }
    }

    pub(super) fn add_codec(&mut self, pt: u8, codec: &Codec) {
        self.formats.push(pt.to_string());
        let rtpmap = if codec.channels > 1 {
            format!(
                "rtpmap:{pt} {}/{}/{}",
                codec.name, codec.clock_rate, codec.channels
            )
        } else {
            format!("rtpmap:{pt} {}/{}", codec.name, codec.clock_rate)
        };
        self.attributes.push(rtpmap);
        if let Some(fmtp) = codec.fmtp {
            self.attributes.push(format!("fmtp:{pt} {fmtp}"));
        }
    }

    pub(super) fn add_telephone_event(&mut self, pt: u8, clock_rate: u32, events: &str) {
        self.formats.push(pt.to_string());
        self.attributes
            .push(format!("rtpmap:{pt} telephone-event/{clock_rate}"));
        self.attributes.push(format!("fmtp:{pt} {events}"));
    }

    pub(super) fn attribute(&mut self, attribute: String) {
        self.attributes.push(attribute);
    }
}

/// The whole SDP body, CRLF line ends (RFC 4566 §5).
pub(super) fn render(
    local: &LocalMedia,
    version: u64,
    timing: &str,
    lines: &[MediaLine],
) -> String {
    let addr = |a: IpAddr| match a {
        IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    };
    let mut out = String::with_capacity(256 + 128 * lines.len());
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        out,
        "v=0\r\no=dialbridge {} {} {}\r\ns=dialbridge\r\nc={}\r\nt={}\r\n",
        local.session_id,
        version,
        addr(local.address),
        addr(local.address),
        timing
    );
    for line in lines {
        let _ = write!(out, "m={} {} {}", line.kind, line.port, line.proto);
        for f in &line.formats {
            let _ = write!(out, " {f}");
        }
        out.push_str("\r\n");
        for a in &line.attributes {
            let _ = write!(out, "a={a}\r\n");
        }
    }
    out
}

/// `sdp` with every SDES key (`inline:<base64>`, RFC 4568) replaced by `***`, for
/// logs: an SDP body with `a=crypto` carries SRTP master keys.
pub fn redact_sdes_keys(sdp: &str) -> Cow<'_, str> {
    const MARK: &str = "inline:";
    if !sdp.contains(MARK) {
        return Cow::Borrowed(sdp);
    }
    let mut out = String::with_capacity(sdp.len());
    let mut rest = sdp;
    while let Some(at) = rest.find(MARK) {
        let (head, tail) = rest.split_at(at + MARK.len());
        out.push_str(head);
        out.push_str("***");
        let end = tail
            .find(|c: char| c == '|' || c == ';' || c.is_ascii_whitespace())
            .unwrap_or(tail.len());
        rest = tail.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    Cow::Owned(out)
}
