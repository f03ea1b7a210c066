//! The proxy's relay for one connection: whole frames both ways, the phase found from what the
//! client sends, and the script's one fault applied where the phase starts.

use super::frames::{self, Framing};
use super::{Fault, Hit, Opening, Phase, Shared};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the relay does after a frame.
enum Flow {
    Continue,
    /// Close both sockets (the client sees end of stream).
    Close,
    /// Reset the client's socket, close the server's.
    Reset,
    /// Hold both sockets open and forward nothing, until the proxy is dropped.
    Stall,
}

/// Relays until one side ends or the fault ends the conversation.
pub async fn run(client: TcpStream, server: TcpStream, phase: Phase, fault: Fault, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut relay = Relay::new(client, server, phase, fault, shared);
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    let (mut client_chunk, mut server_chunk) = (vec![0; 64 * 1024], vec![0; 64 * 1024]);
    loop {
        let (from_the_client, read) = tokio::select! {
            read = relay.client.read(&mut client_chunk) => (true, read),
            read = relay.server.read(&mut server_chunk) => (false, read),
        };
        let (buf, chunk) =
            if from_the_client { (&mut from_client, &client_chunk) } else { (&mut from_server, &server_chunk) };
        let flow = match read {
            Ok(0) | Err(_) => Flow::Close,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                relay.frames(buf, from_the_client).await
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Close => return,
            Flow::Reset => {
                let _ = socket2::SockRef::from(&relay.client).set_linger(Some(Duration::ZERO));
                return;
            }
            Flow::Stall => std::future::pending::<()>().await,
        }
    }
}

struct Relay<'a> {
    client: TcpStream,
    server: TcpStream,
    phase: Phase,
    fault: Fault,
    shared: &'a Shared,
    /// Both directions switch to TLS records after the client's SSLRequest.
    framing: Framing,
    /// MySQL packets the client has sent.
    client_packets: usize,
    /// The server asked for a LOCAL INFILE upload, and whether the upload has begun.
    infile_requested: bool,
    upload_begun: bool,
    /// The client-side cut starts with the client's next frame (after an SSLRequest).
    cut_next_client_frame: bool,
    /// The server-side phase has opened, and how many bytes of its answer have gone by.
    server_armed: bool,
    answer_bytes: usize,
    fired: bool,
    /// Server bytes still to drip.
    drip_left: usize,
}

impl<'a> Relay<'a> {
    fn new(client: TcpStream, server: TcpStream, phase: Phase, fault: Fault, shared: &'a Shared) -> Self {
        Relay {
            client,
            server,
            phase,
            fault,
            shared,
            framing: Framing::Mysql,
            client_packets: 0,
            infile_requested: false,
            upload_begun: false,
            cut_next_client_frame: false,
            server_armed: matches!(phase.server_after, Opening::Start),
            answer_bytes: 0,
            fired: false,
            drip_left: 0,
        }
    }

    /// Whether the client's frame (not yet forwarded) is `opening`.
    fn opens(&self, opening: Opening, frame: &[u8]) -> bool {
        if self.framing != Framing::Mysql {
            return false;
        }
        let payload = Framing::Mysql.payload(frame);
        match opening {
            Opening::Start => false,
            Opening::ClientPacket(n) => self.client_packets == n,
            Opening::SslRequest => frames::is_ssl_request(frame),
            Opening::Command { command, marker } => {
                frame[3] == 0
                    && payload.first() == Some(&command)
                    && (marker.is_empty() || payload.windows(marker.len()).any(|w| w == marker.as_bytes()))
            }
            Opening::Upload => self.infile_requested && !self.upload_begun,
        }
    }

    /// Handles every whole frame in `buf`, from the client or from the server.
    async fn frames(&mut self, buf: &mut Vec<u8>, from_the_client: bool) -> Flow {
        while let Some(frame) = self.framing.take(buf) {
            let flow = if from_the_client { self.client_frame(frame).await } else { self.server_frame(frame).await };
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        Flow::Continue
    }

    async fn client_frame(&mut self, frame: Vec<u8>) -> Flow {
        let opens_server = !self.server_armed && self.opens(self.phase.server_after, &frame);
        let mut cut_here = std::mem::take(&mut self.cut_next_client_frame);
        if let (Some(from), false) = (self.phase.client_from, self.fired)
            && self.fault.on_client()
            && self.opens(from, &frame)
        {
            match from {
                Opening::SslRequest => self.cut_next_client_frame = true,
                _ => cut_here = true,
            }
        }
        if self.framing == Framing::Mysql {
            self.upload_begun |= self.opens(Opening::Upload, &frame);
            self.client_packets += 1;
            if frames::is_ssl_request(&frame) {
                self.framing = Framing::Tls;
            }
        }
        if opens_server {
            self.server_armed = true;
        }
        if cut_here {
            self.record_hit(&frame, 0);
            let Fault::CutClient { after } = self.fault else { unreachable!("only a client cut acts here") };
            let _ = self.server.write_all(&frame[..after.min(frame.len())]).await;
            return Flow::Close;
        }
        match self.server.write_all(&frame).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    async fn server_frame(&mut self, mut frame: Vec<u8>) -> Flow {
        if self.framing == Framing::Mysql && frames::is_local_infile_request(&frame) {
            self.infile_requested = true;
        }
        let strikes =
            self.server_armed && !self.fired && !self.fault.on_client() && self.answer_bytes >= self.phase.server_skip;
        if self.server_armed {
            self.answer_bytes += frame.len();
        }
        if !strikes {
            return self.forward(&frame).await;
        }
        self.record_hit(&frame, self.answer_bytes - frame.len());
        if self.phase.gated {
            self.shared.gate.notified().await;
        }
        let header = self.framing.header_len();
        match self.fault {
            Fault::CutServer { after } => {
                let _ = self.client.write_all(&frame[..after.min(frame.len())]).await;
                Flow::Close
            }
            Fault::Reset => Flow::Reset,
            Fault::Stall => Flow::Stall,
            Fault::Truncate => {
                let keep = header + (frame.len() - header) / 2;
                self.forward(&frame[..keep]).await
            }
            Fault::FlipHeaderByte => {
                frame[3] ^= 0x80;
                self.forward(&frame).await
            }
            Fault::Drip { bytes, .. } => {
                self.drip_left = bytes;
                self.forward(&frame).await
            }
            Fault::CutClient { .. } => unreachable!("a client cut never strikes the server's bytes"),
        }
    }

    /// Sends server bytes to the client, a byte at a time while a drip lasts.
    async fn forward(&mut self, bytes: &[u8]) -> Flow {
        let Fault::Drip { gap, .. } = self.fault else {
            return self.write_to_client(bytes).await;
        };
        let dripped = self.drip_left.min(bytes.len());
        for byte in &bytes[..dripped] {
            if let Flow::Close = self.write_to_client(std::slice::from_ref(byte)).await {
                return Flow::Close;
            }
            tokio::time::sleep(gap).await;
        }
        self.drip_left -= dripped;
        self.write_to_client(&bytes[dripped..]).await
    }

    async fn write_to_client(&mut self, bytes: &[u8]) -> Flow {
        match self.client.write_all(bytes).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    fn record_hit(&mut self, frame: &[u8], offset: usize) {
        self.fired = true;
        let hit = Hit { frame: frame[..frame.len().min(16)].to_vec(), tls: self.framing == Framing::Tls, offset };
        *self.shared.hit.lock().unwrap() = Some(hit);
    }
}
