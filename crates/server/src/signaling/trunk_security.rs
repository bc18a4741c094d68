//! A trunk's security policy, decided without I/O: which trunk a new INVITE comes from
//! (by the verified TLS client certificate, else by source address) and whether that
//! trunk may call this way, then whether the offer's media fits the policy (SRTP
//! required; SDES keys never over an unencrypted transport, RFC 4568 §8.3).

use dialbridge_router::TrunkPolicy;
use dialbridge_sip::transaction::TransportKind;

use crate::refusal::EndCause;

/// Who sent a new INVITE: `Ok(Some(trunk))`, `Ok(None)` for no trunk (a softphone must
/// prove itself by digest), or the refusal.
///
/// - `by_certificate`: the trunks whose `tls_names` the verified client certificate
///   holds (several: the certificate is ambiguous, and no trunk is picked);
/// - `certificate`: whether a verified certificate came at all;
/// - `by_address`: the trunk of the source address.
///
/// A certificate naming a trunk identifies it wherever it connects from, as Direct
/// Routing knows an SBC by its FQDN. A trunk that lists `tls_names` is never identified
/// by its address alone, or a spoofed address would pass for it.
pub(super) fn identify<T: Copy + PartialEq>(
    by_certificate: &[T],
    certificate: bool,
    by_address: Option<T>,
    transport: TransportKind,
    policy: impl Fn(T) -> TrunkPolicy,
) -> Result<Option<T>, EndCause> {
    match by_certificate {
        [] => {}
        [trunk] => return Ok(Some(*trunk)),
        _ => return Err(EndCause::AmbiguousCertificate),
    }
    let Some(trunk) = by_address else {
        return Ok(None);
    };
    let policy = policy(trunk);
    if (policy.require_tls || policy.requires_certificate) && transport != TransportKind::Tls {
        return Err(EndCause::TlsRequired);
    }
    if policy.requires_certificate {
        return Err(if certificate {
            EndCause::CertificateNotForTrunk
        } else {
            EndCause::ClientCertificateRequired
        });
    }
    Ok(Some(trunk))
}

/// Whether our SDES key may go into an answer sent over `transport`: only where
/// nothing on the path can read it, unless the trunk opts out (labs).
pub(super) fn sdes_allowed(policy: TrunkPolicy, transport: TransportKind) -> bool {
    transport == TransportKind::Tls || policy.sdes_over_plain_transport
}

/// The refusal, if any, of what an offer settled. `offers_srtp`: the offer has an
/// RTP/SAVP m-line; `negotiated_srtp`: what the negotiation chose (`None`: it failed).
///
/// Where SDES is not allowed the offer was negotiated without our key, so an SRTP
/// m-line could not be taken; that is said as "SDES needs TLS" rather than with the
/// SIP crate's bare 488. Answering RTP/AVP to RTP/SAVP instead is not an option: the
/// answer's m-line keeps the offer's transport (RFC 3264 §6).
pub(super) fn media_refusal(
    policy: TrunkPolicy,
    transport: TransportKind,
    offers_srtp: bool,
    negotiated_srtp: Option<bool>,
) -> Option<EndCause> {
    let sdes_refused = offers_srtp && !sdes_allowed(policy, transport);
    match negotiated_srtp {
        Some(true) => None,
        None if sdes_refused => Some(EndCause::SdesNeedsTls),
        None => None,
        Some(false) if policy.require_srtp && sdes_refused => Some(EndCause::SdesNeedsTls),
        Some(false) if policy.require_srtp => Some(EndCause::SrtpRequired),
        Some(false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportKind::{Tcp, Tls, Udp};

    const OPEN: TrunkPolicy = TrunkPolicy {
        require_tls: false,
        require_srtp: false,
        sdes_over_plain_transport: false,
        requires_certificate: false,
    };
    const TLS: TrunkPolicy = TrunkPolicy {
        require_tls: true,
        ..OPEN
    };
    const NAMED: TrunkPolicy = TrunkPolicy {
        requires_certificate: true,
        ..OPEN
    };

    /// Trunk 1 is open, 2 requires TLS, 3 lists TLS names.
    fn policy(trunk: u32) -> TrunkPolicy {
        match trunk {
            2 => TLS,
            3 => NAMED,
            _ => OPEN,
        }
    }

    /// Certificate's trunks, certificate?, address's trunk, transport: identification.
    type IdentifyRow = (
        &'static [u32],
        bool,
        Option<u32>,
        TransportKind,
        Result<Option<u32>, EndCause>,
    );

    /// Policy, transport, SRTP offered, SRTP negotiated: refusal.
    type MediaRow = (
        TrunkPolicy,
        TransportKind,
        bool,
        Option<bool>,
        Option<EndCause>,
    );

    #[test]
    fn which_trunk_and_which_refusal() {
        use EndCause::*;
        #[rustfmt::skip]
        let rows: [IdentifyRow; 16] = [
            // By address, as before: an open trunk over any transport.
            (&[], false, Some(1), Udp, Ok(Some(1))),
            (&[], false, Some(1), Tcp, Ok(Some(1))),
            (&[], false, Some(1), Tls, Ok(Some(1))),
            // A certificate naming no trunk changes nothing for an open trunk.
            (&[], true, Some(1), Tls, Ok(Some(1))),
            // require_tls.
            (&[], false, Some(2), Udp, Err(TlsRequired)),
            (&[], false, Some(2), Tcp, Err(TlsRequired)),
            (&[], false, Some(2), Tls, Ok(Some(2))),
            // tls_names: TLS, and a certificate naming it.
            (&[], false, Some(3), Udp, Err(TlsRequired)),
            (&[], false, Some(3), Tls, Err(ClientCertificateRequired)),
            (&[], true, Some(3), Tls, Err(CertificateNotForTrunk)),
            (&[3], true, Some(3), Tls, Ok(Some(3))),
            // The certificate identifies its trunk from any address...
            (&[3], true, None, Tls, Ok(Some(3))),
            (&[3], true, Some(1), Tls, Ok(Some(3))),
            // ...unless it names several.
            (&[1, 3], true, Some(3), Tls, Err(AmbiguousCertificate)),
            // No trunk: a softphone, to be challenged.
            (&[], false, None, Udp, Ok(None)),
            (&[], true, None, Tls, Ok(None)),
        ];
        for (by_certificate, certificate, by_address, transport, want) in rows {
            assert_eq!(
                identify(by_certificate, certificate, by_address, transport, policy),
                want,
                "{by_certificate:?} {certificate} {by_address:?} {transport:?}"
            );
        }
    }

    #[test]
    fn sdes_keys_travel_over_tls_only_unless_the_trunk_opts_out() {
        assert!(sdes_allowed(OPEN, Tls));
        assert!(!sdes_allowed(OPEN, Udp));
        assert!(!sdes_allowed(OPEN, Tcp));
        let lab = TrunkPolicy {
            sdes_over_plain_transport: true,
            ..OPEN
        };
        assert!(sdes_allowed(lab, Udp));
        assert!(sdes_allowed(lab, Tcp));
    }

    #[test]
    fn which_offer_is_refused() {
        use EndCause::*;
        let srtp = TrunkPolicy {
            require_srtp: true,
            ..OPEN
        };
        let lab = TrunkPolicy {
            sdes_over_plain_transport: true,
            ..srtp
        };
        #[rustfmt::skip]
        let rows: [MediaRow; 12] = [
            // RTP/AVP from an open trunk: as before.
            (OPEN, Udp, false, Some(false), None),
            // RTP/SAVP over TLS: keyed.
            (OPEN, Tls, true, Some(true), None),
            // RTP/SAVP over UDP could not be taken without our key.
            (OPEN, Udp, true, None, Some(SdesNeedsTls)),
            (OPEN, Tcp, true, None, Some(SdesNeedsTls)),
            // ...but an RTP/AVP alternative in the same offer could.
            (OPEN, Udp, true, Some(false), None),
            // A failure that is not about SRTP is the SIP crate's to answer.
            (OPEN, Udp, false, None, None),
            // require_srtp.
            (srtp, Tls, false, Some(false), Some(SrtpRequired)),
            (srtp, Tls, true, Some(true), None),
            (srtp, Udp, true, Some(false), Some(SdesNeedsTls)),
            (srtp, Udp, true, None, Some(SdesNeedsTls)),
            // The lab opt-out keys SRTP over UDP.
            (lab, Udp, true, Some(true), None),
            (lab, Udp, false, Some(false), Some(SrtpRequired)),
        ];
        for (policy, transport, offers, negotiated, want) in rows {
            assert_eq!(
                media_refusal(policy, transport, offers, negotiated),
                want,
                "{policy:?} {transport:?} {offers} {negotiated:?}"
            );
        }
    }
}
