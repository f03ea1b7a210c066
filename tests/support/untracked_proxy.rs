//! A TCP proxy on 127.0.0.1 in front of a real MySQL server that hides one capability: it
//! clears CLIENT_SESSION_TRACK in the server's greeting and relays everything else untouched.
//! The client then talks to the real server as it would to one that cannot track session
//! state (MySQL 5.6, or a proxy that strips it).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// CLIENT_SESSION_TRACK, bit 23: bit 7 of the greeting's upper capability bytes.
const SESSION_TRACK_IN_UPPER: u16 = 1 << 7;

/// The running proxy; it stops when dropped.
pub struct UntrackedProxy {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl UntrackedProxy {
    /// Starts relaying to `server`; must be called inside a tokio runtime.
    pub async fn start(server: SocketAddr) -> UntrackedProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, server));
            }
        });
        UntrackedProxy { addr, accept }
    }
}

impl Drop for UntrackedProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(mut client: TcpStream, server: SocketAddr) {
    let Ok(mut upstream) = TcpStream::connect(server).await else { return };
    let Ok(greeting) = read_packet(&mut upstream).await else { return };
    if client.write_all(&without_session_track(greeting)).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// One whole packet, header included.
async fn read_packet(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut packet = vec![0; 4];
    stream.read_exact(&mut packet).await?;
    let len = usize::from(packet[0]) | usize::from(packet[1]) << 8 | usize::from(packet[2]) << 16;
    packet.resize(4 + len, 0);
    stream.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}

/// The greeting (protocol 10) with CLIENT_SESSION_TRACK cleared: after the version string come
/// the connection id (4), the first auth data (8), a filler (1), the lower capabilities (2),
/// the character set (1), the status (2), then the upper capabilities (2).
fn without_session_track(mut greeting: Vec<u8>) -> Vec<u8> {
    let version_end = 5 + greeting[5..].iter().position(|&b| b == 0).expect("a NUL-terminated version");
    let upper = version_end + 1 + 4 + 8 + 1 + 2 + 1 + 2;
    let caps = u16::from_le_bytes([greeting[upper], greeting[upper + 1]]);
    assert!(caps & SESSION_TRACK_IN_UPPER != 0, "the server offers session tracking to begin with");
    greeting[upper..upper + 2].copy_from_slice(&(caps & !SESSION_TRACK_IN_UPPER).to_le_bytes());
    greeting
}
