//! The demo deployment (fixtures/demo.toml) loads and routes as shared/DEMO.md says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;

use dialbridge_router::{Charge, E164, Grant, NumberKind, Plan, RejectReason, Router, TrunkId};

fn router() -> Router {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.toml");
    Router::new(Plan::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

fn trunk(router: &Router, address: &str) -> TrunkId {
    router
        .identify_trunk(address.parse::<IpAddr>().unwrap())
        .unwrap()
}

fn e(s: &str) -> E164 {
    s.parse().unwrap()
}

#[test]
fn trunks_are_identified_by_their_addresses() {
    let r = router();
    for (address, name, max) in [
        ("127.0.0.10", "microsoft-pstn", 2000),
        ("127.0.0.20", "telco-a", 500),
        ("127.0.0.30", "telco-b", 500),
    ] {
        let info = r.trunk(trunk(&r, address)).unwrap();
        assert_eq!((&*info.name, info.max_sessions), (name, max));
    }
    assert_eq!(r.identify_trunk("127.0.0.1".parse().unwrap()), None);
    let softphones = r.trunk(r.softphone_trunk().unwrap()).unwrap();
    assert_eq!(
        (&*softphones.name, softphones.max_sessions),
        ("softphones", 200)
    );
}

#[test]
fn every_demo_number_is_as_documented() {
    let r = router();
    let expect = [
        (
            "+14255550100",
            NumberKind::Service,
            Charge::Toll,
            "Microsoft",
            Some("contoso-bridge"),
            500,
        ),
        (
            "+18885550100",
            NumberKind::Service,
            Charge::TollFree,
            "Microsoft",
            Some("contoso-bridge"),
            500,
        ),
        (
            "+33170000100",
            NumberKind::Service,
            Charge::Toll,
            "Telco A",
            Some("contoso-bridge"),
            200,
        ),
        (
            "+493070000100",
            NumberKind::Service,
            Charge::Toll,
            "Telco B",
            Some("fabrikam-bridge"),
            500,
        ),
        (
            "+14255550123",
            NumberKind::User,
            Charge::Toll,
            "Microsoft",
            Some("contoso-bridge"),
            2,
        ),
        (
            "+14255550999",
            NumberKind::Service,
            Charge::Toll,
            "Microsoft",
            None,
            500,
        ),
    ];
    for (number, kind, charge, provider, bridge, capacity) in expect {
        let info = r.number(e(number)).unwrap();
        assert_eq!(
            (
                info.kind,
                info.charge,
                info.provider.to_string(),
                info.bridge.as_deref(),
                info.capacity
            ),
            (kind, charge, provider.to_owned(), bridge, capacity),
            "{number}"
        );
    }
}

#[test]
fn unassigned_number_is_refused_as_unassigned() {
    let r = router();
    let ms = trunk(&r, "127.0.0.10");
    let rejection = r
        .route(ms, "sip:+14255550999@127.0.0.1:5060;user=phone")
        .unwrap_err();
    assert_eq!(rejection.reason, RejectReason::Unassigned);
}

#[test]
fn telco_a_number_from_the_microsoft_trunk_is_the_wrong_provider() {
    let r = router();
    let ms = trunk(&r, "127.0.0.10");
    let rejection = r.route(ms, "sip:+33170000100@127.0.0.1").unwrap_err();
    assert_eq!(rejection.reason, RejectReason::WrongProvider);
    let telco_a = trunk(&r, "127.0.0.20");
    let grant = r.route(telco_a, "sip:+33170000100@127.0.0.1").unwrap();
    assert_eq!(
        (grant.tenant(), grant.bridge()),
        ("contoso", "contoso-bridge")
    );
}

#[test]
fn third_call_to_the_user_number_finds_it_busy() {
    let r = router();
    let ms = trunk(&r, "127.0.0.10");
    let _first = r.route(ms, "sip:+14255550123@127.0.0.1").unwrap();
    let _second = r.route(ms, "tel:+1-425-555-0123").unwrap();
    let third = r.route(ms, "sip:4255550123@127.0.0.1").unwrap_err();
    assert_eq!(third.reason, RejectReason::NumberBusy);
}

#[test]
fn call_201_to_the_telco_a_number_finds_it_busy_while_200_are_held() {
    let r = router();
    let telco_a = trunk(&r, "127.0.0.20");
    let held: Vec<Grant> = (0..200)
        .map(|_| r.decide(telco_a, e("+33170000100")).unwrap())
        .collect();
    let refused = r.decide(telco_a, e("+33170000100")).unwrap_err();
    assert_eq!(refused.reason, RejectReason::NumberBusy);
    drop(held);
    assert!(r.decide(telco_a, e("+33170000100")).is_ok());
}

#[test]
fn fabrikam_takes_operator_numbers_and_softphones_reach_any_assigned_number() {
    let r = router();
    let telco_b = trunk(&r, "127.0.0.30");
    let grant = r.route(telco_b, "sip:+493070000100@127.0.0.1").unwrap();
    assert_eq!(
        (grant.tenant(), grant.bridge()),
        ("fabrikam", "fabrikam-bridge")
    );
    let softphones = r.softphone_trunk().unwrap();
    for number in [
        "+14255550100",
        "+18885550100",
        "+33170000100",
        "+493070000100",
        "+14255550123",
    ] {
        let grant = r.decide(softphones, e(number)).unwrap();
        assert!(grant.via_softphone());
    }
    assert_eq!(
        r.decide(softphones, e("+14255550999")).unwrap_err().reason,
        RejectReason::Unassigned
    );
}

/// 555000111 is a conference ID keyed after the call is up (the conference layer's
/// business): dialled as a number it is just an unknown number.
#[test]
fn a_conference_id_is_not_a_number_the_router_knows() {
    let r = router();
    let ms = trunk(&r, "127.0.0.10");
    assert_eq!(
        r.route(ms, "sip:555000111@127.0.0.1").unwrap_err().reason,
        RejectReason::UnknownNumber
    );
}

/// The listing the admin API shows follows the live plan: API changes, a held call,
/// and a reload that drops a number.
#[test]
fn numbers_and_bridges_are_listed_as_the_plan_is_now() {
    let r = router();
    let demo = [
        "+14255550100",
        "+14255550123",
        "+14255550999",
        "+18885550100",
        "+33170000100",
        "+493070000100",
    ];
    assert_eq!(r.numbers(), demo.map(e).to_vec());
    let bridges = r.bridges();
    let names: Vec<(&str, &str, u32, bool)> = bridges
        .iter()
        .map(|b| (&*b.name, &*b.tenant, b.capacity, b.enabled))
        .collect();
    assert_eq!(
        names,
        [
            ("contoso-bridge", "contoso", 1000, true),
            ("fabrikam-bridge", "fabrikam", 1000, true)
        ]
    );

    r.set_bridge_enabled("fabrikam-bridge", false).unwrap();
    r.set_bridge_capacity("contoso-bridge", 7).unwrap();
    let held = r
        .decide(trunk(&r, "127.0.0.10"), e("+14255550100"))
        .unwrap();
    let contoso = r.bridge("contoso-bridge").unwrap();
    assert_eq!((contoso.capacity, contoso.in_progress), (7, 1));
    assert!(!r.bridge("fabrikam-bridge").unwrap().enabled);
    assert!(r.bridge("nobody").is_none());
    drop(held);
    assert_eq!(r.bridge("contoso-bridge").unwrap().in_progress, 0);

    // A reload without +14255550999 takes it out of the listing.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[[number]]\ne164 = \"+14255550999\"").unwrap();
    let end = text[start + 1..]
        .find("[[")
        .map_or(text.len(), |i| start + 1 + i);
    let reduced = format!("{}{}", &text[..start], &text[end..]);
    r.replace_plan(Plan::from_toml_str(&path, &reduced).unwrap());
    assert!(!r.numbers().contains(&e("+14255550999")));
    assert_eq!(r.numbers().len(), demo.len() - 1);
}

/// shared/DEMO.md "Dial-out": each trunk's outbound target, and each tenant's route.
#[test]
fn dial_outs_leave_through_the_documented_trunks_and_targets() {
    let r = router();
    for (name, target) in [
        ("microsoft-pstn", "127.0.0.10:5080"),
        ("telco-a", "127.0.0.20:5080"),
        ("telco-b", "127.0.0.30:5080"),
    ] {
        let info = r.trunk(r.trunk_by_name(name).unwrap()).unwrap();
        assert_eq!(info.outbound, Some(target.parse().unwrap()), "{name}");
    }
    let route = |tenant: &str| -> Vec<String> {
        r.dial_out_trunks(tenant, None)
            .unwrap()
            .into_iter()
            .map(|t| r.trunk(t).unwrap().name.to_string())
            .collect()
    };
    assert_eq!(route("contoso"), ["microsoft-pstn", "telco-a"]);
    assert_eq!(route("fabrikam"), ["telco-b"]);
    // Whatever the caller picks, fabrikam never leaves through Microsoft.
    let pstn = r.trunk_by_name("microsoft-pstn").unwrap();
    assert_eq!(
        r.reserve_dial_out("fabrikam-bridge", pstn)
            .unwrap_err()
            .reason,
        RejectReason::LicenceForbidsProvider
    );
    let grant = r
        .reserve_dial_out("fabrikam-bridge", r.trunk_by_name("telco-b").unwrap())
        .unwrap();
    assert_eq!(grant.target(), "127.0.0.30:5080".parse().unwrap());
}
