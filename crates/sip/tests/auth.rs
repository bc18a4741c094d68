//! Public-API tests of digest authentication with the demo's softphone accounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use dialbridge_sip::auth::{
    Attempt, AuthPolicy, Authenticator, MemoryAuthState, StaleNonce, Verdict, respond,
};

fn demo() -> Authenticator {
    let mut a = Authenticator::new("dialbridge", b"demo nonce secret", Duration::from_secs(300));
    a.add_password("alice", "alice-secret", false);
    a.add_password("bob", "bob-secret", true);
    a
}

const URI: &str = "sip:+14255550100@127.0.0.1:5060";

/// One check from 192.0.2.1 of a request for `ruri`.
fn verify(
    server: &Authenticator,
    state: &mut MemoryAuthState,
    method: &str,
    ruri: &str,
    authorization: &str,
    now: SystemTime,
) -> Verdict {
    let attempt = Attempt {
        method,
        request_uri: ruri,
        authorization,
        source: [192, 0, 2, 1].into(),
    };
    server.verify(state, &attempt, now)
}

#[test]
fn softphone_flow_challenge_answer_stale_and_again() {
    let server = demo();
    let mut state = MemoryAuthState::new(AuthPolicy::default(), None);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // INVITE without credentials from alice: MD5 challenge.
    let challenge = server.challenge(now, false, server.prefers_sha256("alice"));
    let auth = respond(
        &challenge,
        "alice",
        "alice-secret",
        "INVITE",
        URI,
        "4f1c",
        1,
    )
    .unwrap();
    assert_eq!(
        verify(
            &server,
            &mut state,
            "INVITE",
            URI,
            &auth,
            now + Duration::from_millis(40)
        ),
        Verdict::Authenticated {
            user: "alice".into()
        }
    );
    // Ten minutes later the same nonce is stale; the new challenge says so and works.
    let later = now + Duration::from_secs(600);
    let auth = respond(
        &challenge,
        "alice",
        "alice-secret",
        "INVITE",
        URI,
        "4f1d",
        2,
    )
    .unwrap();
    let Verdict::Stale {
        user,
        nonce: StaleNonce::Expired,
    } = verify(&server, &mut state, "INVITE", URI, &auth, later)
    else {
        panic!("expected Stale");
    };
    let again = server.challenge(later, true, server.prefers_sha256(&user));
    assert!(again.contains("stale=true"));
    let auth = respond(&again, "alice", "alice-secret", "INVITE", URI, "4f1e", 1).unwrap();
    assert!(matches!(
        verify(&server, &mut state, "INVITE", URI, &auth, later),
        Verdict::Authenticated { .. }
    ));
}

#[test]
fn sha256_preferring_account_may_answer_either_header() {
    let server = demo();
    let mut state = MemoryAuthState::new(AuthPolicy::default(), None);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(server.prefers_sha256("bob"));
    // SHA-256 first, then MD5 for clients that only know MD5.
    let headers = [
        server.challenge(now, false, true),
        server.challenge(now, false, false),
    ];
    assert!(headers[0].contains("algorithm=SHA-256") && headers[1].contains("algorithm=MD5"));
    for h in &headers {
        let auth = respond(
            h,
            "bob",
            "bob-secret",
            "REGISTER",
            "sip:127.0.0.1",
            "b0b",
            1,
        )
        .unwrap();
        assert_eq!(
            verify(&server, &mut state, "REGISTER", "sip:127.0.0.1", &auth, now),
            Verdict::Authenticated { user: "bob".into() }
        );
        let wrong = respond(
            h,
            "bob",
            "alice-secret",
            "REGISTER",
            "sip:127.0.0.1",
            "b0b",
            1,
        )
        .unwrap();
        assert!(matches!(
            verify(
                &server,
                &mut state,
                "REGISTER",
                "sip:127.0.0.1",
                &wrong,
                now
            ),
            Verdict::Failed { .. }
        ));
    }
}

#[test]
fn client_errors_convert_into_the_crate_error() {
    let err = respond(
        "Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5",
        "u",
        "p",
        "INVITE",
        URI,
        "c",
        1,
    )
    .unwrap_err();
    let crate_err: dialbridge_sip::Error = err.into();
    assert!(crate_err.to_string().contains("algorithm"));
}
