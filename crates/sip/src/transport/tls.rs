//! Loads the TLS listener's certificate and key (PEM) into a rustls acceptor.
//!
//! Trunks over TLS are identified by source address like the others: client certificates
//! are not demanded.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Builds an acceptor from a PEM certificate chain and a PEM private key.
pub fn load_tls_acceptor(
    certificate: &Path,
    private_key: &Path,
) -> Result<TlsAcceptor, crate::Error> {
    let certs = CertificateDer::pem_file_iter(certificate)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", certificate.display())))?;
    if certs.is_empty() {
        return Err(crate::Error::Tls(format!(
            "{}: no certificate found",
            certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", private_key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| crate::Error::Tls(format!("{}: {e}", certificate.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
