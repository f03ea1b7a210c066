//! A scripted MySQL server peer, for what the live MariaDB cannot do: caching_sha2_password and
//! sha256_password (MariaDB 10.11 has neither), plugin switches to mysql_clear_password, and a
//! server without TLS. It speaks the real wire protocol over real TCP (and real TLS when asked),
//! so the guest is tested end to end; only the server side is a script.
//!
//! A test writes the server's side of the login as an async closure over a [`Peer`], which
//! frames packets and answers the commands that follow a successful login (ping, quit).

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Bytes both ways: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The nonce every scripted greeting uses (20 bytes, as MySQL's).
pub const NONCE: [u8; 20] = *b"0123456789abcdefghij";

/// The server side of one connection.
pub struct Peer {
    io: Box<dyn Io>,
    seq: u8,
}

impl Peer {
    /// Sends one packet with the next sequence number.
    pub async fn send(&mut self, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = len.to_le_bytes()[..3].to_vec();
        frame.push(self.seq);
        frame.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.io.write_all(&frame).await.expect("peer write");
    }

    /// Reads one packet; `None` at end of stream.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        self.io.read_exact(&mut header).await.ok()?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        self.seq = header[3].wrapping_add(1);
        let mut payload = vec![0; len];
        self.io.read_exact(&mut payload).await.ok()?;
        Some(payload)
    }

    /// The greeting: protocol 10, MySQL 8-style, naming `plugin` as the default.
    pub async fn greet(&mut self, plugin: &str, tls: bool) {
        let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_STATEMENTS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        if tls {
            caps |= CapabilityFlags::CLIENT_SSL;
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&NONCE[..8]);
        let mut rest = NONCE[8..].to_vec();
        rest.push(0);
        let greeting = HandshakePacket::new(
            10,
            &b"8.0.36-scripted"[..],
            7,
            first,
            Some(rest),
            caps,
            45,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            Some(plugin.as_bytes()),
        );
        let mut payload = Vec::new();
        greeting.serialize(&mut payload);
        self.send(&payload).await;
    }

    /// Reads the client's handshake response; returns (user, auth data, plugin name, caps).
    pub async fn handshake_response(&mut self) -> (String, Vec<u8>, String, CapabilityFlags) {
        let packet = self.recv().await.expect("a handshake response");
        let response: HandshakeResponse<'_> = ParseBuf(&packet).parse(()).expect("a valid handshake response");
        let plugin = response.auth_plugin().map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned());
        (
            String::from_utf8_lossy(response.user()).into_owned(),
            response.scramble_buf().to_vec(),
            plugin.unwrap_or_default(),
            response.capabilities(),
        )
    }

    /// Reads the 32-byte SSLRequest and runs the server side of the TLS handshake with a
    /// certificate for `localhost` from a throwaway CA.
    pub async fn accept_tls(self) -> Peer {
        let Peer { mut io, seq } = self;
        let mut request = [0u8; 36];
        io.read_exact(&mut request).await.expect("an SSLRequest");
        assert_eq!(&request[..4], &[32, 0, 0, 1], "SSLRequest framing");
        let flags = u32::from_le_bytes(request[4..8].try_into().unwrap());
        assert!(CapabilityFlags::from_bits_truncate(flags).contains(CapabilityFlags::CLIENT_SSL));
        let acceptor = tokio_rustls::TlsAcceptor::from(server_tls_config());
        let tls = acceptor.accept(io).await.expect("TLS accept");
        Peer { io: Box::new(tls), seq: seq.wrapping_add(1) }
    }

    /// OK.
    pub async fn ok(&mut self) {
        self.send(&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]).await;
    }

    /// ERR with a code, SQLSTATE and message.
    pub async fn err(&mut self, code: u16, state: &str, message: &str) {
        let mut payload = vec![0xff];
        payload.extend_from_slice(&code.to_le_bytes());
        payload.push(b'#');
        payload.extend_from_slice(state.as_bytes());
        payload.extend_from_slice(message.as_bytes());
        self.send(&payload).await;
    }

    /// After a login: answers COM_PING with OK until COM_QUIT or end of stream.
    pub async fn serve_commands(&mut self) {
        while let Some(packet) = self.recv().await {
            match packet.first() {
                Some(0x0e) => self.ok().await,
                Some(0x01) | None => return,
                Some(other) => panic!("unexpected command 0x{other:02x}"),
            }
        }
    }
}

/// Accepts one connection and runs `script` on it. The handle's result is the script's.
pub async fn spawn<F, Fut>(script: F) -> (SocketAddr, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(Peer { io: Box::new(stream), seq: 0 }).await;
    });
    (addr, task)
}

fn server_tls_config() -> Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .unwrap();
    Arc::new(config)
}
