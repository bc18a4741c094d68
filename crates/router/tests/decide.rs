//! Every branch of `decide()`, the grant's release, and the live changes of the admin API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use dialbridge_router::{
    BridgeSpec, Charge, E164, Error, Grant, Licence, NumberKind, NumberSpec, Numbering, Plan,
    Provider, RejectReason, Rejection, Router, TrunkId, TrunkSpec,
};

fn e(s: &str) -> E164 {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const MS_NUMBER: &str = "+14255550100";
const USER_NUMBER: &str = "+14255550123";
const TELCO_NUMBER: &str = "+33170000100";
const OC_NUMBER: &str = "+493070000100";
const UNASSIGNED: &str = "+14255550999";
const SMALL_BRIDGE_NUMBER: &str = "+14255550200";

/// Trunks ms (Microsoft, max 100), telco (Telco A, max 3), softphones (max 2); tenants
/// std (Standard) and oc (Operator Connect); bridges std-bridge (5), oc-bridge (100),
/// small-bridge (1, std).
fn plan(with_telco: bool) -> Plan {
    let mut p = Plan::new(Numbering::new("1").unwrap());
    p.add_trunk(TrunkSpec {
        name: "ms",
        provider: "Microsoft",
        addresses: &[ip("10.0.0.1")],
        max_sessions: 100,
    })
    .unwrap();
    if with_telco {
        p.add_trunk(TrunkSpec {
            name: "telco",
            provider: "Telco A",
            addresses: &[ip("10.0.0.2"), ip("2001:db8::2")],
            max_sessions: 3,
        })
        .unwrap();
    }
    p.set_softphones("softphones", 2).unwrap();
    p.add_tenant("std", Licence::AudioConferencingStandard)
        .unwrap();
    p.add_tenant("oc", Licence::OperatorConnectConferencing)
        .unwrap();
    for (name, tenant, capacity) in [
        ("std-bridge", "std", 5),
        ("oc-bridge", "oc", 100),
        ("small-bridge", "std", 1),
    ] {
        p.add_bridge(BridgeSpec {
            name,
            tenant,
            capacity,
            enabled: true,
        })
        .unwrap();
    }
    let numbers = [
        (
            MS_NUMBER,
            NumberKind::Service,
            Charge::Toll,
            "Microsoft",
            Some("std-bridge"),
            None,
        ),
        (
            USER_NUMBER,
            NumberKind::User,
            Charge::Toll,
            "Microsoft",
            Some("std-bridge"),
            Some(2),
        ),
        (
            TELCO_NUMBER,
            NumberKind::Service,
            Charge::TollFree,
            "Telco A",
            Some("std-bridge"),
            Some(200),
        ),
        (
            OC_NUMBER,
            NumberKind::Service,
            Charge::Toll,
            "Telco A",
            Some("oc-bridge"),
            None,
        ),
        (
            UNASSIGNED,
            NumberKind::Service,
            Charge::Toll,
            "Microsoft",
            None,
            None,
        ),
        (
            SMALL_BRIDGE_NUMBER,
            NumberKind::Service,
            Charge::Toll,
            "Microsoft",
            Some("small-bridge"),
            None,
        ),
    ];
    for (number, kind, charge, provider, bridge, capacity) in numbers {
        p.add_number(NumberSpec {
            number: e(number),
            kind,
            charge,
            provider,
            bridge,
            capacity,
        })
        .unwrap();
    }
    p
}

struct Fixture {
    router: Router,
    ms: TrunkId,
    telco: TrunkId,
    softphones: TrunkId,
}

fn fixture() -> Fixture {
    let router = Router::new(plan(true));
    let ms = router.identify_trunk(ip("10.0.0.1")).unwrap();
    let telco = router.identify_trunk(ip("10.0.0.2")).unwrap();
    let softphones = router.softphone_trunk().unwrap();
    Fixture {
        router,
        ms,
        telco,
        softphones,
    }
}

fn refused(result: Result<Grant, Rejection>) -> Rejection {
    result.expect_err("the call should be refused")
}

fn in_progress(router: &Router, number: &str) -> u32 {
    router.number_stats(e(number)).map_or(0, |s| s.in_progress)
}

fn bridge_in_progress(router: &Router, bridge: &str) -> u32 {
    let snapshot = router.snapshot();
    snapshot
        .bridges
        .iter()
        .find(|b| &*b.name == bridge)
        .unwrap()
        .in_progress
}

fn trunk_in_progress(router: &Router, trunk: &str) -> u32 {
    let snapshot = router.snapshot();
    snapshot
        .trunks
        .iter()
        .find(|t| &*t.name == trunk)
        .unwrap()
        .in_progress
}

#[test]
fn identifies_trunks_by_source_address() {
    let f = fixture();
    assert_eq!(f.router.identify_trunk(ip("::ffff:10.0.0.1")), Some(f.ms));
    assert_eq!(f.router.identify_trunk(ip("2001:db8::2")), Some(f.telco));
    assert_eq!(f.router.identify_trunk(ip("10.0.0.99")), None);
    assert_ne!(f.softphones, f.ms);
    assert_eq!(f.router.trunk_by_name("telco"), Some(f.telco));
    let info = f.router.trunk(f.telco).unwrap();
    assert_eq!(
        (&*info.name, info.provider, info.max_sessions),
        ("telco", Some(Provider::from_name("Telco A")), 3)
    );
    assert_eq!(f.router.trunk(f.softphones).unwrap().provider, None);
}

#[test]
fn admits_and_the_grant_tells_what_the_call_needs() {
    let f = fixture();
    let g = f.router.decide(f.telco, e(TELCO_NUMBER)).unwrap();
    assert_eq!(g.number(), e(TELCO_NUMBER));
    assert_eq!(
        (g.tenant(), g.bridge(), g.trunk_name()),
        ("std", "std-bridge", "telco")
    );
    assert_eq!(
        (g.kind(), g.charge()),
        (NumberKind::Service, Charge::TollFree)
    );
    assert_eq!(g.provider(), Some(&Provider::from_name("Telco A")));
    assert_eq!(g.trunk(), f.telco);
    assert!(!g.via_softphone());
    assert_eq!(
        (
            in_progress(&f.router, TELCO_NUMBER),
            bridge_in_progress(&f.router, "std-bridge"),
            trunk_in_progress(&f.router, "telco")
        ),
        (1, 1, 1)
    );
    drop(g);
    assert_eq!(
        (
            in_progress(&f.router, TELCO_NUMBER),
            bridge_in_progress(&f.router, "std-bridge"),
            trunk_in_progress(&f.router, "telco")
        ),
        (0, 0, 0)
    );
}

#[test]
fn route_normalises_the_request_uri() {
    let f = fixture();
    let g = f
        .router
        .route(f.ms, "sip:+1-425-555-0100@127.0.0.1;user=phone")
        .unwrap();
    assert_eq!(g.number(), e(MS_NUMBER));
    let g2 = f.router.route(f.ms, "sip:4255550100@127.0.0.1").unwrap();
    assert_eq!(g2.number(), e(MS_NUMBER));
    let r = refused(f.router.route(f.ms, "sip:conference@127.0.0.1"));
    assert_eq!((r.reason, r.number), (RejectReason::NotANumber, None));
}

#[test]
fn unknown_number_is_refused_as_unknown() {
    let f = fixture();
    let r = refused(f.router.decide(f.ms, e("+14255550777")));
    assert_eq!(r.reason, RejectReason::UnknownNumber);
    assert_eq!(r.number, Some(e("+14255550777")));
}

#[test]
fn unassigned_number_is_refused_as_unassigned() {
    let f = fixture();
    let r = refused(f.router.decide(f.ms, e(UNASSIGNED)));
    assert_eq!(
        (r.reason, r.number),
        (RejectReason::Unassigned, Some(e(UNASSIGNED)))
    );
}

#[test]
fn number_of_another_provider_is_refused() {
    let f = fixture();
    let r = refused(f.router.decide(f.ms, e(TELCO_NUMBER)));
    assert_eq!(r.reason, RejectReason::WrongProvider);
    let r = refused(f.router.decide(f.telco, e(MS_NUMBER)));
    assert_eq!(r.reason, RejectReason::WrongProvider);
}

#[test]
fn licence_that_forbids_the_provider_is_refused() {
    let f = fixture();
    f.router
        .set_tenant_licence("std", Licence::OperatorConnectConferencing)
        .unwrap();
    let r = refused(f.router.decide(f.ms, e(MS_NUMBER)));
    assert_eq!(r.reason, RejectReason::LicenceForbidsProvider);
    // Softphones too: the licence is about the bridge, not the caller.
    let r = refused(f.router.decide(f.softphones, e(MS_NUMBER)));
    assert_eq!(r.reason, RejectReason::LicenceForbidsProvider);
    // Operator numbers on the same bridge still work.
    assert!(f.router.decide(f.telco, e(TELCO_NUMBER)).is_ok());
    assert_eq!(
        f.router
            .set_tenant_licence("nobody", Licence::AudioConferencingStandard),
        Err(Error::NoSuchTenant("nobody".into()))
    );
}

#[test]
fn disabled_bridge_refuses() {
    let f = fixture();
    let held = f.router.decide(f.ms, e(MS_NUMBER)).unwrap();
    f.router.set_bridge_enabled("std-bridge", false).unwrap();
    let r = refused(f.router.decide(f.ms, e(MS_NUMBER)));
    assert_eq!(r.reason, RejectReason::BridgeDisabled);
    // The call in progress keeps its reservation.
    assert_eq!(bridge_in_progress(&f.router, "std-bridge"), 1);
    drop(held);
    f.router.set_bridge_enabled("std-bridge", true).unwrap();
    assert!(f.router.decide(f.ms, e(MS_NUMBER)).is_ok());
    assert_eq!(
        f.router.set_bridge_enabled("nope", true),
        Err(Error::NoSuchBridge("nope".into()))
    );
}

#[test]
fn number_at_its_capacity_is_busy() {
    let f = fixture();
    let a = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    let _b = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    let r = refused(f.router.decide(f.ms, e(USER_NUMBER)));
    assert_eq!(r.reason, RejectReason::NumberBusy);
    // Nothing leaked by the refusal: bridge and trunk count the two calls only.
    assert_eq!(
        (
            bridge_in_progress(&f.router, "std-bridge"),
            trunk_in_progress(&f.router, "ms")
        ),
        (2, 2)
    );
    drop(a);
    assert!(f.router.decide(f.ms, e(USER_NUMBER)).is_ok());
}

#[test]
fn bridge_at_its_capacity_is_overloaded_and_rolls_back_the_number() {
    let f = fixture();
    let _held = f.router.decide(f.ms, e(SMALL_BRIDGE_NUMBER)).unwrap();
    let r = refused(f.router.decide(f.ms, e(SMALL_BRIDGE_NUMBER)));
    assert_eq!(r.reason, RejectReason::BridgeOverloaded);
    assert_eq!(in_progress(&f.router, SMALL_BRIDGE_NUMBER), 1);
    assert_eq!(trunk_in_progress(&f.router, "ms"), 1);
}

#[test]
fn trunk_at_its_maximum_is_overloaded_and_rolls_back_number_and_bridge() {
    let f = fixture();
    let held: Vec<Grant> = (0..3)
        .map(|_| f.router.decide(f.telco, e(TELCO_NUMBER)).unwrap())
        .collect();
    let r = refused(f.router.decide(f.telco, e(OC_NUMBER)));
    assert_eq!(r.reason, RejectReason::TrunkOverloaded);
    assert_eq!(in_progress(&f.router, OC_NUMBER), 0);
    assert_eq!(bridge_in_progress(&f.router, "oc-bridge"), 0);
    assert_eq!(trunk_in_progress(&f.router, "telco"), 3);
    drop(held);
    assert_eq!(trunk_in_progress(&f.router, "telco"), 0);
}

#[test]
fn softphones_reach_any_assigned_number_within_their_sessions() {
    let f = fixture();
    let a = f.router.decide(f.softphones, e(TELCO_NUMBER)).unwrap();
    assert!(a.via_softphone());
    let _b = f.router.decide(f.softphones, e(MS_NUMBER)).unwrap();
    let r = refused(f.router.decide(f.softphones, e(OC_NUMBER)));
    assert_eq!(r.reason, RejectReason::TrunkOverloaded);
    assert_eq!(
        refused(f.router.decide(f.softphones, e(UNASSIGNED))).reason,
        RejectReason::Unassigned
    );
    drop(a);
    assert!(f.router.decide(f.softphones, e(OC_NUMBER)).is_ok());
}

#[test]
fn a_trunk_removed_by_a_reload_is_unknown_and_its_calls_release_cleanly() {
    let f = fixture();
    let held = f.router.decide(f.telco, e(TELCO_NUMBER)).unwrap();
    f.router.replace_plan(plan(false));
    assert_eq!(f.router.identify_trunk(ip("10.0.0.2")), None);
    let r = refused(f.router.decide(f.telco, e(TELCO_NUMBER)));
    assert_eq!(r.reason, RejectReason::UnknownTrunk);
    assert_eq!(trunk_in_progress(&f.router, "telco"), 1);
    drop(held);
    assert_eq!(trunk_in_progress(&f.router, "telco"), 0);
    assert_eq!(in_progress(&f.router, TELCO_NUMBER), 0);
    // Back in the next plan: the same id again.
    f.router.replace_plan(plan(true));
    assert_eq!(f.router.identify_trunk(ip("10.0.0.2")), Some(f.telco));
}

#[test]
fn moving_a_number_while_a_call_is_up_releases_into_the_old_bridge() {
    let f = fixture();
    let old = f.router.decide(f.telco, e(TELCO_NUMBER)).unwrap();
    f.router
        .assign_number(e(TELCO_NUMBER), "oc-bridge")
        .unwrap();
    let new = f.router.decide(f.telco, e(TELCO_NUMBER)).unwrap();
    assert_eq!((old.bridge(), new.bridge()), ("std-bridge", "oc-bridge"));
    assert_eq!(new.tenant(), "oc");
    assert_eq!(in_progress(&f.router, TELCO_NUMBER), 2);
    drop(old);
    assert_eq!(
        (
            bridge_in_progress(&f.router, "std-bridge"),
            bridge_in_progress(&f.router, "oc-bridge")
        ),
        (0, 1)
    );
    drop(new);
    assert_eq!(bridge_in_progress(&f.router, "oc-bridge"), 0);
    assert_eq!(
        f.router.number(e(TELCO_NUMBER)).unwrap().bridge.as_deref(),
        Some("oc-bridge")
    );
}

#[test]
fn admin_changes_are_checked() {
    let f = fixture();
    assert!(matches!(
        f.router.assign_number(e(MS_NUMBER), "oc-bridge"),
        Err(Error::LicenceForbidsProvider { .. })
    ));
    assert_eq!(
        f.router.assign_number(e("+19999999999"), "std-bridge"),
        Err(Error::NoSuchNumber(e("+19999999999")))
    );
    assert_eq!(
        f.router.assign_number(e(MS_NUMBER), "nope"),
        Err(Error::NoSuchBridge("nope".into()))
    );
    assert!(matches!(
        f.router.set_number_capacity(e(MS_NUMBER), 0),
        Err(Error::ZeroCapacity { .. })
    ));
    assert!(matches!(
        f.router.set_bridge_capacity("std-bridge", 0),
        Err(Error::ZeroCapacity { .. })
    ));
    assert!(matches!(
        f.router.set_trunk_capacity("ms", 0),
        Err(Error::ZeroCapacity { .. })
    ));
    assert_eq!(
        f.router.set_trunk_capacity("nope", 1),
        Err(Error::NoSuchTrunk("nope".into()))
    );
    let spec = NumberSpec {
        number: e(MS_NUMBER),
        kind: NumberKind::Service,
        charge: Charge::Toll,
        provider: "Microsoft",
        bridge: None,
        capacity: None,
    };
    assert_eq!(
        f.router.add_number(spec),
        Err(Error::DuplicateNumber(e(MS_NUMBER)))
    );
    // Unassign then assign back.
    f.router.unassign_number(e(MS_NUMBER)).unwrap();
    assert_eq!(
        refused(f.router.decide(f.ms, e(MS_NUMBER))).reason,
        RejectReason::Unassigned
    );
    f.router.assign_number(e(MS_NUMBER), "std-bridge").unwrap();
    assert!(f.router.decide(f.ms, e(MS_NUMBER)).is_ok());
}

#[test]
fn added_numbers_of_a_new_provider_route_at_once() {
    let f = fixture();
    f.router
        .add_number(NumberSpec {
            number: e("+442079460000"),
            kind: NumberKind::User,
            charge: Charge::Toll,
            provider: "Telco Z",
            bridge: Some("oc-bridge"),
            capacity: None,
        })
        .unwrap();
    let info = f.router.number(e("+442079460000")).unwrap();
    assert_eq!(
        (info.capacity, info.provider.to_string()),
        (4, "Telco Z".to_owned())
    );
    // Only softphones can reach it: no trunk of Telco Z.
    assert_eq!(
        refused(f.router.decide(f.telco, e("+442079460000"))).reason,
        RejectReason::WrongProvider
    );
    assert!(f.router.decide(f.softphones, e("+442079460000")).is_ok());
}

#[test]
fn released_number_keeps_its_calls_counted_when_added_back() {
    let f = fixture();
    let a = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    let b = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    f.router.release_number(e(USER_NUMBER)).unwrap();
    assert_eq!(
        refused(f.router.decide(f.ms, e(USER_NUMBER))).reason,
        RejectReason::UnknownNumber
    );
    assert_eq!(f.router.number(e(USER_NUMBER)), None);
    assert_eq!(
        f.router.release_number(e(USER_NUMBER)),
        Err(Error::NoSuchNumber(e(USER_NUMBER)))
    );
    f.router
        .add_number(NumberSpec {
            number: e(USER_NUMBER),
            kind: NumberKind::User,
            charge: Charge::Toll,
            provider: "Microsoft",
            bridge: Some("std-bridge"),
            capacity: Some(2),
        })
        .unwrap();
    // The two calls still up hold the number's whole capacity.
    assert_eq!(
        refused(f.router.decide(f.ms, e(USER_NUMBER))).reason,
        RejectReason::NumberBusy
    );
    drop((a, b));
    assert_eq!(in_progress(&f.router, USER_NUMBER), 0);
    // Released with no call up: gone from the counters too.
    f.router.release_number(e(USER_NUMBER)).unwrap();
    assert_eq!(f.router.number_stats(e(USER_NUMBER)), None);
}

#[test]
fn a_released_number_with_calls_disappears_when_its_last_call_ends() {
    let f = fixture();
    let a = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    f.router.release_number(e(USER_NUMBER)).unwrap();
    assert_eq!(
        f.router.number_stats(e(USER_NUMBER)).unwrap().in_progress,
        1
    );
    drop(a);
    assert_eq!(f.router.number_stats(e(USER_NUMBER)), None);
}

#[test]
fn lowered_capacities_end_no_call_but_admit_no_new_one() {
    let f = fixture();
    let held: Vec<Grant> = (0..2)
        .map(|_| f.router.decide(f.ms, e(MS_NUMBER)).unwrap())
        .collect();
    f.router.set_number_capacity(e(MS_NUMBER), 1).unwrap();
    assert_eq!(
        refused(f.router.decide(f.ms, e(MS_NUMBER))).reason,
        RejectReason::NumberBusy
    );
    f.router.set_number_capacity(e(MS_NUMBER), 10).unwrap();
    f.router.set_bridge_capacity("std-bridge", 2).unwrap();
    assert_eq!(
        refused(f.router.decide(f.ms, e(MS_NUMBER))).reason,
        RejectReason::BridgeOverloaded
    );
    f.router.set_bridge_capacity("std-bridge", 10).unwrap();
    f.router.set_trunk_capacity("ms", 2).unwrap();
    assert_eq!(
        refused(f.router.decide(f.ms, e(MS_NUMBER))).reason,
        RejectReason::TrunkOverloaded
    );
    assert_eq!(f.router.trunk(f.ms).unwrap().max_sessions, 2);
    drop(held);
    assert!(f.router.decide(f.ms, e(MS_NUMBER)).is_ok());
}

#[test]
fn a_reload_keeps_reservations_and_applies_new_limits_at_once() {
    let f = fixture();
    let held = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    // A reload that lowers the user number to one call: the call up holds it.
    let next = {
        let mut p = Plan::new(Numbering::new("1").unwrap());
        p.add_trunk(TrunkSpec {
            name: "ms",
            provider: "Microsoft",
            addresses: &[ip("10.0.0.1")],
            max_sessions: 100,
        })
        .unwrap();
        p.add_tenant("std", Licence::AudioConferencingStandard)
            .unwrap();
        p.add_bridge(BridgeSpec {
            name: "std-bridge",
            tenant: "std",
            capacity: 5,
            enabled: true,
        })
        .unwrap();
        p.add_number(NumberSpec {
            number: e(USER_NUMBER),
            kind: NumberKind::User,
            charge: Charge::Toll,
            provider: "Microsoft",
            bridge: Some("std-bridge"),
            capacity: Some(1),
        })
        .unwrap();
        p
    };
    f.router.replace_plan(next);
    assert_eq!(
        refused(f.router.decide(f.ms, e(USER_NUMBER))).reason,
        RejectReason::NumberBusy
    );
    assert_eq!(
        refused(f.router.decide(f.ms, e(MS_NUMBER))).reason,
        RejectReason::UnknownNumber
    );
    assert_eq!(f.router.softphone_trunk(), None);
    assert_eq!(bridge_in_progress(&f.router, "std-bridge"), 1);
    drop(held);
    assert_eq!(
        (
            in_progress(&f.router, USER_NUMBER),
            bridge_in_progress(&f.router, "std-bridge")
        ),
        (0, 0)
    );
    assert!(f.router.decide(f.ms, e(USER_NUMBER)).is_ok());
}

#[test]
fn snapshot_counts_admissions_and_refusals_by_reason() {
    let f = fixture();
    let _a = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    let _b = f.router.decide(f.ms, e(USER_NUMBER)).unwrap();
    let _ = f.router.decide(f.ms, e(USER_NUMBER));
    let _ = f.router.decide(f.ms, e(USER_NUMBER));
    let _ = f.router.decide(f.ms, e("+19999999999"));
    let _ = f.router.decide(f.ms, e(TELCO_NUMBER));
    let s = f.router.snapshot();
    assert_eq!(s.admitted, 2);
    assert_eq!(s.rejected.get(RejectReason::NumberBusy), 2);
    assert_eq!(s.rejected.get(RejectReason::UnknownNumber), 1);
    assert_eq!(s.rejected.get(RejectReason::WrongProvider), 1);
    assert_eq!(s.rejected.total(), 4);
    let ms = s.trunks.iter().find(|t| &*t.name == "ms").unwrap();
    assert_eq!(
        (
            ms.in_progress,
            ms.admitted,
            ms.rejected.total(),
            ms.capacity
        ),
        (2, 2, 4, Some(100))
    );
    let bridge = s.bridges.iter().find(|b| &*b.name == "std-bridge").unwrap();
    assert_eq!(
        (bridge.in_progress, bridge.admitted, bridge.rejected.total()),
        (2, 2, 3)
    );
    let user = s
        .numbers
        .iter()
        .find(|n| n.number == e(USER_NUMBER))
        .unwrap();
    assert_eq!(
        (
            user.in_progress,
            user.capacity,
            user.rejected.get(RejectReason::NumberBusy)
        ),
        (2, Some(2), 2)
    );
    let telco = s
        .numbers
        .iter()
        .find(|n| n.number == e(TELCO_NUMBER))
        .unwrap();
    assert_eq!(
        (
            telco.in_progress,
            telco.rejected.get(RejectReason::WrongProvider)
        ),
        (0, 1)
    );
    // Unknown numbers are counted in the totals only: the label set stays bounded.
    assert!(s.numbers.iter().all(|n| n.number != e("+19999999999")));
    assert_eq!(s.numbers.len(), 2);
}
