//! TLS for lent connections: the rustls client configuration for each way of checking the
//! server's certificate, and the handshake that upgrades a TCP stream in place. The crypto
//! provider is ring.
//!
//! - `verify-identity`: the standard WebPKI check against the given CAs, name included.
//! - `verify-ca`: the same chain check, without the name (the mysql client's VERIFY_CA).
//! - `no-verify`: any certificate; the handshake signatures are still checked, so the session
//!   is encrypted, only not authenticated.

use crate::bindings::leashed::net::tcp::{ErrorCode, TlsOptions, TlsVerify};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn tls_error(what: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::Tls(what.to_string())
}

/// The client configuration for these options.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, ErrorCode> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().map_err(tls_error)?;
    let config = match options.verify {
        TlsVerify::NoVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier { roots: None, algorithms }))
            .with_no_client_auth(),
        TlsVerify::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier {
                roots: Some(Arc::new(roots(options)?)),
                algorithms,
            }))
            .with_no_client_auth(),
        TlsVerify::VerifyIdentity => builder.with_root_certificates(roots(options)?).with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The CAs to trust, from the options' PEM.
fn roots(options: &TlsOptions) -> Result<RootCertStore, ErrorCode> {
    let pem =
        options.ca_pem.as_deref().ok_or_else(|| tls_error("verifying the server needs CA certificates (tls-ca)"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| tls_error(format!("cannot read the CA certificates: {e}")))?;
        roots.add(cert).map_err(|e| tls_error(format!("cannot use a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_error("the CA PEM holds no certificate"));
    }
    Ok(roots)
}

/// Runs the client handshake on `stream`.
pub async fn handshake(
    stream: TcpStream,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> Result<TlsStream<TcpStream>, ErrorCode> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| tls_error(format!("'{server_name}' is not a valid server name")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| tls_error(format!("TLS handshake with {server_name} failed: {e}")))
}

/// The verifier for `verify-ca` (the chain must lead to one of `roots`; the name is not
/// checked) and for `no-verify` (no `roots`: any certificate).
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
