//! TLS for lent connections: the handshake that upgrades a TCP stream in place, with the client
//! configuration of `tls_config.rs` (shared with the wasi-sockets adapter).

use super::tls_config::{self, Verify};
use crate::bindings::leashed::net::tcp::{ErrorCode, TlsOptions, TlsVerify};
use rustls::ClientConfig;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The largest CA bundle `start-tls` parses (Mozilla's whole root store is about 200 KiB as PEM):
/// a guest must not make the host parse megabytes on every call.
pub const MAX_CA_PEM_BYTES: usize = 1 << 20;

/// The longest server name `start-tls` accepts (DNS's limit).
pub const MAX_SERVER_NAME_BYTES: usize = super::allowlist::MAX_NAME_BYTES;

/// The client configuration for these options; a CA bundle or a server name past the limits
/// above is refused before anything is parsed.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, ErrorCode> {
    if let Some(pem) = &options.ca_pem
        && pem.len() > MAX_CA_PEM_BYTES
    {
        return Err(ErrorCode::Tls(format!(
            "the CA certificates are {} bytes of PEM; the host accepts at most {MAX_CA_PEM_BYTES}",
            pem.len()
        )));
    }
    if options.server_name.len() > MAX_SERVER_NAME_BYTES {
        return Err(ErrorCode::Tls(format!(
            "the server name is {} bytes long; a DNS name has at most {MAX_SERVER_NAME_BYTES}",
            options.server_name.len()
        )));
    }
    let verify = match options.verify {
        TlsVerify::NoVerify => Verify::Nothing,
        TlsVerify::VerifyCa => Verify::Ca,
        TlsVerify::VerifyIdentity => Verify::Identity,
    };
    tls_config::client_config(verify, options.ca_pem.as_deref()).map_err(ErrorCode::Tls)
}

/// Runs the client handshake on `stream`.
pub async fn handshake(
    stream: TcpStream,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> Result<TlsStream<TcpStream>, ErrorCode> {
    let name = tls_config::server_name(server_name).map_err(ErrorCode::Tls)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| ErrorCode::Tls(tls_config::handshake_failed(server_name, e)))
}
