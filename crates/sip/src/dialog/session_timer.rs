//! Session timers (RFC 4028) for the UAS side of a dialog: Session-Expires / Min-SE
//! negotiation (§9), 422 (§6), who refreshes, and when to refresh or give up (§10).

use crate::Error;
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Request, Response};
use std::time::{Duration, Instant};

/// Our session timer policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The smallest interval we accept (RFC 4028 §5: at least 90 s); smaller gets 422.
    pub min_se: Duration,
    /// The interval we propose when the UAC asked for none.
    pub default_interval: Duration,
    /// Run a timer, refreshed by us, even for a UAC that neither asks for one nor
    /// supports them (§9 lets the UAS): a peer that vanished without a BYE is found at
    /// the first refresh instead of never.
    pub always: bool,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        Self {
            min_se: Duration::from_secs(90),
            default_interval: Duration::from_secs(1800),
            always: false,
        }
    }
}

/// Which side sends the refreshes (the `refresher` parameter of Session-Expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller (the side that sent the INVITE).
    Uac,
    /// Us, the bridge.
    Uas,
}

/// What the session timer asks of the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerEvent {
    /// We are the refresher and half the interval passed: send a re-INVITE or UPDATE.
    SendRefresh,
    /// No refresh came in time (§10): send BYE.
    Expired,
}

/// A negotiated session timer. Deadlines are measured from the last refresh, i.e. the
/// last 2xx sent or received for a session refresh request (§10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    peer_supports: bool,
    last_refresh: Instant,
    refresh_asked: bool,
    expired: bool,
}

impl SessionTimer {
    /// RFC 4028 §9: what the UAS makes of a (re-)INVITE or UPDATE. `Ok(None)`: no session
    /// timer (the UAC does not support it and no proxy asked for one).
    /// `Err(SessionIntervalTooSmall)`: answer 422 with [`interval_too_small`].
    pub fn negotiate(
        request: &Request,
        config: &SessionTimerConfig,
        now: Instant,
    ) -> Result<Option<Self>, Error> {
        let asked = session_expires(&request.headers)?;
        let peer_min = min_se(&request.headers)?;
        let peer_supports = supports_timer(&request.headers);
        let min = config.min_se.as_secs();
        if let Some((secs, _)) = asked
            && secs < min
        {
            return Err(Error::SessionIntervalTooSmall {
                got: u32::try_from(secs).unwrap_or(u32::MAX),
                min_se: u32::try_from(min).unwrap_or(u32::MAX),
            });
        }
        let interval = match asked {
            Some((secs, _)) => secs,
            None if peer_supports || config.always => config
                .default_interval
                .as_secs()
                .max(peer_min.unwrap_or(0))
                .max(min),
            None => return Ok(None),
        };
        let refresher = match (peer_supports, asked.and_then(|(_, r)| r)) {
            // A UAC without timer support cannot refresh: we must (§9).
            (false, _) => Refresher::Uas,
            (true, Some(r)) => r,
            // Free choice: let the caller refresh; we only watch.
            (true, None) => Refresher::Uac,
        };
        Ok(Some(Self {
            interval: Duration::from_secs(interval),
            refresher,
            peer_supports,
            last_refresh: now,
            refresh_asked: false,
            expired: false,
        }))
    }

    /// The negotiated interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Who refreshes.
    pub fn refresher(&self) -> Refresher {
        self.refresher
    }

    /// The headers for our 2xx: Session-Expires with the refresher, and `Require: timer`
    /// when the UAC supports timers (§9).
    pub fn response_headers(&self) -> impl Iterator<Item = Header> {
        let se = Header::Other(
            "Session-Expires".into(),
            format!(
                "{};refresher={}",
                self.interval.as_secs(),
                self.refresher.as_str()
            ),
        );
        let require = self
            .peer_supports
            .then(|| Header::Require(rsip::headers::Require::new("timer")));
        std::iter::once(se).chain(require)
    }

    /// The headers for a refresh request we send (§7.4): the current interval and
    /// refresher. In our own request we are the UAC, so "us" is spelt `uac` there.
    pub fn request_headers(&self) -> impl Iterator<Item = Header> {
        let refresher = match self.refresher {
            Refresher::Uas => "uac",
            Refresher::Uac => "uas",
        };
        [
            Header::Other(
                "Session-Expires".into(),
                format!("{};refresher={refresher}", self.interval.as_secs()),
            ),
            Header::Supported(rsip::headers::Supported::new("timer")),
        ]
        .into_iter()
    }

    /// A refresh request from the peer: renegotiate interval and refresher as for the
    /// initial INVITE (a refresh without Session-Expires keeps the current values).
    pub fn handle_refresh_request(
        &mut self,
        request: &Request,
        config: &SessionTimerConfig,
        now: Instant,
    ) -> Result<(), Error> {
        if let Some(new) = Self::negotiate(request, config, now)? {
            self.interval = new.interval;
            self.refresher = new.refresher;
            self.peer_supports = new.peer_supports;
        }
        Ok(())
    }

    /// A 2xx to a session refresh was sent or received: the session lives on (§10).
    pub fn refreshed(&mut self, now: Instant) {
        self.last_refresh = now;
        self.refresh_asked = false;
        self.expired = false;
    }

    /// The 2xx to our own refresh request came: take the interval it grants.
    pub fn handle_refresh_response(&mut self, response: &Response, now: Instant) {
        if let Ok(Some((secs, refresher))) = session_expires(&response.headers) {
            self.interval = Duration::from_secs(secs);
            // In our requests we are the UAC of that transaction, so "uac" means us.
            if let Some(r) = refresher {
                self.refresher = match r {
                    Refresher::Uac => Refresher::Uas,
                    Refresher::Uas => Refresher::Uac,
                };
            }
        }
        self.refreshed(now);
    }

    /// The next deadline: half the interval when we refresh (§7.4), otherwise the expiry
    /// minus min(32 s, interval/3) — the §10 advice for when to send BYE.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expired {
            return None;
        }
        if self.refresher == Refresher::Uas && !self.refresh_asked {
            return Some(self.last_refresh + self.interval / 2);
        }
        Some(self.last_refresh + self.expiry_offset())
    }

    /// Fire whatever is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SessionTimerEvent> {
        let at = self.poll_timeout()?;
        if at > now {
            return None;
        }
        if self.refresher == Refresher::Uas && !self.refresh_asked {
            self.refresh_asked = true;
            return Some(SessionTimerEvent::SendRefresh);
        }
        self.expired = true;
        Some(SessionTimerEvent::Expired)
    }

    fn expiry_offset(&self) -> Duration {
        let margin = Duration::from_secs(32).min(self.interval / 3);
        self.interval.saturating_sub(margin)
    }
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

/// The 422 for a request whose Session-Expires is below our minimum (§6): it carries our
/// Min-SE so the UAC can retry.
pub fn interval_too_small(request: &Request, min_se: Duration) -> Response {
    let mut response = crate::message::fields::response_for(request, 422, None, None);
    response
        .headers
        .push(Header::Other("Min-SE".into(), min_se.as_secs().to_string()));
    response
}

/// Session-Expires (or its compact form `x`): seconds and the refresher, if any.
fn session_expires(headers: &Headers) -> Result<Option<(u64, Option<Refresher>)>, Error> {
    let Some(value) = other_header(headers, &["session-expires", "x"]) else {
        return Ok(None);
    };
    let mut parts = value.split(';');
    let secs = parts
        .next()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or(Error::BadHeader("Session-Expires"))?;
    let mut refresher = None;
    for param in parts {
        let Some((name, val)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("refresher") {
            refresher = match val.trim() {
                v if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
                v if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
                _ => return Err(Error::BadHeader("Session-Expires refresher")),
            };
        }
    }
    Ok(Some((secs, refresher)))
}

/// Min-SE in seconds, if present.
fn min_se(headers: &Headers) -> Result<Option<u64>, Error> {
    let Some(value) = other_header(headers, &["min-se"]) else {
        return Ok(None);
    };
    let secs = value.split(';').next().unwrap_or_default();
    secs.trim()
        .parse()
        .map(Some)
        .map_err(|_| Error::BadHeader("Min-SE"))
}

/// Whether `Supported` (or compact `k`) lists the `timer` option tag.
fn supports_timer(headers: &Headers) -> bool {
    headers.iter().any(|h| match h {
        Header::Supported(s) => has_token(s.value(), "timer"),
        Header::Other(name, value) if name.eq_ignore_ascii_case("k") => has_token(value, "timer"),
        _ => false,
    })
}

fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn other_header<'a>(headers: &'a Headers, names: &[&str]) -> Option<&'a str> {
    headers.iter().find_map(|h| match h {
        Header::Other(name, value) if names.iter().any(|n| name.eq_ignore_ascii_case(n)) => {
            Some(value.as_str())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:bridge@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKst\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:a@example.com>;tag=f\r\n\
             To: <sip:bridge@example.com>\r\n\
             Call-ID: st-1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:a@192.0.2.1>\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).unwrap()
    }

    fn negotiate(extra: &str, now: Instant) -> Result<Option<SessionTimer>, Error> {
        SessionTimer::negotiate(&invite(extra), &SessionTimerConfig::default(), now)
    }

    fn header_values(timer: &SessionTimer) -> Vec<String> {
        timer.response_headers().map(|h| h.to_string()).collect()
    }

    #[test]
    fn too_small_gets_422_with_our_min_se() {
        let now = Instant::now();
        let err = negotiate("Supported: timer\r\nSession-Expires: 60\r\n", now).unwrap_err();
        assert!(matches!(
            err,
            Error::SessionIntervalTooSmall {
                got: 60,
                min_se: 90
            }
        ));
        let resp = interval_too_small(&invite(""), Duration::from_secs(90));
        assert_eq!(resp.status_code.code(), 422);
        assert!(resp.headers.iter().any(|h| h.to_string() == "Min-SE: 90"));
    }

    #[test]
    fn uac_supporting_timer_refreshes_by_default_and_gets_require() {
        let now = Instant::now();
        let t = negotiate("Supported: timer, 100rel\r\nSession-Expires: 600\r\n", now)
            .unwrap()
            .unwrap();
        assert_eq!(t.refresher(), Refresher::Uac);
        assert_eq!(t.interval(), Duration::from_secs(600));
        assert_eq!(
            header_values(&t),
            vec!["Session-Expires: 600;refresher=uac", "Require: timer"]
        );
    }

    #[test]
    fn refresher_param_is_honoured_and_compact_forms_read() {
        let now = Instant::now();
        let t = negotiate("k: timer\r\nx: 300;refresher=uas\r\n", now)
            .unwrap()
            .unwrap();
        assert_eq!(t.refresher(), Refresher::Uas);
        assert_eq!(t.interval(), Duration::from_secs(300));
    }

    #[test]
    fn no_support_with_proxy_session_expires_makes_us_refresher_without_require() {
        let now = Instant::now();
        let t = negotiate("Session-Expires: 1800\r\n", now)
            .unwrap()
            .unwrap();
        assert_eq!(t.refresher(), Refresher::Uas);
        assert_eq!(
            header_values(&t),
            vec!["Session-Expires: 1800;refresher=uas"]
        );
        assert!(negotiate("", now).unwrap().is_none());
    }

    #[test]
    fn support_without_session_expires_gets_our_default_at_least_their_min_se() {
        let now = Instant::now();
        let t = negotiate("Supported: timer\r\n", now).unwrap().unwrap();
        assert_eq!(t.interval(), Duration::from_secs(1800));
        let t = negotiate("Supported: timer\r\nMin-SE: 3600\r\n", now)
            .unwrap()
            .unwrap();
        assert_eq!(t.interval(), Duration::from_secs(3600));
    }

    #[test]
    fn always_gives_a_uac_without_timers_one_we_refresh() {
        let now = Instant::now();
        let config = SessionTimerConfig {
            always: true,
            default_interval: Duration::from_secs(600),
            ..SessionTimerConfig::default()
        };
        let t = SessionTimer::negotiate(&invite(""), &config, now)
            .unwrap()
            .unwrap();
        assert_eq!(t.refresher(), Refresher::Uas);
        assert_eq!(t.interval(), Duration::from_secs(600));
        // No Require: timer for a peer that does not support it (§9).
        assert_eq!(
            header_values(&t),
            vec!["Session-Expires: 600;refresher=uas"]
        );
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(300)));
    }

    #[test]
    fn garbage_is_a_bad_header() {
        let now = Instant::now();
        assert!(matches!(
            negotiate("Session-Expires: soon\r\n", now),
            Err(Error::BadHeader("Session-Expires"))
        ));
        assert!(matches!(
            negotiate("Session-Expires: 1800;refresher=both\r\n", now),
            Err(Error::BadHeader(_))
        ));
        assert!(matches!(
            negotiate("Supported: timer\r\nMin-SE: x\r\n", now),
            Err(Error::BadHeader("Min-SE"))
        ));
    }

    #[test]
    fn watcher_expires_before_the_interval_and_refresh_moves_the_deadline() {
        let base = Instant::now();
        let mut t = negotiate("Supported: timer\r\nSession-Expires: 600\r\n", base)
            .unwrap()
            .unwrap();
        // 600 - min(32, 200) = 568 s.
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(568)));
        t.refreshed(base + Duration::from_secs(300));
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(868)));
        assert_eq!(t.handle_timeout(base + Duration::from_secs(867)), None);
        assert_eq!(
            t.handle_timeout(base + Duration::from_secs(868)),
            Some(SessionTimerEvent::Expired)
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn short_interval_uses_a_third_as_margin() {
        let base = Instant::now();
        let t = negotiate("Supported: timer\r\nSession-Expires: 90\r\n", base)
            .unwrap()
            .unwrap();
        // 90 - min(32, 30) = 60 s.
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(60)));
    }

    #[test]
    fn refresher_is_told_at_half_interval_then_expiry_if_refresh_fails() {
        let base = Instant::now();
        let mut t = negotiate("Session-Expires: 1800\r\n", base)
            .unwrap()
            .unwrap();
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(900)));
        assert_eq!(
            t.handle_timeout(base + Duration::from_secs(900)),
            Some(SessionTimerEvent::SendRefresh)
        );
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(1768)));
        assert_eq!(
            t.handle_timeout(base + Duration::from_secs(1768)),
            Some(SessionTimerEvent::Expired)
        );
        // A successful refresh instead restarts the cycle.
        let mut t = negotiate("Session-Expires: 1800\r\n", base)
            .unwrap()
            .unwrap();
        t.handle_timeout(base + Duration::from_secs(900));
        t.refreshed(base + Duration::from_secs(901));
        assert_eq!(t.poll_timeout(), Some(base + Duration::from_secs(1801)));
    }
}
