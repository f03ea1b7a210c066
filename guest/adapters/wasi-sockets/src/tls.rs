//! `start-tls` inside the adapter: a rustls client session over the socket's wasi streams. The
//! handshake runs under the connect timeout; afterwards the reader and writer move plaintext
//! through the session, and the ciphertext goes over the `Wire` with the usual deadlines.
//!
//! rustls speaks `std::io`; `WireIo` is the bridge, and it keeps the leashed error code of a
//! failed read or write so the guest sees `timed-out` or `connection-reset`, not a TLS error.

use crate::exports::leashed::net::tcp::{ErrorCode, TlsOptions, TlsVerify};
use crate::tls_config::{self, Verify};
use crate::wire::{Deadline, Wire};
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::time::Duration;

/// Runs the client handshake; the session that comes out encrypts everything after it.
pub fn handshake(
    wire: &Wire,
    options: &TlsOptions,
    deadline: Deadline,
    write_timeout: Option<Duration>,
) -> Result<ClientConnection, ErrorCode> {
    let verify = match options.verify {
        TlsVerify::NoVerify => Verify::Nothing,
        TlsVerify::VerifyCa => Verify::Ca,
        TlsVerify::VerifyIdentity => Verify::Identity,
    };
    let config = tls_config::client_config(verify, options.ca_pem.as_deref()).map_err(ErrorCode::Tls)?;
    let name = tls_config::server_name(&options.server_name).map_err(ErrorCode::Tls)?;
    let failed = |why: &dyn std::fmt::Display| ErrorCode::Tls(tls_config::handshake_failed(&options.server_name, why));
    let mut session = ClientConnection::new(config, name).map_err(|e| failed(&e))?;
    let mut io = WireIo { wire, read_deadline: deadline, write_timeout, failure: None };
    while session.is_handshaking() {
        if let Err(e) = session.complete_io(&mut io) {
            return Err(io.failure.take().unwrap_or_else(|| failed(&e)));
        }
    }
    send_pending(&mut session, &mut io)?;
    wire.flush(write_timeout)?;
    Ok(session)
}

/// Up to `max` bytes of plaintext, reading ciphertext (until `deadline`) as needed; empty at end
/// of stream.
pub fn read(session: &mut ClientConnection, wire: &Wire, max: usize, deadline: Deadline) -> Result<Vec<u8>, ErrorCode> {
    let mut plaintext = vec![0; max.min(64 * 1024)];
    loop {
        match session.reader().read(&mut plaintext) {
            Ok(n) => {
                plaintext.truncate(n);
                return Ok(plaintext);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The peer closed the TCP stream without a TLS close_notify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ErrorCode::ConnectionReset),
            Err(e) => return Err(ErrorCode::Tls(e.to_string())),
        }
        let mut io = WireIo { wire, read_deadline: deadline, write_timeout: None, failure: None };
        if let Err(e) = session.read_tls(&mut io) {
            return Err(io.failure.take().unwrap_or_else(|| ErrorCode::Other(e.to_string())));
        }
        session.process_new_packets().map_err(|e| ErrorCode::Tls(e.to_string()))?;
        // A key update or an alert may want an answer.
        send_pending(session, &mut io)?;
    }
}

/// Encrypts all of `bytes` and writes the records.
pub fn write(
    session: &mut ClientConnection,
    wire: &Wire,
    mut bytes: &[u8],
    timeout: Option<Duration>,
) -> Result<(), ErrorCode> {
    let mut io = WireIo { wire, read_deadline: Deadline::after(None), write_timeout: timeout, failure: None };
    while !bytes.is_empty() {
        let taken = session.writer().write(bytes).map_err(|e| ErrorCode::Other(e.to_string()))?;
        bytes = &bytes[taken..];
        send_pending(session, &mut io)?;
    }
    Ok(())
}

fn send_pending(session: &mut ClientConnection, io: &mut WireIo) -> Result<(), ErrorCode> {
    while session.wants_write() {
        if let Err(e) = session.write_tls(io) {
            return Err(io.failure.take().unwrap_or_else(|| ErrorCode::Other(e.to_string())));
        }
    }
    Ok(())
}

/// The wire as `std::io`, for rustls. A failure keeps its leashed error code in `failure`.
struct WireIo<'a> {
    wire: &'a Wire,
    read_deadline: Deadline,
    write_timeout: Option<Duration>,
    failure: Option<ErrorCode>,
}

impl WireIo<'_> {
    fn fail(&mut self, code: ErrorCode) -> io::Error {
        let error = io::Error::other(format!("{code:?}"));
        self.failure = Some(code);
        error
    }
}

impl Read for WireIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.wire.read(buf.len(), self.read_deadline) {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            Err(code) => Err(self.fail(code)),
        }
    }
}

impl Write for WireIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.wire.write_all(buf, self.write_timeout) {
            Ok(()) => Ok(buf.len()),
            Err(code) => Err(self.fail(code)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.wire.flush(self.write_timeout).map_err(|code| self.fail(code))
    }
}
