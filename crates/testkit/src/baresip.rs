//! baresip, a real softphone, as the suite runs it: headless, G.711, audio from a file
//! and to a file, no device; one account with its password and no registration, one
//! call dialled at start, ended after a few seconds by baresip itself (`-t`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// One baresip run's scratch directory (its config and what it heard).
#[derive(Debug)]
pub struct Baresip {
    dir: PathBuf,
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    pub log: String,
}

impl Run {
    /// The bridge answered and the call was set up.
    pub fn established(&self) -> bool {
        self.log.contains("Call established")
    }

    /// RTP from the bridge reached baresip.
    pub fn heard_rtp(&self) -> bool {
        self.log.contains("incoming rtp for 'audio' established")
    }
}

impl Baresip {
    /// A config in a scratch directory named after `name`, playing `tone` (a WAV file).
    pub fn new(name: &str, tone: &Path) -> Baresip {
        let dir =
            std::env::temp_dir().join(format!("dialbridge-baresip-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("baresip scratch dir");
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
        .expect("baresip config");
        std::fs::write(dir.join("accounts"), "").expect("baresip accounts");
        Baresip { dir }
    }

    /// Starts baresip as `user` with `password` dialling `number` at `bridge`; it hangs
    /// up by itself after `seconds`.
    pub fn dial(
        &self,
        user: &str,
        password: &str,
        number: &str,
        bridge: SocketAddr,
        seconds: u32,
    ) -> tokio::process::Child {
        tokio::process::Command::new("baresip")
            .arg("-f")
            .arg(&self.dir)
            .args(["-t", &seconds.to_string()])
            .arg("-e")
            .arg(format!(
                "/uanew <sip:{user}@127.0.0.1;transport=udp>;auth_pass={password};regint=0"
            ))
            .arg("-e")
            .arg(format!("/dial sip:{number}@{bridge}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("baresip is installed (scripts/test.sh installs it)")
    }

    /// Waits (at most `within`) for a run to end and reads what it printed.
    pub async fn finish(child: tokio::process::Child, within: Duration) -> Run {
        let out = tokio::time::timeout(within, child.wait_with_output())
            .await
            .expect("baresip ends")
            .expect("baresip's output");
        Run {
            log: String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
