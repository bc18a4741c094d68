//! Config faults: each one refused with the file, the line of the value at fault, and why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use dialbridge_router::{Error, Plan};

const BASE: &str = r#"
[sip]
udp = "127.0.0.1:5060"

[numbering]
default_country_code = "1"

[[trunk]]
name = "microsoft-pstn"
provider = "Microsoft"
addresses = ["127.0.0.10"]
max_sessions = 2000

[[trunk]]
name = "telco-a"
provider = "Telco A"
addresses = ["127.0.0.20"]
max_sessions = 500

[softphones]
name = "softphones"
realm = "dialbridge"
max_sessions = 200

[[softphones.account]]
user = "alice"
password = "alice-secret"

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

[[number]]
e164 = "+14255550100"
kind = "service"
charge = "toll"
provider = "Microsoft"
bridge = "contoso-bridge"
"#;

/// The error text for `text`, loaded as `x.toml`.
fn refuse(text: &str) -> String {
    Plan::from_toml_str(Path::new("x.toml"), text)
        .expect_err("the config should be refused")
        .to_string()
}

/// 1-based line of the (unique) `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "needle {needle:?} must be unique"
    );
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

/// Asserts that `text` with `extra` appended is refused at the line of `needle`.
fn assert_fault(extra: &str, needle: &str, message: &str) {
    let text = format!("{BASE}{extra}");
    let got = refuse(&text);
    let want = format!("x.toml:{}: {message}", line_of(&text, needle));
    assert!(got.contains(&want), "got:\n{got}\nwant:\n{want}");
}

#[test]
fn the_base_config_loads() {
    let plan = Plan::from_toml_str(Path::new("x.toml"), BASE).unwrap();
    assert_eq!(plan.number_count(), 1);
}

#[test]
fn microsoft_number_on_an_operator_connect_bridge() {
    assert_fault(
        "[[number]]\ne164 = \"+14255550101\"\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\nbridge = \"fabrikam-bridge\"\n",
        "bridge = \"fabrikam-bridge\"\n",
        "Microsoft number +14255550101 cannot be assigned to bridge \"fabrikam-bridge\": tenant \"fabrikam\" has an Operator Connect Conferencing licence",
    );
}

#[test]
fn number_assigned_to_a_missing_bridge() {
    assert_fault(
        "[[number]]\ne164 = \"+14255550101\"\nkind = \"user\"\ncharge = \"toll\"\nprovider = \"Telco A\"\nbridge = \"nope\"\n",
        "bridge = \"nope\"",
        "number +14255550101 is assigned to bridge \"nope\", which does not exist",
    );
}

#[test]
fn bridge_of_an_unknown_tenant() {
    assert_fault(
        "[[bridge]]\nname = \"x-bridge\"\ntenant = \"initech\"\ncapacity = 10\n",
        "tenant = \"initech\"",
        "bridge \"x-bridge\" belongs to tenant \"initech\", which does not exist",
    );
}

#[test]
fn duplicate_number() {
    assert_fault(
        "[[number]]\ne164 = \"+14255550100\" # again\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\n",
        "\"+14255550100\" # again",
        "number +14255550100 is defined more than once",
    );
}

#[test]
fn duplicate_trunk_address() {
    assert_fault(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\naddresses = [\"127.0.0.30\",\n \"127.0.0.20\"]\nmax_sessions = 5\n",
        " \"127.0.0.20\"]",
        "address 127.0.0.20 of trunk \"telco-b\" already belongs to trunk \"telco-a\"",
    );
}

#[test]
fn trunk_without_addresses() {
    assert_fault(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\naddresses = []\nmax_sessions = 5\n",
        "addresses = []",
        "trunk \"telco-b\" has no source addresses",
    );
    assert_fault(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\nmax_sessions = 5\n",
        "name = \"telco-b\"",
        "trunk \"telco-b\" has no source addresses",
    );
}

#[test]
fn address_that_is_no_ip() {
    assert_fault(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\naddresses = [\"sbc.example\"]\nmax_sessions = 5\n",
        "[\"sbc.example\"]",
        "address \"sbc.example\" of trunk \"telco-b\" is not an IP address",
    );
}

#[test]
fn malformed_e164() {
    assert_fault(
        "[[number]]\ne164 = \"425-555-0199\"\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\n",
        "e164 = \"425-555-0199\"",
        "\"425-555-0199\" is not an E.164 number",
    );
    assert_fault(
        "[[number]]\ne164 = \"+1425\"\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\n",
        "e164 = \"+1425\"",
        "\"+1425\" is not an E.164 number written as + and 7 to 15 digits: 4 digits are too few",
    );
}

#[test]
fn zero_capacities() {
    assert_fault(
        "[[number]]\ne164 = \"+14255550101\"\nkind = \"user\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\ncapacity = 0\n",
        "capacity = 0",
        "capacity of number +14255550101 must be at least 1",
    );
    assert_fault(
        "[[bridge]]\nname = \"x-bridge\"\ntenant = \"contoso\"\ncapacity = 0\n",
        "capacity = 0",
        "capacity of bridge \"x-bridge\" must be at least 1",
    );
    assert_fault(
        "[[trunk]]\nname = \"telco-b\"\nprovider = \"Telco B\"\naddresses = [\"127.0.0.30\"]\nmax_sessions = 0\n",
        "max_sessions = 0",
        "capacity of trunk \"telco-b\" must be at least 1",
    );
    let text = BASE.replace("max_sessions = 200\n", "max_sessions = 0\n");
    let got = refuse(&text);
    let want = format!(
        "x.toml:{}: capacity of softphones \"softphones\" must be at least 1",
        line_of(&text, "max_sessions = 0")
    );
    assert!(got.contains(&want), "{got}");
    let text = BASE.replace(
        "default_country_code = \"1\"",
        "default_country_code = \"1\"\nuser_number_capacity = 0",
    );
    assert!(
        refuse(&text).contains(&format!(
            "x.toml:{}: capacity of user numbers by default must be at least 1",
            line_of(&text, "user_number_capacity = 0")
        )),
        "{}",
        refuse(&text)
    );
}

#[test]
fn duplicate_names() {
    assert_fault(
        "[[tenant]]\nname = \"contoso\" # twice\nlicence = \"audio-conferencing-standard\"\n",
        "\"contoso\" # twice",
        "tenant \"contoso\" is defined more than once",
    );
    assert_fault(
        "[[bridge]]\nname = \"contoso-bridge\" # twice\ntenant = \"contoso\"\ncapacity = 3\n",
        "\"contoso-bridge\" # twice",
        "bridge \"contoso-bridge\" is defined more than once",
    );
    // Trunks are loaded before the softphone pseudo-trunk, which is then the duplicate.
    assert_fault(
        "[[trunk]]\nname = \"softphones\"\nprovider = \"Telco B\"\naddresses = [\"127.0.0.30\"]\nmax_sessions = 5\n",
        "name = \"softphones\"\nrealm",
        "trunk \"softphones\" is defined more than once",
    );
}

#[test]
fn bad_numbering() {
    let text = BASE.replace(
        "default_country_code = \"1\"",
        "default_country_code = \"01\"",
    );
    assert!(refuse(&text).contains(&format!(
        "x.toml:{}: country code \"01\" must be 1 to 3 digits",
        line_of(&text, "\"01\"")
    )));
    let text = BASE.replace(
        "default_country_code = \"1\"",
        "default_country_code = \"1\"\nnational_prefix = \"x\"",
    );
    assert!(refuse(&text).contains(&format!(
        "x.toml:{}: dialling prefix \"x\" must be 1 to 4 digits",
        line_of(&text, "\"x\"")
    )));
    let text = BASE.replace("[numbering]\ndefault_country_code = \"1\"\n", "");
    assert!(
        refuse(&text).contains("x.toml:1: missing section [numbering]"),
        "{}",
        refuse(&text)
    );
}

#[test]
fn syntax_and_shape_errors_name_their_line() {
    let text = BASE.replace(
        "licence = \"operator-connect-conferencing\"",
        "licence = \"gold\"",
    );
    let got = refuse(&text);
    assert!(
        got.starts_with(&format!(
            "x.toml:{}: unknown variant `gold`",
            line_of(&text, "\"gold\"")
        )),
        "{got}"
    );
    let text = format!(
        "{BASE}[[bridge]]\nname = \"y\"\ntenant = \"contoso\"\ncapacity = 3\ncapactiy = 4\n"
    );
    let got = refuse(&text);
    assert!(
        got.starts_with(&format!(
            "x.toml:{}: unknown field `capactiy`",
            line_of(&text, "capactiy")
        )),
        "{got}"
    );
    let got = refuse("[numbering\n");
    assert!(got.starts_with("x.toml:1: "), "{got}");
    let got = refuse(&BASE.replace("capacity = 1000", "capacity = -1"));
    assert!(got.contains("x.toml:"), "{got}");
}

#[test]
fn several_faults_are_reported_at_once_in_file_order() {
    let extra = "[[bridge]]\nname = \"x-bridge\"\ntenant = \"initech\"\ncapacity = 10\n\n\
                 [[number]]\ne164 = \"+14255550101\"\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\nbridge = \"x-bridge\"\n\n\
                 [[number]]\ne164 = \"+14255550102\"\nkind = \"service\"\ncharge = \"toll\"\nprovider = \"Microsoft\"\nbridge = \"nope\"\ncapacity = 3\n";
    let text = format!("{BASE}{extra}");
    let err = Plan::from_toml_str(Path::new("x.toml"), &text).unwrap_err();
    // The number on the refused bridge is not faulted a second time.
    assert_eq!(err.faults.len(), 2, "{err}");
    assert!(matches!(err.faults[0].error, Error::UnknownTenant { .. }));
    assert!(matches!(err.faults[1].error, Error::UnknownBridge { .. }));
    assert_eq!(err.faults[0].line, Some(line_of(&text, "\"initech\"")));
    assert_eq!(err.faults[1].line, Some(line_of(&text, "\"nope\"")));
    assert_eq!(err.to_string().lines().count(), 2);
}

#[test]
fn an_unreadable_file_names_the_file() {
    let err = Plan::load(Path::new("/nonexistent/dialbridge.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dialbridge.toml: cannot read the file"),
        "{err}"
    );
}

#[test]
fn symmetric_rtp_is_per_trunk_and_a_bad_value_names_its_line() {
    let text = BASE.replace(
        "addresses = [\"127.0.0.20\"]",
        "addresses = [\"127.0.0.20\"]\nsymmetric_rtp = true",
    );
    let router =
        dialbridge_router::Router::new(Plan::from_toml_str(Path::new("x.toml"), &text).unwrap());
    let on = |address: &str| {
        let trunk = router.identify_trunk(address.parse().unwrap()).unwrap();
        router.symmetric_rtp(trunk)
    };
    // Trunks default off, softphones on.
    assert!(!on("127.0.0.10"));
    assert!(on("127.0.0.20"));
    assert!(router.symmetric_rtp(router.softphone_trunk().unwrap()));
    let text = BASE.replace(
        "realm = \"dialbridge\"",
        "realm = \"dialbridge\"\nsymmetric_rtp = false",
    );
    let router =
        dialbridge_router::Router::new(Plan::from_toml_str(Path::new("x.toml"), &text).unwrap());
    assert!(!router.symmetric_rtp(router.softphone_trunk().unwrap()));

    let text = BASE.replace(
        "addresses = [\"127.0.0.20\"]",
        "addresses = [\"127.0.0.20\"]\nsymmetric_rtp = \"yes\"",
    );
    let got = refuse(&text);
    assert!(
        got.starts_with(&format!(
            "x.toml:{}: invalid type: string \"yes\", expected a boolean",
            line_of(&text, "\"yes\"")
        )),
        "{got}"
    );
}

#[test]
fn trunk_security_is_per_trunk_and_off_by_default() {
    let router =
        dialbridge_router::Router::new(Plan::from_toml_str(Path::new("x.toml"), BASE).unwrap());
    let ms = router
        .identify_trunk("127.0.0.10".parse().unwrap())
        .unwrap();
    assert_eq!(
        router.trunk_policy(ms),
        dialbridge_router::TrunkPolicy::default()
    );
    let text = BASE.replace(
        "addresses = [\"127.0.0.10\"]",
        "addresses = [\"127.0.0.10\"]\nrequire_tls = true\nrequire_srtp = true\n\
         sdes_over_plain_transport = true\ntls_names = [\"SBC1.example.com\", \"sbc2.example.com\"]",
    );
    let router =
        dialbridge_router::Router::new(Plan::from_toml_str(Path::new("x.toml"), &text).unwrap());
    let ms = router
        .identify_trunk("127.0.0.10".parse().unwrap())
        .unwrap();
    let telco = router
        .identify_trunk("127.0.0.20".parse().unwrap())
        .unwrap();
    assert_eq!(
        router.trunk_policy(ms),
        dialbridge_router::TrunkPolicy {
            require_tls: true,
            require_srtp: true,
            sdes_over_plain_transport: true,
            requires_certificate: true,
        }
    );
    assert_eq!(
        router.trunk_policy(telco),
        dialbridge_router::TrunkPolicy::default()
    );
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        router.trunks_by_certificate(&names(&["sbc1.example.com"])),
        [ms]
    );
    assert_eq!(
        router.trunks_by_certificate(&names(&["sbc2.example.com", "sbc1.example.com"])),
        [ms]
    );
    assert!(
        router
            .trunks_by_certificate(&names(&["sbc3.example.com"]))
            .is_empty()
    );
}

#[test]
fn a_bad_or_shared_tls_name_names_its_line() {
    assert_fault(
        "[[trunk]]\nname = \"t\"\nprovider = \"T\"\naddresses = [\"10.0.0.1\"]\nmax_sessions = 1\n\
         tls_names = [\"ok.example.com\", \"*.example.com\"]\n",
        "\"*.example.com\"",
        "TLS name \"*.example.com\" of trunk \"t\" is not a DNS name",
    );
    let text = BASE.replace(
        "addresses = [\"127.0.0.10\"]",
        "addresses = [\"127.0.0.10\"]\ntls_names = [\"sbc1.example.com\"]",
    );
    let text = text.replace(
        "addresses = [\"127.0.0.20\"]",
        "addresses = [\"127.0.0.20\"]\ntls_names = [\"SBC1.example.com\"]",
    );
    let got = refuse(&text);
    let want = format!(
        "x.toml:{}: TLS name \"sbc1.example.com\" of trunk \"telco-a\" already names trunk \"microsoft-pstn\"",
        line_of(&text, "\"SBC1.example.com\"")
    );
    assert!(got.contains(&want), "got:\n{got}\nwant:\n{want}");
    let text = BASE.replace(
        "addresses = [\"127.0.0.10\"]",
        "addresses = [\"127.0.0.10\"]\nrequire_tls = \"yes\"",
    );
    assert!(
        refuse(&text).starts_with(&format!("x.toml:{}:", line_of(&text, "\"yes\""))),
        "{}",
        refuse(&text)
    );
}
