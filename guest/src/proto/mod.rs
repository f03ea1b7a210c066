//! The sans-IO MySQL protocol core: packets in, packets and results out.
//!
//! Nothing here reads or writes a socket; [`crate::link`] moves the bytes. Framing and the
//! packet formats come from `mysql_common`; this module holds the state machines that sequence
//! them (login, one query's responses, prepared statements) and the decoding of text- and
//! binary-protocol values.

pub mod binary;
pub mod command;
#[cfg(test)]
mod fuzz;
pub mod login;
pub mod query;
pub mod statement;
pub mod value;

use crate::bindings::exports::leashed::mysql::types::{Error, ServerError};
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::ErrPacket;

/// First byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xFF;
/// First byte of an EOF packet, of a result-set-ending OK under CLIENT_DEPRECATE_EOF, and of an
/// auth-switch request.
pub const EOF_HEADER: u8 = 0xFE;
/// First byte of an "auth more data" packet.
pub const MORE_DATA_HEADER: u8 = 0x01;
/// First byte of a LOCAL INFILE request, and of a NULL cell in a text row.
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;

/// A protocol error: the peer sent bytes this client cannot make sense of.
pub fn protocol(what: impl std::fmt::Display) -> Error {
    Error::Protocol(what.to_string())
}

/// Parses an ERR packet into the server's error.
///
/// MariaDB may interleave progress reports (also 0xFF) only when CLIENT_PROGRESS is negotiated,
/// which this client never asks for, so a progress report here is a protocol error.
pub fn parse_err(packet: &[u8], caps: CapabilityFlags) -> Result<ServerError, Error> {
    let err: ErrPacket<'_> =
        ParseBuf(packet).parse(caps).map_err(|e| protocol(format!("malformed ERR packet: {e}")))?;
    if !err.is_error() {
        return Err(protocol("unexpected progress report"));
    }
    let err = err.server_error();
    Ok(ServerError {
        code: err.error_code(),
        sql_state: err.sql_state_ref().map(|s| s.as_str().into_owned()).unwrap_or_else(|| "HY000".to_string()),
        message: err.message_str().into_owned(),
    })
}
