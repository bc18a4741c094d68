//! The TLS listener's rustls acceptor (certificate and key in PEM) and, where a CA bundle
//! is given, the client certificates it asks for: verified against that bundle, their
//! names read out so that a trunk can be identified by the name in its SBC's certificate
//! (as Teams Direct Routing identifies an SBC by the FQDN in its certificate).
//!
//! A client certificate is asked for, never demanded: callers without one (softphones,
//! trunks identified by source address) still connect. One that is sent but does not
//! verify fails the handshake (rustls' `WebPkiClientVerifier`).

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Names kept from one certificate: more is not an SBC's certificate.
const MAX_NAMES: usize = 32;

/// Builds an acceptor from a PEM certificate chain and a PEM private key. With
/// `client_ca` (a PEM bundle), clients are asked for a certificate issued under it.
pub fn load_tls_acceptor(
    certificate: &Path,
    private_key: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, crate::Error> {
    let certs = read_certificates(certificate)?;
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", private_key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(bundle) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(bundle)? {
                roots
                    .add(cert)
                    .map_err(|e| crate::Error::Tls(format!("{}: {e}", bundle.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| crate::Error::Tls(format!("{}: {e}", bundle.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", certificate.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The names of the client certificate verified on `connection`, `None` without one.
/// rustls only completes a handshake whose client certificate verified (or that sent
/// none), so whatever is here was issued under the configured CA bundle.
pub(super) fn verified_names(connection: &rustls::ServerConnection) -> Option<Arc<[String]>> {
    let leaf = connection.peer_certificates()?.first()?;
    let names = certificate_names(leaf.as_ref());
    (!names.is_empty()).then(|| names.into())
}

/// The DNS names a certificate (DER) is for: its SAN dNSNames, or lacking any, its
/// subject CNs (RFC 6125 §6.4.4), lower-case and without a final dot, at most
/// [`MAX_NAMES`]. Empty when it does not parse.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let normal = |name: &str| name.trim_end_matches('.').to_ascii_lowercase();
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(normal(name)),
                _ => None,
            })
            .take(MAX_NAMES)
            .collect(),
        // Absent, or present twice (malformed): no SAN names to trust.
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(normal)
            .take(MAX_NAMES)
            .collect();
    }
    names.retain(|n| !n.is_empty());
    names
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, crate::Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(crate::Error::Tls(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::certificate_names;

    fn certificate(sans: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn san_dns_names_win_over_the_common_name() {
        let der = certificate(&["SBC1.Example.com.", "sbc2.example.com"], Some("ignored"));
        assert_eq!(
            certificate_names(&der),
            ["sbc1.example.com", "sbc2.example.com"]
        );
    }

    #[test]
    fn without_san_dns_names_the_common_name_counts() {
        let der = certificate(&[], Some("sbc1.example.com"));
        assert_eq!(certificate_names(&der), ["sbc1.example.com"]);
        // An IP address SAN is no DNS name: the CN still counts.
        let der = certificate(&["10.0.0.1"], Some("sbc1.example.com"));
        assert_eq!(certificate_names(&der), ["sbc1.example.com"]);
        assert!(certificate_names(&certificate(&[], None)).is_empty());
    }

    #[test]
    fn garbage_has_no_names() {
        assert!(certificate_names(b"not a certificate").is_empty());
        assert!(certificate_names(&[]).is_empty());
    }
}
