//! The words a user reads for an error the MySQL guest reported: the server's own errors the way
//! the mysql client prints them, and every other failure naming the server it happened with and
//! saying what kind of failure it was (I/O, protocol, timed out, refused by the policy).

use crate::bindings::leashed::net::tcp::ErrorCode;
use crate::bindings::{MysqlError, ServerError};

/// One line for `error`, which happened with `server` (`host:port`), without a trailing newline.
pub fn describe(error: &MysqlError, server: &str) -> String {
    let from_server = |e: &ServerError| format!("ERROR {} ({}): {}", e.code, e.sql_state, e.message);
    match error {
        MysqlError::Server(e) | MysqlError::Auth(e) => from_server(e),
        MysqlError::Io(ErrorCode::Denied) => {
            format!("error: connecting to {server} was denied by the host's allowlist")
        }
        MysqlError::Io(ErrorCode::TimedOut) => {
            format!("error: {server} did not answer in time (the connect, read or write timeout passed)")
        }
        MysqlError::Io(code) => format!("error: cannot talk to {server}: {}", describe_code(code)),
        MysqlError::Protocol(what) => format!("error: protocol error from {server}: {what}"),
        MysqlError::Invalid(what) => format!("error: {what}"),
        MysqlError::Closed => format!("error: the connection to {server} is closed"),
    }
}

/// What a socket error code means, in a few words.
pub fn describe_code(code: &ErrorCode) -> String {
    match code {
        ErrorCode::Denied => "denied by the allowlist".into(),
        ErrorCode::LimitReached => "the host's connection limit is reached".into(),
        ErrorCode::NameUnresolvable => "the host name does not resolve".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionReset => "the connection was reset or closed by the server".into(),
        ErrorCode::TimedOut => "timed out".into(),
        ErrorCode::Closed => "the connection is closed".into(),
        ErrorCode::InvalidState => "invalid socket state".into(),
        ErrorCode::Tls(why) => format!("TLS failed: {why}"),
        ErrorCode::Other(text) => text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_server_and_their_kind() {
        let server = "127.0.0.1:23306";
        let io = describe(&MysqlError::Io(ErrorCode::ConnectionReset), server);
        assert_eq!(io, "error: cannot talk to 127.0.0.1:23306: the connection was reset or closed by the server");
        let slow = describe(&MysqlError::Io(ErrorCode::TimedOut), server);
        assert!(slow.starts_with("error: 127.0.0.1:23306 did not answer in time"), "{slow}");
        let garbled = describe(&MysqlError::Protocol("packets out of order".into()), server);
        assert_eq!(garbled, "error: protocol error from 127.0.0.1:23306: packets out of order");
        let refused = ServerError { code: 1045, sql_state: "28000".into(), message: "Access denied".into() };
        assert_eq!(describe(&MysqlError::Auth(refused), server), "ERROR 1045 (28000): Access denied");
    }
}
