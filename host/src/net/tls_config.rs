//! The rustls client configuration for each way `start-tls` can check a server's certificate,
//! with ring as the crypto provider, and the texts of TLS errors.
//!
//! Compiled into two crates: the host (through `net/tls.rs`) and the wasi-sockets adapter
//! (guest/adapters/wasi-sockets, as a `#[path]` module), so a connection checks certificates
//! the same way, and fails with the same words, on leashed's host and on a stock runtime. It
//! must therefore depend on rustls and std alone.
//!
//! - `Identity` (`verify-identity`): the standard WebPKI check against the given CAs, name
//!   included.
//! - `Ca` (`verify-ca`): the same chain check, without the name (the mysql client's VERIFY_CA).
//! - `Nothing` (`no-verify`): any certificate; the handshake signatures are still checked, so
//!   the session is encrypted, only not authenticated.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// What to check of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    Nothing,
    Ca,
    Identity,
}

/// The client configuration for `verify`, trusting the CAs in `ca_pem`; `Err` is the reason,
/// for a `tls(...)` error code.
pub fn client_config(verify: Verify, ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier { roots: None, algorithms }))
            .with_no_client_auth(),
        Verify::Ca => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier {
                roots: Some(Arc::new(roots(ca_pem)?)),
                algorithms,
            }))
            .with_no_client_auth(),
        Verify::Identity => builder.with_root_certificates(roots(ca_pem)?).with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `server_name` as rustls wants it: a DNS name (sent as SNI) or an IP address.
pub fn server_name(server_name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(server_name.to_string()).map_err(|_| format!("'{server_name}' is not a valid server name"))
}

/// The text of a failed handshake.
pub fn handshake_failed(server_name: &str, why: impl std::fmt::Display) -> String {
    format!("TLS handshake with {server_name} failed: {why}")
}

/// The CAs to trust, from PEM.
fn roots(ca_pem: Option<&str>) -> Result<RootCertStore, String> {
    let pem = ca_pem.ok_or("verifying the server needs CA certificates (tls-ca)")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("cannot read the CA certificates: {e}"))?;
        roots.add(cert).map_err(|e| format!("cannot use a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA PEM holds no certificate".into());
    }
    Ok(roots)
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
