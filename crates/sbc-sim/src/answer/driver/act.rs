//! Carrying out what a call wants done: its responses and requests through the
//! transaction layer, its media started, moved, listening for the prompt, keying.

use std::future::Future;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{MediaEvent, Phone, RECORD_LIMIT, TONE_AMPLITUDE, respond, tell};
use crate::answer::callee::Action;
use crate::answer::prompt::PromptListener;
use crate::rtp::{Media, Source};

impl Phone<'_> {
    /// Carries out one of a call's actions.
    pub(super) fn act(&mut self, id: &str, action: Action, now: Instant) {
        let progress = self.progress;
        let Some(entry) = self.calls.get_mut(id) else {
            return;
        };
        match action {
            Action::RespondInvite(response) => {
                tell(
                    progress,
                    id,
                    &format!("→ {} (INVITE)", response.status_code),
                );
                respond(&mut self.layer, &entry.invite_key, response, now);
            }
            Action::Request(request) => {
                let method = request.method;
                match self.layer.send_request(request, entry.peer, now) {
                    Ok(key) => {
                        self.requests.insert(key, id.to_owned());
                        tell(progress, id, &format!("→ {method}"));
                    }
                    Err(e) => entry.callee.note_failure(format!("{method} not sent: {e}")),
                }
            }
            Action::Ack(ack) => self.layer.send_stateless(ack, entry.peer),
            Action::StartMedia(remote) => {
                let source = match self.config.tone_hz {
                    Some(hz) => Source::Tone {
                        hz,
                        amplitude: TONE_AMPLITUDE,
                    },
                    None => Source::Silence,
                };
                let started = entry
                    .rtp
                    .take()
                    .ok_or_else(|| "RTP socket already used".to_owned())
                    .and_then(|socket| {
                        Media::start(socket, remote, source, RECORD_LIMIT)
                            .map_err(|e| e.to_string())
                    });
                match started {
                    Ok(media) => entry.media = Some(media),
                    Err(why) => entry.callee.note_failure(format!("media: {why}")),
                }
                let codec = remote.codec.encoding_name();
                tell(progress, id, &format!("media: {codec} to {}", remote.addr));
            }
            Action::MoveMedia(remote) => {
                if let Some(media) = &entry.media {
                    media.set_remote(remote);
                }
            }
            Action::ListenForPrompt => {
                if let Some(media) = &entry.media {
                    let listener = PromptListener::new(self.config.prompt_silence);
                    let heard = media.listen_for_prompt(listener);
                    forward(&self.media_tx, id, async move {
                        heard.await.ok().map(|()| MediaEvent::PromptHeard)
                    });
                }
            }
            Action::SendKeys(keys) => {
                tell(progress, id, &format!("keys {keys}"));
                match &entry.media {
                    Some(media) => {
                        media.restart_recording();
                        let sent = media.keys(&keys);
                        forward(&self.media_tx, id, async move {
                            Some(MediaEvent::KeysSent(sent.await.unwrap_or(false)))
                        });
                    }
                    None => entry.callee.handle_keys_sent(false, now),
                }
            }
        }
    }
}

/// Hands what `event` resolves to back to the run, tagged with the call.
fn forward(
    tx: &mpsc::Sender<(String, MediaEvent)>,
    id: &str,
    event: impl Future<Output = Option<MediaEvent>> + Send + 'static,
) {
    let tx = tx.clone();
    let id = id.to_owned();
    // Ends with the media task at the latest: the senders it holds are dropped then.
    tokio::spawn(async move {
        if let Some(event) = event.await {
            let _ = tx.send((id, event)).await;
        }
    });
}
