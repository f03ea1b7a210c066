//! The I/O shell: a lent connection with its reader and writer, and MySQL packet framing over
//! them.
//!
//! This is the only module that touches `leashed:net`. It holds the one function that abandons
//! a connection, [`release`]: every path that gives a connection up goes through it, so no
//! stream is ever forgotten (the PyMySQL bug this project exists for).

use crate::bindings::exports::leashed::mysql::types::Error;
use crate::bindings::leashed::net::reuse;
use crate::bindings::leashed::net::tcp::{
    ConnectOptions, Connection, ErrorCode, Reader, ShutdownType, TlsOptions, Writer,
};
use crate::proto::protocol;
use bytes::BytesMut;
use mysql_common::proto::codec::PacketCodec;

/// A payload this long or longer is split into several packets.
const MAX_CHUNK: usize = 0xFF_FFFF;

/// How many bytes to ask the host for per read.
const READ_CHUNK: u32 = 64 * 1024;

/// A lent connection with both streams, framing MySQL packets.
///
/// Fields are declared writer, reader, connection so that even an implicit drop releases them in
/// the order the contract asks for; every deliberate abandon goes through [`Link::force_close`].
pub struct Link {
    writer: Writer,
    reader: Reader,
    connection: Connection,
    codec: PacketCodec,
    /// The sequence id the next packet either way carries, kept alongside the codec's (which it
    /// does not expose), so a wrong one is caught from its header, before the packet's length
    /// is waited for.
    next_seq: u8,
    rx: BytesMut,
    tx: BytesMut,
}

/// How many packets (chunks, each with its own sequence id) a payload of `len` bytes takes.
fn chunks(len: usize) -> u8 {
    (len / MAX_CHUNK + 1) as u8
}

/// Releases a connection and whichever of its streams were lent: the writer, then the reader,
/// then the connection. The single place a connection is abandoned.
pub fn release(writer: Option<Writer>, reader: Option<Reader>, connection: Connection) {
    drop(writer);
    drop(reader);
    drop(connection);
}

impl Link {
    /// Asks the host for a connection and both its streams. On failure, whatever was obtained is
    /// released before returning.
    pub fn connect(host: &str, port: u16, options: &ConnectOptions) -> Result<Link, Error> {
        let connection = Connection::connect(host, port, *options).map_err(Error::Io)?;
        let reader = match connection.reader() {
            Ok(reader) => reader,
            Err(code) => {
                release(None, None, connection);
                return Err(Error::Io(code));
            }
        };
        let writer = match connection.writer() {
            Ok(writer) => writer,
            Err(code) => {
                release(None, Some(reader), connection);
                return Err(Error::Io(code));
            }
        };
        Ok(Link::with_streams(writer, reader, connection))
    }

    /// Takes over a connection another instance parked under `key` (session reuse), with the
    /// state it parked; `None` when nothing is parked, or its streams cannot be lent.
    pub fn resume(key: &str) -> Option<(Link, Vec<u8>)> {
        let (connection, state) = reuse::resume(key)?;
        let Ok(reader) = connection.reader() else {
            release(None, None, connection);
            return None;
        };
        let Ok(writer) = connection.writer() else {
            release(None, Some(reader), connection);
            return None;
        };
        Some((Link::with_streams(writer, reader, connection), state))
    }

    fn with_streams(writer: Writer, reader: Reader, connection: Connection) -> Link {
        Link {
            writer,
            reader,
            connection,
            codec: PacketCodec::default(),
            next_seq: 0,
            // Grown by the first reply that needs it: a 64 KiB buffer up front made every fresh
            // instance grow its linear memory, which the host pays for twice (an mprotect to
            // grow, another to shrink the pooled slot back for the next instance).
            rx: BytesMut::new(),
            tx: BytesMut::new(),
        }
    }

    /// Asks the host to park the connection for another instance (session reuse) once it is
    /// released, instead of closing it. Whether the host will.
    pub fn offer_for_reuse(&self, key: &str, state: &[u8]) -> bool {
        reuse::park(&self.connection, key, state).is_ok()
    }

    /// Withdraws an offer: a connection shut down is never parked. For a session that turned
    /// out not to be clean after all.
    pub fn withdraw_offer(&self) {
        let _ = self.connection.shutdown(ShutdownType::Both);
    }

    /// Whether bytes the server sent are still unread.
    pub fn has_unread(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Abandons the connection: writer, reader and connection are released, in that order.
    pub fn force_close(self) {
        let Link { writer, reader, connection, .. } = self;
        release(Some(writer), Some(reader), connection);
    }

    /// Sets the largest packet the codec accepts.
    pub fn set_max_packet(&mut self, bytes: usize) {
        self.codec.max_allowed_packet = bytes;
    }

    /// Starts a new command: packet sequence numbers restart at 0.
    pub fn begin_command(&mut self) {
        self.codec.reset_seq_id();
        self.next_seq = 0;
    }

    /// Frames `payload` as the next packet and writes it.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.frame(payload)?;
        self.write_framed()
    }

    /// Writes several one-packet commands at once, each numbered as a command of its own: a
    /// pipeline. Their replies come back in order; call [`Link::next_reply`] before reading the
    /// reply to each command after the first.
    pub fn send_pipelined(&mut self, payloads: &[&[u8]]) -> Result<(), Error> {
        for payload in payloads {
            if payload.len() >= MAX_CHUNK {
                return Err(protocol("a command of 16 MiB or more cannot be pipelined"));
            }
            self.codec.reset_seq_id();
            self.next_seq = 0;
            self.frame(payload)?;
        }
        self.write_framed()
    }

    /// Frames `payload` as the next packet into the write buffer.
    fn frame(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.codec
            .encode(&mut &payload[..], &mut self.tx)
            .map_err(|e| protocol(format!("cannot frame packet: {e}")))?;
        self.next_seq = self.next_seq.wrapping_add(chunks(payload.len()));
        Ok(())
    }

    /// Writes everything framed so far.
    fn write_framed(&mut self) -> Result<(), Error> {
        let framed = self.tx.split();
        self.writer.write(&framed).map(drop).map_err(Error::Io)
    }

    /// Expects the reply to the next pipelined command: its packets are numbered from 1, as if
    /// its one-packet request had just been sent. (The codec has no setter for the sequence
    /// number, so an empty frame is encoded into a scratch buffer to advance it.)
    pub fn next_reply(&mut self) {
        self.codec.reset_seq_id();
        let _ = self.codec.encode(&mut &[][..], &mut BytesMut::new());
        self.next_seq = 1;
    }

    /// Reads the next whole packet, asking the host for more bytes as needed.
    pub fn recv(&mut self) -> Result<Vec<u8>, Error> {
        let mut packet = Vec::new();
        self.recv_into(&mut packet)?;
        Ok(packet)
    }

    /// Reads the next whole packet into `packet` (emptied first): a result's rows reuse one
    /// buffer instead of allocating and freeing one per row.
    pub fn recv_into(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        packet.clear();
        loop {
            // The codec checks the sequence id once the whole packet is in; a packet that is out
            // of order (the stream slipped, e.g. after a truncated packet) is caught from its
            // header instead, rather than after waiting for a length read from the wrong bytes.
            if packet.is_empty() && self.rx.len() >= 4 && self.rx[3] != self.next_seq {
                let (expected, got) = (self.next_seq, self.rx[3]);
                return Err(protocol(format!(
                    "bad packet framing: Packets out of sync (expected sequence id {expected}, got {got})"
                )));
            }
            match self.codec.decode(&mut self.rx, packet) {
                Ok(true) => {
                    self.next_seq = self.next_seq.wrapping_add(chunks(packet.len()));
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => return Err(protocol(format!("bad packet framing: {e}"))),
            }
            let chunk = self.reader.read(READ_CHUNK).map_err(Error::Io)?;
            if chunk.is_empty() {
                // The server hung up in the middle of a conversation.
                return Err(Error::Io(ErrorCode::ConnectionReset));
            }
            self.rx.extend_from_slice(&chunk);
        }
    }

    /// Has the host upgrade the lent connection to TLS. Nothing may be unread: the server sends
    /// nothing between the SSLRequest and the handshake.
    pub fn start_tls(&mut self, options: &TlsOptions) -> Result<(), Error> {
        if !self.rx.is_empty() {
            return Err(protocol("the server sent data before the TLS handshake"));
        }
        self.connection.start_tls(options).map_err(Error::Io)
    }

    /// The lent connection, for the calls that are not about bytes (shutdown, addresses).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}
