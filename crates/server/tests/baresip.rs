//! Interoperability with baresip, a real softphone: it answers the bridge's digest
//! challenge with its account's password, the call is established with G.711, media
//! flows both ways, and the call ends cleanly when baresip hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use dialbridge_server::testing::{TestBridge, demo_config};

/// A baresip config in a scratch directory: G.711, audio from and to files, no device.
fn baresip_dir(tone: &std::path::Path) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dialbridge-baresip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:0\n\
             audio_player aufile,{heard}\n\
             audio_source aufile,{tone}\n\
             audio_alert aufile,/dev/null\n\
             audio_srate 8000\n\
             audio_channels 1\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module_app account.so\n\
             module_app menu.so\n",
            heard = dir.join("heard.wav").display(),
            tone = tone.display(),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("accounts"), "").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_dials_in_with_digest_credentials() {
    let bridge = TestBridge::start(demo_config()).await;
    let tone = dialbridge_testkit::fixtures().join("prompts/help.wav");
    let dir = baresip_dir(&tone);
    let sip = bridge.sip_addr();
    let child = tokio::process::Command::new("baresip")
        .arg("-f")
        .arg(&dir)
        .args(["-t", "8"])
        .arg("-e")
        .arg("/uanew <sip:alice@127.0.0.1;transport=udp>;auth_pass=alice-secret;regint=0")
        .arg("-e")
        .arg(format!("/dial sip:+14255550100@{sip}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (scripts/test.sh installs it)");
    // The call is up at the bridge while baresip plays its file.
    let mut seen_up = false;
    for _ in 0..60 {
        if bridge.calls_in_progress() == 1 {
            seen_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("baresip ends")
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(seen_up, "the bridge held baresip's call:\n{log}");
    assert!(log.contains("Call established"), "{log}");
    assert!(
        log.contains("incoming rtp for 'audio' established"),
        "bridge media reached baresip:\n{log}"
    );
    for _ in 0..50 {
        if bridge.calls_in_progress() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        bridge.calls_in_progress(),
        0,
        "baresip's hang-up ended the call"
    );
    std::fs::remove_dir_all(&dir).ok();
    bridge.stop().await;
}
