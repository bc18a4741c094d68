//! Unit tests for digest authentication, with the RFC 2617 and RFC 7616 vectors.

use std::net::IpAddr;
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

const SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

/// One check with a state of its own, the Request-URI taken from the header: for the
/// tests of the digest itself. The tests of replay, URIs and lock-outs keep a state.
fn verify(server: &Authenticator, method: &str, header: &str, now: SystemTime) -> Verdict {
    let uri = DigestParams::parse(header)
        .ok()
        .and_then(|p| p.get("uri").map(str::to_owned))
        .unwrap_or_else(|| URI.to_owned());
    let mut state = MemoryAuthState::new(AuthPolicy::default(), None);
    let attempt = Attempt {
        method,
        request_uri: &uri,
        authorization: header,
        source: SOURCE,
    };
    server.verify(&mut state, &attempt, now)
}

fn failed(failure: Failure) -> Verdict {
    Verdict::Failed {
        failure,
        lockouts: Vec::new(),
    }
}

fn stale(user: &str, nonce: StaleNonce) -> Verdict {
    Verdict::Stale {
        user: user.to_owned(),
        nonce,
    }
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
        verify(&server, "GET", RFC2617_AUTHORIZATION, t0()),
        stale("Mufasa", StaleNonce::Expired)
    );
    let mut wrong = Authenticator::new("testrealm@host.com", b"k", LIFETIME);
    wrong.add_password("Mufasa", "Circle of Life", false);
    assert_eq!(
        verify(&wrong, "GET", RFC2617_AUTHORIZATION, t0()),
        failed(Failure::WrongCredentials)
    );
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
        assert_eq!(
            verify(&server, "INVITE", &header, later),
            authenticated(user)
        );
        // The digest covers the method.
        assert_eq!(
            verify(&server, "REGISTER", &header, later),
            failed(Failure::WrongCredentials)
        );
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
        verify(&server, "INVITE", &header, t0()),
        authenticated("alice")
    );
}

#[test]
fn expired_nonce_is_stale_and_rechallenge_says_so() {
    let server = demo();
    let challenge = server.challenge(t0(), false, false);
    let header = respond(&challenge, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert_eq!(
        verify(&server, "INVITE", &header, t0() + LIFETIME),
        authenticated("alice")
    );
    assert_eq!(
        verify(
            &server,
            "INVITE",
            &header,
            t0() + LIFETIME + Duration::from_secs(1)
        ),
        stale("alice", StaleNonce::Expired)
    );
    // A nonce from the future (beyond clock skew) is not trusted either.
    assert!(matches!(
        verify(&server, "INVITE", &header, t0() - Duration::from_secs(60)),
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
            Failure::WrongCredentials,
        ),
        ("mallory", "x", challenge.clone(), Failure::UnknownUser),
        (
            "alice",
            "alice-secret",
            challenge.replace("realm=\"dialbridge\"", "realm=\"elsewhere\""),
            Failure::WrongRealm,
        ),
    ];
    for (user, password, challenge, failure) in cases {
        let header = respond(&challenge, user, password, "INVITE", URI, "x", 1).unwrap();
        assert_eq!(verify(&server, "INVITE", &header, t0()), failed(failure));
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
        verify(&server, "INVITE", &tampered, t0()),
        failed(Failure::WrongCredentials)
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
        verify(&server, "INVITE", &header, t0()),
        Verdict::Stale { .. }
    ));
    // A nonce from another deployment (other secret) likewise.
    let other =
        Authenticator::new("dialbridge", b"other secret", LIFETIME).challenge(t0(), false, false);
    let header = respond(&other, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert!(matches!(
        verify(&server, "INVITE", &header, t0()),
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
            verify(&server, "INVITE", &header, t0()),
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
        verify(&server, "INVITE", &header, t0()),
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
    assert_eq!(verify(&server, "BYE", &upper, t0()), authenticated("alice"));
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
        verify(&server, "INVITE", &header, t0()),
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
        verify(&server, "INVITE", &sha, t0()),
        failed(Failure::NoCredentialsForAlgorithm)
    );
    let sha_ha1 = Algorithm::Sha256.ha1("carol", "dialbridge", "carol-secret");
    server.add_ha1("carol", Algorithm::Sha256, &sha_ha1, true);
    assert!(server.prefers_sha256("carol"));
    assert_eq!(
        verify(&server, "INVITE", &sha, t0()),
        authenticated("carol")
    );
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

// Replay, URIs and lock-outs: one state across requests, time moved by the test.

/// A bridge's view: the demo accounts, one state, and a policy of 5 failures a minute.
struct Bench {
    server: Authenticator,
    state: MemoryAuthState,
}

impl Bench {
    fn new() -> Bench {
        Bench::with_policy(AuthPolicy::default())
    }

    fn with_policy(policy: AuthPolicy) -> Bench {
        Bench {
            server: demo(),
            state: MemoryAuthState::new(policy, None),
        }
    }

    fn check(&mut self, ruri: &str, header: &str, source: IpAddr, now: SystemTime) -> Verdict {
        let attempt = Attempt {
            method: "INVITE",
            request_uri: ruri,
            authorization: header,
            source,
        };
        self.server.verify(&mut self.state, &attempt, now)
    }

    /// alice's header for `uri` on a challenge issued at `issued`.
    fn alice(&self, issued: SystemTime, uri: &str, nc: u32) -> String {
        let challenge = self.server.challenge(issued, false, false);
        respond(&challenge, "alice", "alice-secret", "INVITE", uri, "c", nc).unwrap()
    }
}

fn source(last: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last))
}

#[test]
fn two_challenges_in_one_microsecond_get_their_own_nonces() {
    // A nonce is the key of its replay record: two clients must never share one.
    let server = demo();
    let nonce = |c: String| param(&c, "nonce");
    let a = nonce(server.challenge(t0(), false, false));
    let b = nonce(server.challenge(t0(), false, false));
    assert_ne!(a, b);
    assert_eq!(a[..16], b[..16], "the same issue time");
}

#[test]
fn the_digest_uri_must_name_the_request_uri() {
    // Every mismatch is a failure: allow many, so none of them locks alice out.
    let mut bench = Bench::with_policy(AuthPolicy {
        max_failures: 100,
        ..AuthPolicy::default()
    });
    let header = bench.alice(t0(), URI, 1);
    // A captured header sent again for another number: refused, and counted.
    let other = "sip:+14255550199@127.0.0.1";
    assert_eq!(
        bench.check(other, &header, SOURCE, t0()),
        failed(Failure::WrongUri)
    );
    for ruri in [
        "sip:+14255550100@127.0.0.1:5060",
        "sips:+14255550100@127.0.0.1",
        "sip:+14255550100@127.0.0.2",
        "sip:+14255550100@127.0.0.1;transport=tcp",
        "tel:+14255550100",
        "not a uri",
    ] {
        assert_eq!(
            bench.check(ruri, &header, source(2), t0()),
            failed(Failure::WrongUri),
            "{ruri}"
        );
    }
    // The same URI written otherwise (RFC 3261 §19.1.4): scheme and host case, a
    // parameter that need not match.
    for (i, ruri) in [
        "SIP:+14255550100@127.0.0.1",
        "sip:+14255550100@127.0.0.1;ob",
    ]
    .into_iter()
    .enumerate()
    {
        let header = bench.alice(t0(), URI, 1 + i as u32);
        assert_eq!(
            bench.check(ruri, &header, source(3), t0()),
            authenticated("alice"),
            "{ruri}"
        );
    }
    let named = "sip:conf@Bridge.Example.com";
    let header = bench.alice(t0(), named, 1);
    assert_eq!(
        bench.check("sip:conf@bridge.example.com", &header, source(3), t0()),
        authenticated("alice")
    );
    let header = bench.alice(t0(), "tel:+1-425-555-0100", 1);
    assert_eq!(
        bench.check("tel:+14255550100", &header, source(3), t0()),
        authenticated("alice")
    );
}

#[test]
fn a_nonce_count_must_grow_and_a_replay_is_stale() {
    let mut bench = Bench::new();
    let first = bench.alice(t0(), URI, 1);
    let later = t0() + Duration::from_secs(1);
    assert_eq!(
        bench.check(URI, &first, SOURCE, later),
        authenticated("alice")
    );
    // The captured header, sent again: the credentials are right, the count is not new.
    assert_eq!(
        bench.check(URI, &first, SOURCE, later),
        stale("alice", StaleNonce::Replayed)
    );
    // The nonce cached by the client with the next count is fine (RFC 7616 §3.4).
    let cached = format!(
        "Digest realm=\"dialbridge\", nonce=\"{}\", qop=\"auth\"",
        param(&first, "nonce")
    );
    let again =
        |cnonce, nc| respond(&cached, "alice", "alice-secret", "INVITE", URI, cnonce, nc).unwrap();
    let next = again("c", 2);
    assert_eq!(
        bench.check(URI, &next, SOURCE, later),
        authenticated("alice")
    );
    let one_again = again("d", 1);
    assert_eq!(
        bench.check(URI, &one_again, SOURCE, later),
        stale("alice", StaleNonce::Replayed)
    );
    assert_eq!(
        bench.check(URI, &next, SOURCE, later),
        stale("alice", StaleNonce::Replayed)
    );
    // A replay is not a failed guess: nothing is locked however often it comes.
    for _ in 0..10 {
        bench.check(URI, &first, SOURCE, later);
    }
    assert_eq!(
        bench
            .server
            .lockout(&mut bench.state, SOURCE, Some("alice"), later),
        None
    );
}

#[test]
fn without_qop_a_nonce_is_good_once() {
    let mut bench = Bench::new();
    let challenge = bench
        .server
        .challenge(t0(), false, false)
        .replace(", qop=\"auth\"", "");
    let header = respond(&challenge, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert_eq!(
        bench.check(URI, &header, SOURCE, t0()),
        authenticated("alice")
    );
    assert_eq!(
        bench.check(URI, &header, SOURCE, t0()),
        stale("alice", StaleNonce::Replayed)
    );
    // Nor may its nonce come back with a count.
    let with_qop = format!("{challenge}, qop=\"auth\"");
    let header = respond(&with_qop, "alice", "alice-secret", "INVITE", URI, "x", 7).unwrap();
    assert_eq!(
        bench.check(URI, &header, SOURCE, t0()),
        stale("alice", StaleNonce::Replayed)
    );
}

#[test]
fn an_expired_nonce_is_stale_and_never_remembered() {
    let mut bench = Bench::new();
    let header = bench.alice(t0(), URI, 1);
    let expired = t0() + LIFETIME + Duration::from_secs(1);
    assert_eq!(
        bench.check(URI, &header, SOURCE, expired),
        stale("alice", StaleNonce::Expired)
    );
    // A nonce we never issued fails the MAC before it could take room in the cache.
    let other = Authenticator::new("dialbridge", b"other", LIFETIME).challenge(t0(), false, false);
    let header = respond(&other, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    assert_eq!(
        bench.check(URI, &header, SOURCE, t0()),
        stale("alice", StaleNonce::Expired)
    );
    assert_eq!(bench.state.nonces_tracked(), 0);
}

#[test]
fn five_failures_a_minute_lock_the_source_and_the_user_out() {
    let mut bench = Bench::new();
    let wrong = |bench: &Bench, at| {
        let challenge = bench.server.challenge(at, false, false);
        respond(&challenge, "alice", "guess", "INVITE", URI, "x", 1).unwrap()
    };
    let mut now = t0();
    for _ in 0..4 {
        let header = wrong(&bench, now);
        assert_eq!(
            bench.check(URI, &header, SOURCE, now),
            failed(Failure::WrongCredentials)
        );
        now += Duration::from_secs(10);
    }
    let header = wrong(&bench, now);
    let until = now + Duration::from_secs(900);
    assert_eq!(
        bench.check(URI, &header, SOURCE, now),
        Verdict::Failed {
            failure: Failure::WrongCredentials,
            lockouts: vec![
                Lockout {
                    subject: Subject::Source(SOURCE),
                    until
                },
                Lockout {
                    subject: Subject::User("alice".into()),
                    until
                },
            ],
        }
    );
    // Locked: even the right password is refused, with no challenge (the caller asks
    // `lockout` before challenging).
    let right = bench.alice(now, URI, 1);
    let locked_source = Verdict::LockedOut(Lockout {
        subject: Subject::Source(SOURCE),
        until,
    });
    assert_eq!(bench.check(URI, &right, SOURCE, now), locked_source);
    let almost = until - Duration::from_secs(1);
    assert!(
        bench
            .server
            .lockout(&mut bench.state, SOURCE, None, almost)
            .is_some()
    );
    // From elsewhere, the user is locked out too.
    let right = bench.alice(almost, URI, 1);
    assert_eq!(
        bench.check(URI, &right, source(9), almost),
        Verdict::LockedOut(Lockout {
            subject: Subject::User("alice".into()),
            until
        })
    );
    // At the end of the lock-out, the right password works again.
    let right = bench.alice(until, URI, 1);
    assert_eq!(
        bench.check(URI, &right, SOURCE, until),
        authenticated("alice")
    );
    assert_eq!(
        bench
            .server
            .lockout(&mut bench.state, SOURCE, Some("alice"), until),
        None
    );
}

#[test]
fn failures_spread_beyond_the_window_do_not_lock() {
    let mut bench = Bench::new();
    let mut now = t0();
    for _ in 0..20 {
        let challenge = bench.server.challenge(now, false, false);
        let header = respond(&challenge, "alice", "guess", "INVITE", URI, "x", 1).unwrap();
        assert_eq!(
            bench.check(URI, &header, SOURCE, now),
            failed(Failure::WrongCredentials)
        );
        // Four in any minute at most.
        now += Duration::from_secs(16);
    }
}

#[test]
fn a_success_does_not_lift_a_lock_of_the_source_for_another_user() {
    let mut bench = Bench::new();
    let now = t0();
    // bob's password guessed at from SOURCE, five times.
    for _ in 0..5 {
        let challenge = bench.server.challenge(now, false, false);
        let header = respond(&challenge, "bob", "guess", "INVITE", URI, "x", 1).unwrap();
        assert!(matches!(
            bench.check(URI, &header, SOURCE, now),
            Verdict::Failed { .. }
        ));
    }
    // alice, from the same source with her right password: still refused...
    let right = bench.alice(now, URI, 1);
    assert!(matches!(
        bench.check(URI, &right, SOURCE, now),
        Verdict::LockedOut(Lockout {
            subject: Subject::Source(_),
            ..
        })
    ));
    // ...and from another source she is in, which lifts nothing for SOURCE.
    let right = bench.alice(now, URI, 1);
    assert_eq!(
        bench.check(URI, &right, source(7), now),
        authenticated("alice")
    );
    assert!(
        bench
            .server
            .lockout(&mut bench.state, SOURCE, None, now)
            .is_some()
    );
}

#[test]
fn unknown_names_count_against_the_source_only() {
    let mut bench = Bench::new();
    for i in 0..4 {
        let challenge = bench.server.challenge(t0(), false, false);
        let user = format!("guess{i}");
        let header = respond(&challenge, &user, "x", "INVITE", URI, "x", 1).unwrap();
        assert_eq!(
            bench.check(URI, &header, SOURCE, t0()),
            failed(Failure::UnknownUser)
        );
    }
    assert_eq!(bench.state.subjects_tracked(), 1);
}

#[test]
fn the_tables_are_bounded_and_forgetting_never_admits_a_replay() {
    let policy = AuthPolicy {
        max_nonces: 4,
        max_tracked: 3,
        ..AuthPolicy::default()
    };
    let mut bench = Bench::with_policy(policy);
    // Ten nonces used (a credentialed client fetching challenges in a loop).
    let headers: Vec<String> = (0..10)
        .map(|i| bench.alice(t0() + Duration::from_millis(i), URI, 1))
        .collect();
    let now = t0() + Duration::from_secs(1);
    for h in &headers {
        assert_eq!(bench.check(URI, h, SOURCE, now), authenticated("alice"));
    }
    assert_eq!(bench.state.nonces_tracked(), 4);
    // The first nonces were forgotten, yet their replay is refused: stale, not in.
    for h in &headers {
        assert_eq!(
            bench.check(URI, h, SOURCE, now),
            stale("alice", StaleNonce::Replayed)
        );
    }
    // Failures from many sources keep at most three of them.
    for i in 0..50 {
        let challenge = bench.server.challenge(now, false, false);
        let header = respond(&challenge, "mallory", "x", "INVITE", URI, "x", 1).unwrap();
        bench.check(URI, &header, source(i), now);
    }
    assert_eq!(bench.state.subjects_tracked(), 3);
    // Remembered nonces expire with their lifetime.
    let fresh = bench.alice(now + LIFETIME * 2, URI, 1);
    assert_eq!(
        bench.check(URI, &fresh, SOURCE, now + LIFETIME * 2),
        authenticated("alice")
    );
    assert_eq!(bench.state.nonces_tracked(), 1);
}

#[test]
fn after_a_restart_nonces_of_before_are_challenged_again() {
    // The secret outlives the process; the counts of the old state do not.
    let mut bench = Bench::new();
    let before = bench.alice(t0(), URI, 1);
    let restart = t0() + Duration::from_secs(1);
    bench.state = MemoryAuthState::new(AuthPolicy::default(), None).started_at(restart);
    assert_eq!(
        bench.check(URI, &before, SOURCE, restart),
        stale("alice", StaleNonce::Replayed)
    );
    let after = bench.alice(restart + Duration::from_millis(1), URI, 1);
    assert_eq!(
        bench.check(URI, &after, SOURCE, restart),
        authenticated("alice")
    );
}

#[test]
fn an_attempt_prints_without_its_credentials() {
    let header = demo().challenge(t0(), false, false);
    let header = respond(&header, "alice", "alice-secret", "INVITE", URI, "x", 1).unwrap();
    let attempt = Attempt {
        method: "INVITE",
        request_uri: URI,
        authorization: &header,
        source: SOURCE,
    };
    let text = format!("{attempt:?}");
    assert!(
        !text.contains(&param(&header, "response")) && !text.contains(&param(&header, "nonce"))
    );
}

#[test]
fn the_state_keeps_its_secret() {
    let mut given = MemoryAuthState::new(AuthPolicy::default(), Some(b"shared".to_vec()));
    assert_eq!(given.nonce_secret().unwrap(), b"shared");
    assert!(!format!("{given:?}").contains("shared"));
    let mut own = MemoryAuthState::new(AuthPolicy::default(), None);
    let secret = own.nonce_secret().unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(own.nonce_secret().unwrap(), secret);
}

proptest::proptest! {
    #[test]
    fn arbitrary_authorization_values_never_panic(s in "[Dd]igest[ -~\\t\\r\\n]{0,200}") {
        let server = demo();
        let verdict = verify(&server, "INVITE", &s, t0());
        let authenticated = matches!(verdict, Verdict::Authenticated { .. });
        proptest::prop_assert!(!authenticated);
        let _ = respond(&s, "u", "p", "INVITE", URI, "c", 1);
    }
}

#[test]
fn a_lockout_imposed_from_another_node_refuses_until_it_ends_and_never_shortens_one() {
    let mut bench = Bench::new();
    let now = t0();
    let until = now + Duration::from_secs(600);
    bench
        .state
        .impose_lockout(&Subject::User("alice".into()), until);
    let right = bench.alice(now, URI, 1);
    assert!(matches!(
        bench.check(URI, &right, SOURCE, now),
        Verdict::LockedOut(Lockout {
            subject: Subject::User(_),
            ..
        })
    ));
    // An earlier end keeps the later one.
    bench
        .state
        .impose_lockout(&Subject::User("alice".into()), now + Duration::from_secs(1));
    assert_eq!(
        bench
            .state
            .locked_until(&Subject::User("alice".into()), now + Duration::from_secs(2)),
        Some(until)
    );
    assert_eq!(
        bench
            .state
            .locked_until(&Subject::User("alice".into()), until),
        None,
        "it ends when it says"
    );
}
