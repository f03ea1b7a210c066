//! The leashed:net resources over a wasi socket: `connection`, and the `reader` and `writer` it
//! lends, with the contract's drop rules.
//!
//! All three share one `Session` (the wasi socket, its streams, the TLS state), which goes
//! away, and closes the socket, only when the last of them is dropped. A connection dropped
//! while its reader or writer lives traps with the message the leashed host gives under its
//! strict close policy, so a component that forgets a stream fails the same way on a stock
//! runtime as under leashed.

use crate::connect::{self, Connected};
use crate::exports::leashed::net::tcp::{
    ConnectOptions, ErrorCode, GuestConnection, GuestReader, GuestWriter, Reader, ShutdownType, SocketAddress,
    TlsOptions, Writer,
};
use crate::wasi::sockets::tcp::{ShutdownType as WasiShutdown, TcpSocket};
use crate::wire::{Deadline, Wire};
use crate::{errors, tls};
use rustls::ClientConnection;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// What the leashed host uses when the guest names no timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most one `read` returns, as on the leashed host.
const MAX_READ: usize = 1 << 20;

thread_local! {
    /// Handles are numbered in the order they are lent, as the leashed host's audit numbers them.
    static NEXT_HANDLE: Cell<u32> = const { Cell::new(1) };
}

fn next_handle() -> u32 {
    NEXT_HANDLE.with(|next| next.replace(next.get() + 1))
}

/// One connected socket, shared by a connection and its streams. Fields drop in the order they
/// are declared: the TLS state, then the wasi streams, then the wasi socket (wasmtime traps when
/// a socket is dropped before its streams).
struct Session {
    tls: Option<ClientConnection>,
    wire: Wire,
    socket: TcpSocket,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// A failed TLS handshake closes the connection for good.
    closed: bool,
    /// The live reader and writer, by handle number.
    reader: Option<u32>,
    writer: Option<u32>,
}

impl Session {
    fn usable(&self) -> Result<(), ErrorCode> {
        if self.closed { Err(ErrorCode::Closed) } else { Ok(()) }
    }
}

pub struct LentConnection {
    id: u32,
    session: Rc<RefCell<Session>>,
}

pub struct LentReader {
    id: u32,
    session: Rc<RefCell<Session>>,
}

pub struct LentWriter {
    id: u32,
    session: Rc<RefCell<Session>>,
}

fn millis(ms: Option<u32>) -> Option<Duration> {
    ms.map(|ms| Duration::from_millis(ms.into()))
}

impl GuestConnection for LentConnection {
    fn connect(
        host: String,
        port: u16,
        options: ConnectOptions,
    ) -> Result<crate::exports::leashed::net::tcp::Connection, ErrorCode> {
        // wasi:sockets 0.2 has no TCP_NODELAY; `options.nodelay` is left to the runtime.
        let connect_timeout = millis(options.connect_timeout_ms).unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let Connected { wire, socket } = connect::connect(&host, port, Deadline::after(Some(connect_timeout)))?;
        let session = Session {
            tls: None,
            wire,
            socket,
            connect_timeout,
            read_timeout: millis(options.read_timeout_ms),
            write_timeout: millis(options.write_timeout_ms).or(Some(DEFAULT_WRITE_TIMEOUT)),
            closed: false,
            reader: None,
            writer: None,
        };
        let connection = LentConnection { id: next_handle(), session: Rc::new(RefCell::new(session)) };
        Ok(crate::exports::leashed::net::tcp::Connection::new(connection))
    }

    fn reader(&self) -> Result<Reader, ErrorCode> {
        let mut session = self.session.borrow_mut();
        if session.reader.is_some() {
            return Err(ErrorCode::InvalidState);
        }
        let id = next_handle();
        session.reader = Some(id);
        Ok(Reader::new(LentReader { id, session: Rc::clone(&self.session) }))
    }

    fn writer(&self) -> Result<Writer, ErrorCode> {
        let mut session = self.session.borrow_mut();
        if session.writer.is_some() {
            return Err(ErrorCode::InvalidState);
        }
        let id = next_handle();
        session.writer = Some(id);
        Ok(Writer::new(LentWriter { id, session: Rc::clone(&self.session) }))
    }

    fn shutdown(&self, how: ShutdownType) -> Result<(), ErrorCode> {
        let how = match how {
            ShutdownType::Receive => WasiShutdown::Receive,
            ShutdownType::Send => WasiShutdown::Send,
            ShutdownType::Both => WasiShutdown::Both,
        };
        self.session.borrow().socket.shutdown(how).map_err(errors::from_socket)
    }

    fn peer_address(&self) -> Result<SocketAddress, ErrorCode> {
        let address = self.session.borrow().socket.remote_address().map_err(errors::from_socket)?;
        Ok(connect::to_contract(address))
    }

    fn local_address(&self) -> Result<SocketAddress, ErrorCode> {
        let address = self.session.borrow().socket.local_address().map_err(errors::from_socket)?;
        Ok(connect::to_contract(address))
    }

    fn start_tls(&self, options: TlsOptions) -> Result<(), ErrorCode> {
        let mut session = self.session.borrow_mut();
        session.usable()?;
        if session.tls.is_some() {
            return Err(ErrorCode::InvalidState);
        }
        let deadline = Deadline::after(Some(session.connect_timeout));
        match tls::handshake(&session.wire, &options, deadline, session.write_timeout) {
            Ok(tls) => {
                session.tls = Some(tls);
                Ok(())
            }
            Err(e) => {
                session.closed = true;
                let _ = session.socket.shutdown(WasiShutdown::Both);
                Err(e)
            }
        }
    }
}

impl Drop for LentConnection {
    fn drop(&mut self) {
        let session = self.session.borrow();
        let live: Vec<(&str, u32)> = [("reader", session.reader), ("writer", session.writer)]
            .into_iter()
            .filter_map(|(kind, id)| Some((kind, id?)))
            .collect();
        if !live.is_empty() {
            // A panic in a wasm component is a trap: the same end as on the leashed host.
            panic!("{}", children_message(self.id, &live));
        }
    }
}

/// The strict close policy's words, as the leashed host writes them.
pub fn children_message(connection: u32, live: &[(&str, u32)]) -> String {
    let live: Vec<String> = live.iter().map(|(kind, id)| format!("{kind} #{id}")).collect();
    format!(
        "resource has children: connection #{connection} was dropped while its {} still lent (strict close policy: \
         drop the writer and the reader before the connection)",
        live.join(" and ")
    )
}

impl GuestReader for LentReader {
    fn read(&self, max: u32) -> Result<Vec<u8>, ErrorCode> {
        if max == 0 {
            return Err(ErrorCode::InvalidState);
        }
        let mut session = self.session.borrow_mut();
        session.usable()?;
        let max = (max as usize).min(MAX_READ);
        let deadline = Deadline::after(session.read_timeout);
        let Session { tls, wire, .. } = &mut *session;
        match tls {
            Some(tls) => tls::read(tls, wire, max, deadline),
            None => wire.read(max, deadline),
        }
    }
}

impl Drop for LentReader {
    fn drop(&mut self) {
        let mut session = self.session.borrow_mut();
        if session.reader == Some(self.id) {
            session.reader = None;
        }
    }
}

impl GuestWriter for LentWriter {
    fn write(&self, bytes: Vec<u8>) -> Result<u32, ErrorCode> {
        let mut session = self.session.borrow_mut();
        session.usable()?;
        let timeout = session.write_timeout;
        let Session { tls, wire, .. } = &mut *session;
        match tls {
            Some(tls) => tls::write(tls, wire, &bytes, timeout)?,
            None => wire.write_all(&bytes, timeout)?,
        }
        Ok(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
    }

    fn flush(&self) -> Result<(), ErrorCode> {
        let session = self.session.borrow();
        session.usable()?;
        session.wire.flush(session.write_timeout)
    }
}

impl Drop for LentWriter {
    fn drop(&mut self) {
        let mut session = self.session.borrow_mut();
        if session.writer == Some(self.id) {
            session.writer = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_trap_names_every_live_stream_as_the_host_does() {
        assert_eq!(
            children_message(1, &[("reader", 2)]),
            "resource has children: connection #1 was dropped while its reader #2 still lent (strict close policy: \
             drop the writer and the reader before the connection)"
        );
        assert!(
            children_message(4, &[("reader", 5), ("writer", 6)])
                .contains("connection #4 was dropped while its reader #5 and writer #6 still lent")
        );
    }

    #[test]
    fn handles_are_numbered_in_lending_order() {
        let first = next_handle();
        assert_eq!(next_handle(), first + 1);
    }
}
