//! The shipped deployments stay valid: the demo and the container configuration load, the
//! demo cluster's node configurations are what fixtures/cluster/make.sh writes from them
//! and load, and docker-compose.yml parses, with its `cluster` profile (Debian's
//! docker-compose checks it without an engine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use dialbridge_server::config::Config;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_container_config_is_valid() {
    let config = Config::load(&repo().join("fixtures/docker.toml")).unwrap();
    dialbridge_server::plan_from(&config).unwrap();
    assert_eq!(config.sip.contact_host, Some("172.28.0.2".parse().unwrap()));
}

/// The nodes of the demo cluster carry the demo's plan: made again from demo.toml and
/// docker.toml, they are the files shipped, and each loads with its own address behind
/// Kamailio's.
#[test]
fn the_cluster_node_configs_are_made_from_the_demo_and_load() {
    let out = std::env::temp_dir().join(format!("dialbridge-cluster-make-{}", std::process::id()));
    let made = std::process::Command::new(repo().join("fixtures/cluster/make.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for (prefix, net, proxy) in [
        ("node", "127.0.1.", "127.0.0.1"),
        ("docker-node", "172.28.0.1", "172.28.0.5"),
    ] {
        for n in 1..=3 {
            let name = format!("{prefix}{n}.toml");
            let shipped = repo().join("fixtures/cluster").join(&name);
            assert_eq!(
                std::fs::read_to_string(&shipped).unwrap(),
                std::fs::read_to_string(out.join(&name)).unwrap(),
                "fixtures/cluster/{name} is stale: run fixtures/cluster/make.sh"
            );
            let config = Config::load(&shipped).unwrap();
            dialbridge_server::plan_from(&config).unwrap();
            assert_eq!(config.media.address.to_string(), format!("{net}{n}"));
            assert_eq!(config.shared.node, format!("node{n}"));
            assert_eq!(
                config.cluster.trusted_proxies,
                vec![proxy.parse::<std::net::IpAddr>().unwrap()]
            );
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn docker_compose_file_parses() {
    let out = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(repo().join("docker-compose.yml"))
        .args(["--profile", "cluster", "config", "-q"])
        .output()
        .expect("docker-compose is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_binary_refuses_a_broken_config_naming_file_and_line() {
    let text = dialbridge_server::config::DEMO_CONFIG.replace(
        "bridge = \"fabrikam-bridge\"",
        "bridge = \"no-such-bridge\"",
    );
    check_names_the_line(&text, |l| l.contains("no-such-bridge"), "badconf");
}

/// Runs `dialbridge check` on `text` and asserts it fails naming the file and the line
/// `bad_line` picks.
fn check_names_the_line(text: &str, bad_line: impl Fn(&str) -> bool, tag: &str) {
    let dir = std::env::temp_dir().join(format!("dialbridge-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let line = text.lines().position(bad_line).unwrap() + 1;
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialbridge"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("bad.toml:{line}")), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_names_the_line_of_a_bad_symmetric_rtp_or_address6() {
    for (n, (from, to, needle)) in [
        (
            "max_sessions = 500\n",
            "max_sessions = 500\nsymmetric_rtp = \"yes\"\n",
            "symmetric_rtp",
        ),
        (
            "realm = \"dialbridge\"\n",
            "realm = \"dialbridge\"\nsymmetric_rtp = 1\n",
            "symmetric_rtp",
        ),
        (
            "address6 = \"::1\"\n",
            "address6 = \"127.0.0.1\"\n",
            "address6 =",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let text = dialbridge_server::config::DEMO_CONFIG.replacen(from, to, 1);
        check_names_the_line(&text, |l| l.starts_with(needle), &format!("badrtp{n}"));
    }
}
