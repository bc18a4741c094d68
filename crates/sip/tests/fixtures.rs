//! Table test over fixtures/sip: every raw message is parsed, printed and re-parsed, or
//! refused the way its directory says (see fixtures/sip/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dialbridge_sip::message::uri::NameAddr;
use dialbridge_sip::message::{self, Frame, StreamFramer, fields};
use dialbridge_sip::rsip::{Headers, SipMessage};

/// What a fixture directory promises about its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Parses; prints; the printed form parses to the same fields.
    Valid,
    /// Refused by `parse`, answered by `reject_malformed` with this status.
    Answer(u16),
    /// Refused by `parse` and not answerable.
    Drop,
}

fn expect_of(dir: &str) -> Option<Expect> {
    match dir {
        "valid" => Some(Expect::Valid),
        "drop" => Some(Expect::Drop),
        _ => dir
            .strip_prefix("answer-")?
            .parse()
            .ok()
            .map(Expect::Answer),
    }
}

fn fixtures() -> Vec<(PathBuf, Expect)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sip");
    let mut out = Vec::new();
    for base in [root.clone(), root.join("fuzz")] {
        let Ok(dirs) = std::fs::read_dir(&base) else {
            continue;
        };
        for dir in dirs {
            let dir = dir.unwrap().path();
            let Some(expect) = dir.file_name().and_then(|n| n.to_str()).and_then(expect_of) else {
                continue;
            };
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "sip") {
                    out.push((path, expect));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The fields the stack reads, owned, to compare before and after printing.
#[derive(Debug, PartialEq)]
struct Seen {
    start: String,
    vias: Vec<(String, String, Option<u16>, Option<String>)>,
    call_id: Option<String>,
    cseq: (u32, String),
    from_tag: Option<String>,
    to_tag: Option<String>,
    max_forwards: Option<u32>,
    require: Vec<String>,
    header_count: usize,
    body: Vec<u8>,
    /// The Request-URI, From, To and every Contact as our own parser reads them.
    addresses: Vec<Result<String, String>>,
}

fn seen(msg: &SipMessage) -> Seen {
    let (start, headers): (String, &Headers) = match msg {
        SipMessage::Request(r) => (format!("{} {}", r.method, r.uri), &r.headers),
        SipMessage::Response(r) => (r.status_code.code().to_string(), &r.headers),
    };
    let vias = fields::raw_values(headers, fields::Name::Via)
        .map(|v| {
            let v = fields::parse_via(v).unwrap();
            (
                v.transport.to_owned(),
                v.host.to_owned(),
                v.port,
                v.branch.map(str::to_owned),
            )
        })
        .collect();
    let cseq = fields::cseq(headers).unwrap();
    Seen {
        start,
        vias,
        call_id: fields::call_id(headers).map(str::to_owned),
        cseq: (cseq.seq, cseq.method.to_owned()),
        from_tag: fields::from_tag(headers).map(str::to_owned),
        to_tag: fields::to_tag(headers).map(str::to_owned),
        max_forwards: fields::max_forwards(headers).unwrap(),
        require: fields::require(headers).map(str::to_owned).collect(),
        header_count: headers.iter().count(),
        body: msg.body().clone(),
        addresses: addresses(msg, headers),
    }
}

fn addresses(msg: &SipMessage, headers: &Headers) -> Vec<Result<String, String>> {
    use dialbridge_sip::rsip::Header;
    use dialbridge_sip::rsip::headers::UntypedHeader;
    let mut out = Vec::new();
    if let SipMessage::Request(request) = msg {
        out.push(
            message::request_uri(request)
                .map(|u| u.to_string())
                .map_err(|e| format!("Request-URI: {e}")),
        );
    }
    for header in headers.iter() {
        let (name, value) = match header {
            Header::From(h) => ("From", h.value()),
            Header::To(h) => ("To", h.value()),
            Header::Contact(h) => ("Contact", h.value()),
            _ => continue,
        };
        out.push(
            NameAddr::parse(value)
                .map(|a| a.to_string())
                .map_err(|e| format!("{name} {value:?}: {e}")),
        );
    }
    out
}

#[test]
fn every_fixture_behaves_as_its_directory_says() {
    let all = fixtures();
    assert!(all.len() >= 30, "fixtures missing: found {}", all.len());
    let mut failures = Vec::new();
    for (path, expect) in &all {
        let bytes = std::fs::read(path).unwrap();
        if let Err(why) = check(&bytes, *expect) {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check(bytes: &[u8], expect: Expect) -> Result<(), String> {
    if let Ok(once) = message::normalize(bytes) {
        let twice =
            message::normalize(&once).map_err(|e| format!("normalized text refused: {e}"))?;
        if twice != once {
            return Err("normalize is not idempotent".into());
        }
    }
    let parsed = message::parse(bytes);
    match (expect, parsed) {
        (Expect::Valid, Ok(msg)) => {
            let first = seen(&msg);
            if let Some(Err(why)) = first.addresses.iter().find(|a| a.is_err()) {
                return Err(format!("our reader refuses {why}"));
            }
            let printed = message::encode(&msg);
            let again = message::parse(&printed).map_err(|e| {
                format!(
                    "printed form does not parse: {e}\n{}",
                    String::from_utf8_lossy(&printed)
                )
            })?;
            let second = seen(&again);
            if first != second {
                return Err(format!(
                    "fields changed in the round trip:\n{first:#?}\n{second:#?}"
                ));
            }
            // A request line is printed as it came, up to case (rsip prints `transport=TLS` for
            // `transport=tls`; RFC 3261 §19.1.4 compares all but userinfo case-insensitively).
            let line = |b: &[u8]| {
                b.split(|c| *c == b'\n')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii_end()
                    .to_vec()
            };
            if msg.is_request() && !line(bytes).eq_ignore_ascii_case(&line(&printed)) {
                return Err(format!(
                    "request line changed: {:?} -> {:?}",
                    String::from_utf8_lossy(&line(bytes)),
                    String::from_utf8_lossy(&line(&printed))
                ));
            }
            // Printing is stable: printing the re-parsed message gives the same bytes.
            if message::encode(&again) != printed {
                return Err("second print differs from the first".into());
            }
            // Framed on a stream (with Content-Length set), it comes out whole.
            if msg.body().is_empty()
                || bytes
                    .windows(15)
                    .any(|w| w.eq_ignore_ascii_case(b"content-length:"))
            {
                let mut framer = StreamFramer::new();
                let mut stream = b"\r\n\r\n".to_vec();
                stream.extend_from_slice(&printed);
                if fields::raw_value(headers(&msg), fields::Name::ContentLength).is_some() {
                    let _ = framer.push(&stream);
                    let frames: Vec<_> = std::iter::from_fn(|| framer.next_frame()).collect();
                    match frames.as_slice() {
                        [Ok(Frame::KeepAlivePing), Ok(Frame::Message(m))] if *m == printed => {}
                        other => return Err(format!("framer gave {other:?}")),
                    }
                }
            }
            Ok(())
        }
        (Expect::Valid, Err(e)) => Err(format!("must parse, got: {e}")),
        (Expect::Answer(status), Err(e)) => {
            let (got, reason) = message::answer_for(&e).ok_or(format!("no answer for {e}"))?;
            if got != status {
                return Err(format!("want {status}, error {e} maps to {got}"));
            }
            let reply = message::reject_malformed(bytes, got, reason)
                .ok_or(format!("{e}: reject_malformed could not answer"))?;
            // The answer copies the request's Via/From/To/Call-ID/CSeq as they are (§8.2.6.2),
            // so it only parses when those were well-formed; its status line always must.
            let status_line = format!("SIP/2.0 {status} {reason}\r\n");
            if !reply.starts_with(status_line.as_bytes())
                || !reply.ends_with(b"Content-Length: 0\r\n\r\n")
            {
                return Err(format!("bad answer:\n{}", String::from_utf8_lossy(&reply)));
            }
            match message::parse(&reply) {
                Ok(SipMessage::Response(r)) if r.status_code.code() == status => Ok(()),
                Ok(other) => Err(format!("answer is {other}")),
                Err(_) if message::reject_malformed(&reply, 400, "x").is_none() => Ok(()),
                Err(e) => Err(format!("answer refused ({e}) yet looks like a request")),
            }
        }
        (Expect::Drop, Err(e)) => match message::answer_for(&e) {
            Some((status, reason))
                if message::reject_malformed(bytes, status, reason).is_some() =>
            {
                Err(format!(
                    "{e}: must be dropped but reject_malformed answered"
                ))
            }
            _ => Ok(()),
        },
        (_, Ok(_)) => Err("must be refused, but parsed".into()),
    }
}

fn headers(msg: &SipMessage) -> &Headers {
    match msg {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    }
}

#[test]
fn wsinv_reads_as_rfc_4475_says() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sip/valid/rfc4475-wsinv.sip");
    let msg = message::parse(&std::fs::read(path).unwrap()).unwrap();
    let s = seen(&msg);
    let via = |t: &str, h: &str, b: &str| (t.to_owned(), h.to_owned(), None, Some(b.to_owned()));
    assert_eq!(
        s.vias,
        [
            via("UDP", "192.0.2.2", "390skdjuw"),
            via("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
            via("UDP", "192.168.255.111", "z9hG4bK30239"),
        ]
    );
    assert_eq!(s.cseq, (9, "INVITE".to_owned()));
    assert_eq!(s.max_forwards, Some(68));
    assert_eq!(s.from_tag.as_deref(), Some("98asjd8"));
    assert_eq!(s.to_tag.as_deref(), Some("1918181833n"));
    assert_eq!(s.call_id.as_deref(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert!(s.body.starts_with(b"v=0\r\n") && s.body.ends_with(b"a=rtpmap:31 LPC\r\n"));
    let h = headers(&msg);
    let text: Vec<String> = h.iter().map(ToString::to_string).collect();
    assert!(
        text.contains(&"NewFangledHeader: newfangled value continued newfangled value".to_owned()),
        "{text:#?}"
    );
    assert!(text.contains(&"UnknownHeaderWithUnusualValue: ;;,,;;,;".to_owned()));
    assert!(text.contains(&"Contact: \"Quoted string \\\"\\\"\" <sip:jdrosen@example.com>;newparam=newvalue;secondparam;q=0.33".to_owned()), "{text:#?}");
    assert!(
        text.contains(
            &"From: \"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com>;tag=98asjd8".to_owned()
        ),
        "{text:#?}"
    );
}

#[test]
fn microsoft_pstn_invite_reads_fully() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/sip/valid/microsoft-pstn-invite.sip");
    let msg = message::parse(&std::fs::read(path).unwrap()).unwrap();
    let h = headers(&msg);
    let via = fields::top_via(h).unwrap();
    assert_eq!(
        (via.transport, via.host, via.port, via.rport),
        ("TLS", "52.114.76.76", Some(5061), Some(None))
    );
    assert_eq!(
        fields::from_tag(h),
        Some("a3b1f0c7c5d14b0c9b5a4d1e1c2f3a4b")
    );
    assert_eq!(fields::to_tag(h), None);
    assert!(msg.body().ends_with(b"a=ptime:20\r\n"));
}
