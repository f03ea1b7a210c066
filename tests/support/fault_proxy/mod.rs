//! A scriptable fault-injecting TCP proxy on 127.0.0.1, in front of a real server. It follows
//! the MySQL packet framing both ways (TLS record framing once the client has sent an
//! SSLRequest), finds the phase of the conversation a script names, and injects one fault there:
//! a cut either way, a reset, a stall, a truncated packet, a flipped header byte, or a slow drip.
//!
//! The relay itself lives in `relay.rs`; this file holds the script and the running proxy.

mod frames;
mod relay;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A point in the conversation, named by what the client sends.
#[derive(Debug, Clone, Copy)]
pub enum Opening {
    /// The connection's start: the server speaks first (its greeting).
    Start,
    /// The client's `n`th packet, counting from 0 (its handshake response or SSLRequest).
    ClientPacket(usize),
    /// The client's SSLRequest: everything after it is the TLS handshake.
    SslRequest,
    /// The first command packet whose first byte is `command` and whose payload contains
    /// `marker` (empty: any).
    Command { command: u8, marker: &'static str },
    /// The client's first packet after the server's LOCAL INFILE request: the upload.
    Upload,
}

/// Where a fault strikes, on each side.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Faults on the server's bytes hit the first server packet after this opening...
    pub server_after: Opening,
    /// ...that starts at least this many bytes into the server's answer.
    pub server_skip: usize,
    /// Hold the server's bytes at the fault until [`FaultProxy::release`] (so a test can take a
    /// first batch before the fault).
    pub gated: bool,
    /// A cut of the client's bytes starts with this opening's packet (for `SslRequest`: the
    /// bytes after it). `None`: the client sends nothing in this phase.
    pub client_from: Option<Opening>,
}

/// What the proxy does at the phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward `after` bytes of the server's packet, then close both sides.
    CutServer { after: usize },
    /// Forward `after` bytes of the client's packet, then close both sides.
    CutClient { after: usize },
    /// Reset the client's connection (SO_LINGER 0, then close): the client sees ECONNRESET.
    Reset,
    /// Forward nothing more either way, and keep both sockets open.
    Stall,
    /// Forward the packet's header and half its payload; drop the rest of it and go on relaying,
    /// so the client's framing slips.
    Truncate,
    /// Flip the top bit of header byte 3: a MySQL packet's sequence id, or the high byte of a
    /// TLS record's length.
    FlipHeaderByte,
    /// Forward the next `bytes` server bytes one at a time, `gap` apart, then relay as usual.
    Drip { bytes: usize, gap: Duration },
}

impl Fault {
    /// Whether the fault acts on the client's bytes (else on the server's).
    pub fn on_client(self) -> bool {
        matches!(self, Fault::CutClient { .. })
    }
}

/// Where the fault struck.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The first bytes of the frame it struck, header included (up to 16).
    pub frame: Vec<u8>,
    /// Whether that frame is a TLS record (else a MySQL packet).
    pub tls: bool,
    /// How far into the server's answer the frame started (0 for client-side faults).
    pub offset: usize,
}

/// What the relay and the test share.
#[derive(Default)]
struct Shared {
    hit: Mutex<Option<Hit>>,
    gate: Notify,
}

/// A running proxy for one connection; it stops, closing its sockets, when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Proxies the first connection to `upstream`, injecting `fault` at `phase`.
    pub async fn start(upstream: SocketAddr, phase: Phase, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let relay_shared = shared.clone();
        let task = tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else { return };
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
            relay::run(client, server, phase, fault, &relay_shared).await;
        });
        FaultProxy { addr, shared, task }
    }

    /// Cuts the first query's answer `cut_after` bytes in.
    pub async fn cut_mid_response(upstream: SocketAddr, cut_after: usize) -> FaultProxy {
        let phase = Phase {
            server_after: Opening::Command { command: 0x03, marker: "" },
            server_skip: cut_after,
            gated: false,
            client_from: None,
        };
        FaultProxy::start(upstream, phase, Fault::CutServer { after: 0 }).await
    }

    /// Lets a gated phase's fault go ahead.
    pub fn release(&self) {
        self.shared.gate.notify_one();
    }

    /// Where the fault struck; `None` if the conversation never reached the phase.
    pub fn hit(&self) -> Option<Hit> {
        self.shared.hit.lock().unwrap().clone()
    }
}
