use super::*;
use std::net::Ipv4Addr;

fn sip(text: &str) -> SipUri {
    match Uri::parse(text) {
        Ok(Uri::Sip(sip)) => sip,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn reads_ipv6_references_and_prints_them_in_brackets() {
    let uri = sip("sip:alice@[fd00::2]");
    assert_eq!(uri.host, Host::Ip("fd00::2".parse().unwrap()));
    assert_eq!(uri.port, None);
    assert_eq!(uri.to_string(), "sip:alice@[fd00::2]");

    let uri = sip("sip:+14255550100@[::1]:5060;transport=udp");
    assert_eq!(uri.port, Some(5060));
    assert_eq!(uri.to_string(), "sip:+14255550100@[::1]:5060;transport=udp");
    // RFC 5118 §4.3: the colon inside the brackets belongs to the address.
    let uri = sip("sip:[2001:db8::10:5070]");
    assert_eq!(uri.port, None);
    // RFC 5118 §4.10: the three-colon form is read as the address it means.
    let uri = sip("sip:user@[2001:db8:::192.0.2.1]");
    assert_eq!(uri.host, Host::Ip("2001:db8::c000:201".parse().unwrap()));
}

#[test]
fn refuses_unbracketed_ipv6_and_ports_out_of_range() {
    // RFC 5118 §4.2.
    assert_eq!(
        Uri::parse("sip:2001:db8::10"),
        Err(UriError::Malformed("bad port in URI"))
    );
    assert!(Uri::parse("sip:host:70000").is_err());
    assert!(Uri::parse("sip:host:").is_err());
    assert!(Uri::parse("sip:[::1").is_err());
    assert!(Uri::parse("sip:[not-an-address]").is_err());
}

#[test]
fn reads_user_parts_with_semicolons_and_passwords() {
    // RFC 4475 semiuri.
    let uri = sip("sip:user;par=u%40example.net@example.com");
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(uri.host, Host::Name("example.com".into()));
    let uri = sip("sips:alice:secret@127.0.0.1:5061;lr?subject=x");
    assert!(uri.secure);
    assert_eq!(uri.password.as_deref(), Some("secret"));
    assert_eq!(uri.host, Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(uri.params[0].name, "lr");
    assert_eq!(uri.headers.as_deref(), Some("subject=x"));
    assert_eq!(
        uri.to_string(),
        "sips:alice:secret@127.0.0.1:5061;lr?subject=x"
    );
    assert!(Uri::parse("sip:@host").is_err());
    assert!(Uri::parse("sip:a b@host").is_err());
}

#[test]
fn reads_tel_uris() {
    let Ok(Uri::Tel(tel)) = Uri::parse("tel:+1-425-555-0100;phone-context=+1") else {
        panic!()
    };
    assert_eq!(tel.number, "+1-425-555-0100");
    assert_eq!(tel.params[0].value.as_deref(), Some("+1"));
    assert_eq!(
        Uri::parse("tel:+14255550100").unwrap().user(),
        Some("+14255550100")
    );
    assert!(Uri::parse("tel:+").is_err());
    assert!(Uri::parse("tel:abc;x").is_err() || Uri::parse("tel:zz").is_err());
}

#[test]
fn sorts_request_uris_into_416_and_400() {
    assert_eq!(
        Uri::parse_request_uri("http://example.com/"),
        Err(UriError::UnsupportedScheme)
    );
    assert_eq!(
        Uri::parse_request_uri("nobodyknowsthisscheme:totallyopaquecontent"),
        Err(UriError::UnsupportedScheme)
    );
    assert_eq!(
        Uri::parse_request_uri("<>"),
        Err(UriError::Malformed("URI without scheme"))
    );
    assert_eq!(Uri::parse_request_uri(""), Err(UriError::Empty));
    assert!(Uri::parse_request_uri("sip:+14255550100@127.0.0.1").is_ok());
    assert!(Uri::parse_request_uri("tel:+14255550100").is_ok());
}

#[test]
fn reads_name_addrs_with_quoted_and_unknown_parameters() {
    let contact = NameAddr::parse(
        r#"<sip:127.0.0.1:5070;transport=udp>;+sip.instance="<urn:uuid:1234-abcd>";expires=3600"#,
    )
    .unwrap();
    assert_eq!(contact.uri.to_string(), "sip:127.0.0.1:5070;transport=udp");
    assert_eq!(
        contact.param("+sip.instance"),
        Some(Some(r#""<urn:uuid:1234-abcd>""#))
    );
    assert_eq!(contact.param("expires"), Some(Some("3600")));

    let from = NameAddr::parse(r#""Alice \"A\" Smith" <sip:alice@[fd00::2]> ; tag = abc"#).unwrap();
    assert_eq!(from.display_name.as_deref(), Some(r#""Alice \"A\" Smith""#));
    assert_eq!(from.tag(), Some("abc"));
    assert_eq!(
        from.uri.as_sip().and_then(SipUri::ip),
        "fd00::2".parse().ok()
    );
    assert_eq!(
        from.to_string(),
        r#""Alice \"A\" Smith" <sip:alice@[fd00::2]>;tag=abc"#
    );

    // addr-spec: the parameters are the header's.
    let to = NameAddr::parse("sip:+14255550100@127.0.0.1;tag=x").unwrap();
    assert_eq!(to.uri.to_string(), "sip:+14255550100@127.0.0.1");
    assert_eq!(to.tag(), Some("x"));
    let plain = NameAddr::parse("Bob <tel:+14255550100>").unwrap();
    assert_eq!(plain.display_name.as_deref(), Some("Bob"));
    assert_eq!(plain.uri.user(), Some("+14255550100"));
}

#[test]
fn refuses_broken_name_addrs() {
    for bad in [
        "",
        "<>",
        "\"Alice <sip:a@b>",
        "\"Alice\" sip:a@b",
        "<sip:a@b",
        "<sip:a@b>;=x",
        "<sip:a@b>;tag=",
        "<sip:a@b> junk",
        "<sip:a@b>;p=\"unterminated",
    ] {
        assert!(NameAddr::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn splits_lists_outside_quotes_and_brackets() {
    let routes =
        NameAddr::parse_list(r#"<sip:p1.example.com;lr>, "a,b" <sip:p2.example.com;lr>"#).unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[1].display_name.as_deref(), Some("\"a,b\""));
}

#[test]
fn rsip_vessel_prints_our_text() {
    for text in [
        "sip:+14255550100@[::1]:5060",
        "tel:+14255550100;phone-context=+1",
        "sip:user;par=u%40example.net@example.com",
    ] {
        let uri = Uri::parse(text).unwrap();
        assert_eq!(uri.to_rsip().to_string(), text);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,2}",
            any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
            any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
        ]
    }

    proptest! {
        /// Whatever the bytes, reading a URI or a name-addr answers; it never panics.
        #[test]
        fn never_panics(text in "\\PC{0,80}") {
            let _ = Uri::parse(&text);
            let _ = Uri::parse_request_uri(&text);
            let _ = NameAddr::parse(&text);
            let _ = NameAddr::parse_list(&text);
        }

        /// What we print, we read back to the same value.
        #[test]
        fn prints_and_reads_back(
            user in proptest::option::of("[a-zA-Z0-9+*._-]{1,12}"),
            host in host(),
            port in proptest::option::of(any::<u16>()),
            display in proptest::option::of("\"[a-zA-Z ]{0,10}\""),
            instance in "[0-9a-f-]{1,36}",
            tag in "[a-zA-Z0-9]{1,16}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let user = user.map(|u| format!("{u}@")).unwrap_or_default();
            let text = format!(
                "{} <sip:{user}{host}{port};transport=udp>;+sip.instance=\"<urn:uuid:{instance}>\";tag={tag}",
                display.clone().unwrap_or_default()
            );
            let parsed = NameAddr::parse(&text).unwrap();
            prop_assert_eq!(parsed.tag(), Some(tag.as_str()));
            prop_assert_eq!(parsed.display_name.clone(), display.filter(|d| !d.is_empty()));
            let again = NameAddr::parse(&parsed.to_string()).unwrap();
            prop_assert_eq!(again, parsed);
        }
    }
}
