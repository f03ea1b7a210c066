//! TLS for lent connections: the handshake that upgrades a TCP stream in place, with the client
//! configuration of `tls_config.rs` (shared with the wasi-sockets adapter).

use super::tls_config::{self, Verify};
use crate::bindings::leashed::net::tcp::{ErrorCode, TlsOptions, TlsVerify};
use rustls::ClientConfig;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The client configuration for these options.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, ErrorCode> {
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
