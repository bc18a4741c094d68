//! Unit tests for digest authentication, with the RFC 2617 and RFC 7616 vectors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::params::DigestParams;
use super::*;

const LIFETIME: Duration = Duration::from_secs(300);
const URI: &str = "sip:+14255550100@127.0.0.1";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

fn demo() -> Authenticator {
    let mut a = Authenticator::new("dialbridge", b"node secret", LIFETIME);
    a.add_password("alice", "alice-secret", false);
    a.add_password("bob", "bob-secret", true);
    a
}

fn authenticated(user: &str) -> Verdict {
    Verdict::Authenticated {
        user: user.to_owned(),
    }
}

fn param(header: &str, name: &str) -> String {
    DigestParams::parse(header)
        .unwrap()
        .get(name)
        .unwrap()
        .to_owned()
}

// RFC 2617 §3.5.
const RFC2617_CHALLENGE: &str = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
const RFC2617_AUTHORIZATION: &str = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

#[test]
fn rfc2617_worked_example() {
    let header = respond(
        RFC2617_CHALLENGE,
        "Mufasa",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        "0a4f113b",
        1,
    )
    .unwrap();
    assert_eq!(
        param(&header, "response"),
        "6629fae49393a05397450978507c4ef1"
    );
    assert_eq!(param(&header, "nc"), "00000001");
    assert_eq!(param(&header, "qop"), "auth");
    assert_eq!(param(&header, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");

    // The server side accepts the RFC's own header as valid credentials; the nonce is
    // not one it issued, so the verdict is Stale (re-challenge), not Authenticated.
    let mut server = Authenticator::new("testrealm@host.com", b"k", LIFETIME);
    server.add_password("Mufasa", "Circle Of Life", false);
    assert_eq!(
        server.verify("GET", RFC2617_AUTHORIZATION, t0()),
        Verdict::Stale {
            user: "Mufasa".to_owned()
        }
    );
    let mut wrong = Authenticator::new("testrealm@host.com", b"k", LIFETIME);
    wrong.add_password("Mufasa", "Circle of Life", false);
    assert!(matches!(
        wrong.verify("GET", RFC2617_AUTHORIZATION, t0()),
        Verdict::Forbidden { .. }
    ));
}

// RFC 7616 §3.9.1.
fn rfc7616(algorithm: &str) -> String {
    let challenge = format!(
        r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
    );
    let header = respond(
        &challenge,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        1,
    )
    .unwrap();
    assert_eq!(param(&header, "algorithm"), algorithm);
    param(&header, "response")
}

#[test]
fn rfc7616_sha256_and_md5_vectors() {
    assert_eq!(
        rfc7616("SHA-256"),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(rfc7616("MD5"), "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn round_trip_md5_and_sha256_with_qop() {
    let server = demo();
    for (user, password, sha) in [
        ("alice", "alice-secret", false),
        ("bob", "bob-secret", true),
    ] {
        let challenge = server.challenge(t0(), false, sha);
        assert!(challenge.contains(if sha {
            "algorithm=SHA-256"
        } else {
            "algorithm=MD5"
        }));
        assert!(challenge.contains("qop=\"auth\"") && challenge.contains("realm=\"dialbridge\""));
        let header = respond(&challenge, user, password, "INVITE", URI, "c0ffee", 1).unwrap();
        let later = t0() + Duration::from_secs(2);
        assert_eq!(server.verify("INVITE", &header, later), authenticated(user));
        // The digest covers the method.
        assert!(matches!(
            server.verify("REGISTER", &header, later),
            Verdict::Forbidden {
                reason: "wrong credentials"
            }
        ));
    }
}

#[test]
fn round_trip_without_qop_rfc2069() {
    let server = demo();
    let challenge = server
        .challenge(t0(), false, false)
        .replace(", qop=\"auth\"", "");
    let header = respond(
        &challenge,
        "alice",
        "alice-secret",
        "INVITE",
        URI,
        "unused",
        1,
    )
    .unwrap();
    assert!(DigestParams::parse(&header).unwrap().get("qop").is_none());
    assert!(
        DigestParams::parse(&header)
            .unwrap()
            .get("cnonce")
            .is_none()
    );
    assert_eq!(
        server.verify("INVITE", &header, t0()),
        authenticated("alice")
    );
}

#[test]
fn expired_nonce_is_stale_and_rechallenge_says_so() {
    let server = demo();
    let challenge = server.challenge(t0(), false, false);
    let header = respond(&challenge, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert_eq!(
        server.verify("INVITE", &header, t0() + LIFETIME),
        authenticated("alice")
    );
    assert_eq!(
        server.verify("INVITE", &header, t0() + LIFETIME + Duration::from_secs(1)),
        Verdict::Stale {
            user: "alice".to_owned()
        }
    );
    // A nonce from the future (beyond clock skew) is not trusted either.
    assert!(matches!(
        server.verify("INVITE", &header, t0() - Duration::from_secs(60)),
        Verdict::Stale { .. }
    ));
    let again = server.challenge(t0() + LIFETIME * 2, true, false);
    assert!(again.ends_with(", stale=true"));
    assert!(!server.challenge(t0(), false, false).contains("stale"));
}

#[test]
fn wrong_password_unknown_user_and_wrong_realm_are_forbidden() {
    let server = demo();
    let challenge = server.challenge(t0(), false, false);
    let cases = [
        (
            "alice",
            "bob-secret",
            challenge.clone(),
            "wrong credentials",
        ),
        ("mallory", "x", challenge.clone(), "unknown user"),
        (
            "alice",
            "alice-secret",
            challenge.replace("realm=\"dialbridge\"", "realm=\"elsewhere\""),
            "wrong realm",
        ),
    ];
    for (user, password, challenge, reason) in cases {
        let header = respond(&challenge, user, password, "INVITE", URI, "x", 1).unwrap();
        assert_eq!(
            server.verify("INVITE", &header, t0()),
            Verdict::Forbidden { reason }
        );
    }
}

#[test]
fn tampered_nonce() {
    let server = demo();
    let challenge = server.challenge(t0(), false, false);
    let nonce = param(&challenge, "nonce");
    let header = respond(&challenge, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    // Someone edits the nonce in a captured header: the digest no longer matches.
    let flipped_char = if nonce.ends_with('0') { "1" } else { "0" };
    let edited = format!("{}{flipped_char}", &nonce[..nonce.len() - 1]);
    let tampered = header.replace(&nonce, &edited);
    assert_eq!(
        server.verify("INVITE", &tampered, t0()),
        Verdict::Forbidden {
            reason: "wrong credentials"
        }
    );
    // Even the password holder cannot extend a nonce's life by rewriting its time:
    // the MAC no longer fits, so the answer is Stale, never Authenticated.
    let later_stamp = format!(
        "{:016x}",
        u64::from_str_radix(&nonce[..16], 16).unwrap() + 1
    );
    let forged = challenge.replace(&nonce[..16], &later_stamp);
    let header = respond(&forged, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert!(matches!(
        server.verify("INVITE", &header, t0()),
        Verdict::Stale { .. }
    ));
    // A nonce from another deployment (other secret) likewise.
    let other =
        Authenticator::new("dialbridge", b"other secret", LIFETIME).challenge(t0(), false, false);
    let header = respond(&other, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert!(matches!(
        server.verify("INVITE", &header, t0()),
        Verdict::Stale { .. }
    ));
}

#[test]
fn malformed_authorization_values() {
    let server = demo();
    let good = respond(
        &server.challenge(t0(), false, false),
        "alice",
        "alice-secret",
        "INVITE",
        URI,
        "x",
        1,
    )
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            "Basic YWxpY2U6YWxpY2Utc2VjcmV0".to_owned(),
            "scheme is not Digest",
        ),
        (
            good.replace(", response=", ", foo=\"1\", xresponse="),
            "missing username, realm, nonce, uri or response",
        ),
        (
            "Digest username=\"alice".to_owned(),
            "unterminated quoted string",
        ),
        (format!("{good}, username=\"bob\""), "duplicate parameter"),
        (
            good.replace("nc=00000001", "nc=1"),
            "qop=auth needs nc (8 hex digits) and cnonce",
        ),
        (
            good.replace("algorithm=MD5", "algorithm=MD5-sess"),
            "unsupported algorithm",
        ),
        (good.replace("qop=auth", "qop=auth-int"), "unsupported qop"),
        (
            format!("{good}, userhash=true"),
            "userhash is not supported",
        ),
        (
            good.replace(", uri=", " uri="),
            "expected ',' between parameters",
        ),
        (
            format!("{good}, x=\"{}\"", "a".repeat(MAX_HEADER_LEN)),
            "header value too long",
        ),
        (
            format!(
                "Digest {}",
                (0..=MAX_PARAMS)
                    .map(|i| format!("p{i}=1"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "too many parameters",
        ),
        ("Digest =x".to_owned(), "expected a parameter name"),
    ];
    for (header, reason) in cases {
        assert_eq!(
            server.verify("INVITE", &header, t0()),
            Verdict::Malformed { reason },
            "{header}"
        );
    }
}

#[test]
fn parses_authorization_robustly() {
    let p = DigestParams::parse(
        "  digest  NONCE=abc ,USERNAME=\"al\\\"ice\\\\\",\r\n uri = \"sip:x@y;transport=tcp, z\",,qop=auth",
    )
    .unwrap();
    assert_eq!(p.get("username"), Some("al\"ice\\"));
    assert_eq!(p.get("nonce"), Some("abc"));
    assert_eq!(p.get("Uri"), Some("sip:x@y;transport=tcp, z"));
    assert_eq!(p.get("qop"), Some("auth"));
    assert_eq!(p.get("cnonce"), None);
    // Non-ASCII inside quotes is kept, never split mid-character.
    let p = DigestParams::parse("Digest username=\"zoë\\é\"").unwrap();
    assert_eq!(p.get("username"), Some("zoëé"));
}

#[test]
fn quoting_round_trips_through_respond_and_verify() {
    let mut server = Authenticator::new("dial\"bridge", b"s", LIFETIME);
    server.add_password("a\\b", "pw", false);
    let challenge = server.challenge(t0(), false, false);
    let header = respond(&challenge, "a\\b", "pw", "INVITE", URI, "q\"uote", 7).unwrap();
    assert!(header.contains("nc=00000007"));
    assert_eq!(
        server.verify("INVITE", &header, t0()),
        authenticated("a\\b")
    );
}

#[test]
fn uppercase_response_hex_is_accepted() {
    let server = demo();
    let header = respond(
        &server.challenge(t0(), false, false),
        "alice",
        "alice-secret",
        "BYE",
        URI,
        "x",
        1,
    )
    .unwrap();
    let response = param(&header, "response");
    let upper = header.replace(&response, &response.to_ascii_uppercase());
    assert_eq!(server.verify("BYE", &upper, t0()), authenticated("alice"));
}

#[test]
fn precomputed_ha1_accounts_and_sha256_preference() {
    let mut server = Authenticator::new("dialbridge", b"s", LIFETIME);
    let md5 = Algorithm::Md5.ha1("carol", "dialbridge", "carol-secret");
    server.add_ha1("carol", Algorithm::Md5, &md5.to_ascii_uppercase(), true);
    // No SHA-256 HA1: the preference cannot be honoured.
    assert!(!server.prefers_sha256("carol"));
    let header = respond(
        &server.challenge(t0(), false, false),
        "carol",
        "carol-secret",
        "INVITE",
        URI,
        "x",
        1,
    )
    .unwrap();
    assert_eq!(
        server.verify("INVITE", &header, t0()),
        authenticated("carol")
    );
    let sha = respond(
        &server.challenge(t0(), false, true),
        "carol",
        "carol-secret",
        "INVITE",
        URI,
        "x",
        1,
    )
    .unwrap();
    assert_eq!(
        server.verify("INVITE", &sha, t0()),
        Verdict::Forbidden {
            reason: "no credentials for this algorithm"
        }
    );
    let sha_ha1 = Algorithm::Sha256.ha1("carol", "dialbridge", "carol-secret");
    server.add_ha1("carol", Algorithm::Sha256, &sha_ha1, true);
    assert!(server.prefers_sha256("carol"));
    assert_eq!(server.verify("INVITE", &sha, t0()), authenticated("carol"));
    let demo = demo();
    assert!(
        demo.prefers_sha256("bob") && !demo.prefers_sha256("alice") && !demo.prefers_sha256("eve")
    );
}

#[test]
fn secrets_stay_out_of_debug() {
    let server = demo();
    let text = format!("{server:?}");
    let ha1 = Algorithm::Md5.ha1("alice", "dialbridge", "alice-secret");
    assert!(text.contains("alice") && !text.contains("alice-secret") && !text.contains(&ha1));
    assert!(!text.contains("node secret"));
}

#[test]
fn client_rejects_challenges_it_cannot_answer() {
    let args = ("u", "p", "INVITE", URI, "c", 1);
    let r = |c: &str| respond(c, args.0, args.1, args.2, args.3, args.4, args.5);
    assert_eq!(
        r("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
        Err(AuthError::UnsupportedAlgorithm)
    );
    assert_eq!(
        r("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
        Err(AuthError::UnsupportedQop)
    );
    assert_eq!(
        r("Digest realm=\"r\""),
        Err(AuthError::Malformed("challenge without nonce"))
    );
    assert_eq!(
        r("Bearer x"),
        Err(AuthError::Malformed("scheme is not Digest"))
    );
}

#[test]
fn constant_time_eq_compares_bytes() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}

proptest::proptest! {
    #[test]
    fn arbitrary_authorization_values_never_panic(s in "[Dd]igest[ -~\\t\\r\\n]{0,200}") {
        let server = demo();
        let verdict = server.verify("INVITE", &s, t0());
        let authenticated = matches!(verdict, Verdict::Authenticated { .. });
        proptest::prop_assert!(!authenticated);
        let _ = respond(&s, "u", "p", "INVITE", URI, "c", 1);
    }
}
