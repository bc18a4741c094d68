//! Dial-out routing by licence (config faults with their lines, the routes and their
//! defaults, organiser overrides, licence changes) and the dial-out's capacity
//! reservation, which shares its counters with calls in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use dialbridge_router::{
    BridgeSpec, Charge, E164, Error, Licence, NumberKind, NumberSpec, Numbering, Plan,
    RejectReason, Router, TrunkId, TrunkSpec,
};

const BASE: &str = r#"
[numbering]
default_country_code = "1"

[[trunk]]
name = "microsoft-pstn"
provider = "Microsoft"
addresses = ["127.0.0.10"]
max_sessions = 2000
outbound = "127.0.0.10:5080"

[[trunk]]
name = "telco-a"
provider = "Telco A"
addresses = ["127.0.0.20"]
max_sessions = 500
outbound = "127.0.0.20:5080"

[[trunk]]
name = "telco-b"
provider = "Telco B"
addresses = ["127.0.0.30"]
max_sessions = 500
outbound = "[::1]:5080"

[[trunk]]
name = "inbound-only"
provider = "Telco C"
addresses = ["127.0.0.40"]
max_sessions = 10

[softphones]
name = "softphones"
max_sessions = 200

[[tenant]]
name = "contoso"
licence = "audio-conferencing-standard"

[[tenant]]
name = "fabrikam"
licence = "operator-connect-conferencing"

[[bridge]]
name = "contoso-bridge"
tenant = "contoso"
capacity = 1000

[[bridge]]
name = "fabrikam-bridge"
tenant = "fabrikam"
capacity = 1000
"#;

fn load(text: &str) -> Result<Plan, String> {
    Plan::from_toml_str(Path::new("x.toml"), text).map_err(|e| e.to_string())
}

/// BASE with `lines` added under the tenant `[[tenant]] name = "<tenant>"`.
fn with_tenant_keys(tenant: &str, lines: &str) -> String {
    let anchor = format!("name = \"{tenant}\"\n");
    BASE.replacen(&anchor, &format!("{anchor}{lines}\n"), 1)
}

/// 1-based line of the last `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.rfind(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

fn assert_fault(text: &str, needle: &str, message: &str) {
    let got = load(text).expect_err("the config should be refused");
    let want = format!("x.toml:{}: {message}", line_of(text, needle));
    assert!(got.contains(&want), "got:\n{got}\nwant:\n{want}");
}

fn names(router: &Router, trunks: &[TrunkId]) -> Vec<String> {
    trunks
        .iter()
        .map(|t| router.trunk(*t).unwrap().name.to_string())
        .collect()
}

fn route(router: &Router, tenant: &str, organiser: Option<&str>) -> Vec<String> {
    names(router, &router.dial_out_trunks(tenant, organiser).unwrap())
}

#[test]
fn outbound_targets_are_read_and_optional() {
    let router = Router::new(load(BASE).unwrap());
    let target = |name: &str| router.trunk(router.trunk_by_name(name).unwrap()).unwrap();
    assert_eq!(
        target("microsoft-pstn").outbound,
        Some("127.0.0.10:5080".parse().unwrap())
    );
    assert_eq!(
        target("telco-b").outbound,
        Some("[::1]:5080".parse().unwrap())
    );
    assert_eq!(target("inbound-only").outbound, None);
    assert_eq!(target("softphones").outbound, None);
    let listed: Vec<(String, Option<SocketAddr>)> = router
        .trunks()
        .into_iter()
        .map(|(_, t)| (t.name.to_string(), t.outbound))
        .collect();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0].0, "microsoft-pstn");
    assert_eq!(listed[4], ("softphones".to_string(), None));
}

#[test]
fn a_bad_outbound_target_names_its_line() {
    for bad in [
        "sbc.example.com:5060",
        "127.0.0.20",
        "127.0.0.20:0",
        "0.0.0.0:5060",
    ] {
        let text = BASE.replace(
            "outbound = \"127.0.0.20:5080\"",
            &format!("outbound = \"{bad}\""),
        );
        assert_fault(
            &text,
            &format!("outbound = \"{bad}\""),
            &format!(
                "outbound target \"{bad}\" of trunk \"telco-a\" is not an IP address and port"
            ),
        );
    }
}

#[test]
fn default_routes_follow_the_licence_microsoft_first() {
    // Telco A defined before Microsoft: Microsoft still comes first for Standard.
    let text = BASE.replacen(
        "[[trunk]]\nname = \"microsoft-pstn\"",
        "[[trunk]]\nname = \"telco-0\"\nprovider = \"Telco 0\"\naddresses = [\"127.0.0.50\"]\nmax_sessions = 5\noutbound = \"127.0.0.50:5080\"\n\n[[trunk]]\nname = \"microsoft-pstn\"",
        1,
    );
    let router = Router::new(load(&text).unwrap());
    assert_eq!(
        route(&router, "contoso", None),
        ["microsoft-pstn", "telco-0", "telco-a", "telco-b"]
    );
    assert_eq!(
        route(&router, "fabrikam", Some("ravi@fabrikam.com")),
        ["telco-0", "telco-a", "telco-b"]
    );
    let refused = router.dial_out_trunks("initech", None).unwrap_err();
    assert_eq!(refused.reason, RejectReason::NoDialOutRoute);
    assert_eq!(
        router.snapshot().rejected.get(RejectReason::NoDialOutRoute),
        1
    );
}

#[test]
fn a_tenant_route_is_kept_in_order_and_an_empty_one_refuses() {
    let text = with_tenant_keys(
        "contoso",
        "dial_out_route = [\"telco-a\", \"microsoft-pstn\"]",
    );
    let text = text.replacen(
        "name = \"fabrikam\"\n",
        "name = \"fabrikam\"\ndial_out_route = []\n",
        1,
    );
    let router = Router::new(load(&text).unwrap());
    assert_eq!(
        route(&router, "contoso", None),
        ["telco-a", "microsoft-pstn"]
    );
    assert_eq!(
        router.dial_out_trunks("fabrikam", None).unwrap_err().reason,
        RejectReason::NoDialOutRoute
    );
}

#[test]
fn route_faults_name_file_and_line() {
    let text = with_tenant_keys(
        "fabrikam",
        "dial_out_route = [\n  \"telco-b\",\n  \"microsoft-pstn\",\n]",
    );
    assert_fault(
        &text,
        "  \"microsoft-pstn\",",
        "dial-out route of tenant \"fabrikam\" names Microsoft trunk \"microsoft-pstn\": tenant \"fabrikam\" has an Operator Connect Conferencing licence (dial-outs through operator trunks only)",
    );
    let text = with_tenant_keys("contoso", "dial_out_route = [\"telco-z\"]");
    assert_fault(
        &text,
        "[\"telco-z\"]",
        "dial-out route of tenant \"contoso\" names trunk \"telco-z\", which does not exist",
    );
    let text = with_tenant_keys("contoso", "dial_out_route = [\"inbound-only\"]");
    assert_fault(
        &text,
        "[\"inbound-only\"]",
        "dial-out route of tenant \"contoso\" names trunk \"inbound-only\", which has no outbound target",
    );
    let text = with_tenant_keys("contoso", "dial_out_route = [\"softphones\"]");
    assert_fault(
        &text,
        "[\"softphones\"]",
        "dial-out route of tenant \"contoso\" names trunk \"softphones\", which does not exist",
    );
    let text = with_tenant_keys("contoso", "dial_out_route = [\"telco-a\",\n \"telco-a\"]");
    assert_fault(
        &text,
        " \"telco-a\"]",
        "dial-out route of tenant \"contoso\" names trunk \"telco-a\" twice",
    );
    // A trunk refused for its own fault is not faulted again in a route.
    let text = with_tenant_keys("contoso", "dial_out_route = [\"telco-a\"]")
        .replace("outbound = \"127.0.0.20:5080\"", "outbound = \"nowhere\"");
    let got = load(&text).unwrap_err();
    assert_eq!(got.lines().count(), 1, "{got}");
}

#[test]
fn an_organiser_override_comes_first_and_is_licence_checked() {
    let text = format!(
        "{}\n[[dial_out_override]]\ntenant = \"contoso\"\norganiser = \"Megan@Contoso.com\"\nroute = [\"telco-b\"]\n",
        with_tenant_keys(
            "contoso",
            "dial_out_route = [\"microsoft-pstn\", \"telco-a\"]"
        )
    );
    let router = Router::new(load(&text).unwrap());
    assert_eq!(
        route(&router, "contoso", Some("megan@contoso.com")),
        ["telco-b"]
    );
    assert_eq!(
        route(&router, "contoso", Some("adele@contoso.com")),
        ["microsoft-pstn", "telco-a"]
    );
    assert_eq!(
        route(&router, "contoso", None),
        ["microsoft-pstn", "telco-a"]
    );

    let bad = format!(
        "{BASE}\n[[dial_out_override]]\ntenant = \"fabrikam\"\norganiser = \"ravi@fabrikam.com\"\nroute = [\"microsoft-pstn\"]\n"
    );
    assert_fault(
        &bad,
        "route = [\"microsoft-pstn\"]",
        "dial-out route of organiser \"ravi@fabrikam.com\" of tenant \"fabrikam\" names Microsoft trunk \"microsoft-pstn\"",
    );
    let unknown = format!(
        "{BASE}\n[[dial_out_override]]\ntenant = \"initech\"\norganiser = \"x@initech.com\"\nroute = [\"telco-a\"]\n"
    );
    assert_fault(
        &unknown,
        "tenant = \"initech\"",
        "tenant \"initech\" is not in the plan",
    );
    let twice = format!(
        "{BASE}\n[[dial_out_override]]\ntenant = \"contoso\"\norganiser = \"megan@contoso.com\"\nroute = [\"telco-a\"]\n\n[[dial_out_override]]\ntenant = \"contoso\"\norganiser = \" MEGAN@contoso.com\"\nroute = [\"telco-b\"]\n"
    );
    assert_fault(
        &twice,
        "organiser = \" MEGAN@contoso.com\"",
        "organiser \" MEGAN@contoso.com\" of tenant \"contoso\" has more than one dial-out override",
    );
    let empty = format!(
        "{BASE}\n[[dial_out_override]]\ntenant = \"contoso\"\norganiser = \" \"\nroute = [\"telco-a\"]\n"
    );
    assert_fault(
        &empty,
        "organiser = \" \"",
        "a dial-out override of tenant \"contoso\" names no organiser",
    );
}

#[test]
fn a_licence_changed_live_filters_the_route_at_once() {
    let text = with_tenant_keys(
        "contoso",
        "dial_out_route = [\"microsoft-pstn\", \"telco-a\"]",
    );
    let router = Router::new(load(&text).unwrap());
    router
        .set_tenant_licence("contoso", Licence::OperatorConnectConferencing)
        .unwrap();
    assert_eq!(route(&router, "contoso", None), ["telco-a"]);
    let pstn = router.trunk_by_name("microsoft-pstn").unwrap();
    let refused = router.reserve_dial_out("contoso-bridge", pstn).unwrap_err();
    assert_eq!(refused.reason, RejectReason::LicenceForbidsProvider);
}

#[test]
fn a_reload_brings_new_routes_and_targets() {
    let router = Router::new(load(BASE).unwrap());
    assert_eq!(route(&router, "fabrikam", None), ["telco-a", "telco-b"]);
    let text = with_tenant_keys("fabrikam", "dial_out_route = [\"telco-b\"]").replace(
        "outbound = \"[::1]:5080\"",
        "outbound = \"127.0.0.31:5090\"",
    );
    router.replace_plan(load(&text).unwrap());
    assert_eq!(route(&router, "fabrikam", None), ["telco-b"]);
    let telco_b = router.trunk_by_name("telco-b").unwrap();
    let grant = router.reserve_dial_out("fabrikam-bridge", telco_b).unwrap();
    assert_eq!(grant.target(), "127.0.0.31:5090".parse().unwrap());
    // The trunk leaves the plan: the route skips it, the grant still releases.
    let without = text.replacen(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\naddresses = [\"127.0.0.30\"]\nmax_sessions = 500\noutbound = \"127.0.0.31:5090\"\n",
        "",
        1,
    );
    let without = without.replace("dial_out_route = [\"telco-b\"]\n", "");
    router.replace_plan(load(&without).unwrap());
    assert_eq!(route(&router, "fabrikam", None), ["telco-a"]);
    drop(grant);
    let stats = router.snapshot();
    assert!(stats.trunks.iter().all(|t| t.in_progress == 0));
    assert!(stats.bridges.iter().all(|b| b.in_progress == 0));
}

/// One trunk of 3 sessions and a bridge of 4 calls, shared by calls in and out.
fn small_router() -> Router {
    let mut p = Plan::new(Numbering::new("1").unwrap());
    p.add_trunk(TrunkSpec {
        name: "telco",
        provider: "Telco A",
        addresses: &["10.0.0.2".parse::<IpAddr>().unwrap()],
        max_sessions: 3,
    })
    .unwrap();
    p.set_trunk_outbound("telco", "10.0.0.2:5060".parse().unwrap())
        .unwrap();
    p.add_trunk(TrunkSpec {
        name: "other",
        provider: "Telco B",
        addresses: &["10.0.0.3".parse::<IpAddr>().unwrap()],
        max_sessions: 10,
    })
    .unwrap();
    p.set_trunk_outbound("other", "10.0.0.3:5060".parse().unwrap())
        .unwrap();
    p.set_softphones("softphones", 5).unwrap();
    p.add_tenant("oc", Licence::OperatorConnectConferencing)
        .unwrap();
    p.add_bridge(BridgeSpec {
        name: "b",
        tenant: "oc",
        capacity: 4,
        enabled: true,
    })
    .unwrap();
    p.add_number(NumberSpec {
        number: "+33170000100".parse::<E164>().unwrap(),
        kind: NumberKind::Service,
        charge: Charge::Toll,
        provider: "Telco A",
        bridge: Some("b"),
        capacity: None,
    })
    .unwrap();
    assert_eq!(
        p.set_dial_out_route("oc", &["nope"]),
        Err(Error::UnknownRouteTrunk {
            owner: "tenant \"oc\"".into(),
            trunk: "nope".into()
        })
    );
    assert!(matches!(
        p.set_dial_out_route("nobody", &[]),
        Err(Error::NoSuchTenant(_))
    ));
    Router::new(p)
}

#[test]
fn a_full_trunk_refuses_both_directions_and_a_grant_releases_once() {
    let router = small_router();
    let telco = router.trunk_by_name("telco").unwrap();
    let number: E164 = "+33170000100".parse().unwrap();
    let call_in = router.decide(telco, number).unwrap();
    let out1 = router.reserve_dial_out("b", telco).unwrap();
    let out2 = router.reserve_dial_out("b", telco).unwrap();
    assert_eq!(
        (out1.trunk_name(), out1.bridge(), out1.tenant()),
        ("telco", "b", "oc")
    );
    assert_eq!(out1.target(), "10.0.0.2:5060".parse().unwrap());
    assert_eq!(out1.provider().unwrap().to_string(), "Telco A");
    // The trunk is full (3): both directions are refused.
    assert_eq!(
        router.reserve_dial_out("b", telco).unwrap_err().reason,
        RejectReason::TrunkOverloaded
    );
    assert_eq!(
        router.decide(telco, number).unwrap_err().reason,
        RejectReason::TrunkOverloaded
    );
    // The bridge's 4th session goes out through the other trunk; then it is full.
    let other = router.trunk_by_name("other").unwrap();
    let out3 = router.reserve_dial_out("b", other).unwrap();
    assert_eq!(
        router.reserve_dial_out("b", other).unwrap_err().reason,
        RejectReason::BridgeOverloaded
    );
    let stats = router.snapshot();
    let trunk = |name: &str| stats.trunks.iter().find(|t| &*t.name == name).unwrap();
    assert_eq!(trunk("telco").in_progress, 3);
    assert_eq!(trunk("telco").admitted, 3);
    assert_eq!(
        trunk("telco").rejected.get(RejectReason::TrunkOverloaded),
        2
    );
    assert_eq!(stats.bridges[0].in_progress, 4);
    assert_eq!(stats.admitted, 4);
    drop((call_in, out1, out2, out3));
    let stats = router.snapshot();
    assert!(stats.trunks.iter().all(|t| t.in_progress == 0));
    assert_eq!(stats.bridges[0].in_progress, 0);
    assert!(router.reserve_dial_out("b", telco).is_ok());
}

#[test]
fn a_dial_out_is_refused_in_domain_terms() {
    let router = small_router();
    let telco = router.trunk_by_name("telco").unwrap();
    let softphones = router.softphone_trunk().unwrap();
    let refuse = |bridge: &str, trunk| router.reserve_dial_out(bridge, trunk).unwrap_err().reason;
    assert_eq!(refuse("nope", telco), RejectReason::UnknownBridge);
    assert_eq!(refuse("b", softphones), RejectReason::NoDialOutRoute);
    router.set_bridge_enabled("b", false).unwrap();
    assert_eq!(refuse("b", telco), RejectReason::BridgeDisabled);
    // A trunk gone in a reload.
    let mut p = Plan::new(Numbering::new("1").unwrap());
    p.add_tenant("oc", Licence::OperatorConnectConferencing)
        .unwrap();
    p.add_bridge(BridgeSpec {
        name: "b",
        tenant: "oc",
        capacity: 4,
        enabled: true,
    })
    .unwrap();
    router.replace_plan(p);
    assert_eq!(refuse("b", telco), RejectReason::UnknownTrunk);
    let stats = router.snapshot();
    assert_eq!(stats.rejected.total(), 4);
    assert_eq!(stats.admitted, 0);
    assert!(stats.trunks.iter().all(|t| t.in_progress == 0));
    assert!(stats.bridges.iter().all(|b| b.in_progress == 0));
}
