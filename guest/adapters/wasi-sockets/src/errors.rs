//! How wasi:sockets failures become leashed:net error codes: one function per source (a socket
//! call, a name lookup, a broken stream), so each failure has a single meaning for the guest.

use crate::exports::leashed::net::tcp::ErrorCode;
use crate::wasi::sockets::network::ErrorCode as WasiError;

/// A failed socket call (create, connect, shutdown, address).
pub fn from_socket(e: WasiError) -> ErrorCode {
    match e {
        // Stock wasmtime answers `access-denied` when the runtime gives no network (no
        // `-S inherit-network`) or its address check refuses the peer.
        WasiError::AccessDenied => ErrorCode::Denied,
        WasiError::NewSocketLimit => ErrorCode::LimitReached,
        WasiError::ConnectionRefused => ErrorCode::ConnectionRefused,
        WasiError::ConnectionReset | WasiError::ConnectionAborted => ErrorCode::ConnectionReset,
        WasiError::Timeout => ErrorCode::TimedOut,
        WasiError::NameUnresolvable => ErrorCode::NameUnresolvable,
        WasiError::InvalidState | WasiError::NotInProgress | WasiError::ConcurrencyConflict => ErrorCode::InvalidState,
        WasiError::RemoteUnreachable => ErrorCode::Other("the server's network is unreachable".into()),
        other => ErrorCode::Other(format!("wasi:sockets: {}", describe(other))),
    }
}

/// A failed name lookup of `host`.
pub fn from_lookup(host: &str, e: WasiError) -> ErrorCode {
    match e {
        WasiError::NameUnresolvable | WasiError::InvalidArgument => ErrorCode::NameUnresolvable,
        WasiError::PermanentResolverFailure | WasiError::AccessDenied => ErrorCode::Other(format!(
            "the runtime refused to look up '{host}' (wasmtime: -S allow-ip-name-lookup; or connect to an IP address)"
        )),
        WasiError::TemporaryResolverFailure => {
            ErrorCode::Other(format!("looking up '{host}' failed for now (temporary resolver failure)"))
        }
        other => from_socket(other),
    }
}

/// A stream that broke, from the text of its wasi:io error (`network-error-code`, which would
/// give the code itself, is unstable in WASI 0.2).
pub fn from_stream(debug_text: &str) -> ErrorCode {
    let text = debug_text.to_ascii_lowercase();
    if ["reset", "broken pipe", "aborted", "unexpected end", "unexpectedeof"].iter().any(|t| text.contains(t)) {
        ErrorCode::ConnectionReset
    } else if text.contains("timed out") {
        ErrorCode::TimedOut
    } else if text.contains("not connected") || text.contains("shut down") {
        ErrorCode::Closed
    } else {
        ErrorCode::Other(format!("the stream failed: {debug_text}"))
    }
}

fn describe(e: WasiError) -> &'static str {
    match e {
        WasiError::Unknown => "unknown error",
        WasiError::NotSupported => "not supported by this runtime",
        WasiError::InvalidArgument => "invalid argument",
        WasiError::OutOfMemory => "out of memory",
        WasiError::WouldBlock => "would block",
        WasiError::AddressNotBindable => "address not bindable",
        WasiError::AddressInUse => "address in use",
        WasiError::DatagramTooLarge => "datagram too large",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(code: ErrorCode) -> String {
        format!("{code:?}")
    }

    #[test]
    fn a_refusal_by_the_runtime_is_denied() {
        assert_eq!(show(from_socket(WasiError::AccessDenied)), show(ErrorCode::Denied));
    }

    #[test]
    fn socket_failures_keep_their_meaning() {
        assert_eq!(show(from_socket(WasiError::ConnectionRefused)), show(ErrorCode::ConnectionRefused));
        assert_eq!(show(from_socket(WasiError::ConnectionReset)), show(ErrorCode::ConnectionReset));
        assert_eq!(show(from_socket(WasiError::ConnectionAborted)), show(ErrorCode::ConnectionReset));
        assert_eq!(show(from_socket(WasiError::Timeout)), show(ErrorCode::TimedOut));
        assert_eq!(show(from_socket(WasiError::NewSocketLimit)), show(ErrorCode::LimitReached));
        assert_eq!(show(from_socket(WasiError::InvalidState)), show(ErrorCode::InvalidState));
        assert_eq!(
            show(from_socket(WasiError::NotSupported)),
            show(ErrorCode::Other("wasi:sockets: not supported by this runtime".into()))
        );
    }

    #[test]
    fn lookups_say_whether_the_name_is_unknown_or_the_lookup_refused() {
        assert_eq!(show(from_lookup("db", WasiError::NameUnresolvable)), show(ErrorCode::NameUnresolvable));
        let ErrorCode::Other(refused) = from_lookup("db.internal", WasiError::PermanentResolverFailure) else {
            panic!("a refused lookup is `other`")
        };
        assert!(refused.contains("'db.internal'") && refused.contains("allow-ip-name-lookup"), "{refused}");
        assert!(
            matches!(from_lookup("db", WasiError::TemporaryResolverFailure), ErrorCode::Other(t) if t.contains("temporary"))
        );
    }

    #[test]
    fn broken_streams_are_read_from_their_text() {
        assert_eq!(show(from_stream("Connection reset by peer (os error 104)")), show(ErrorCode::ConnectionReset));
        assert_eq!(show(from_stream("Broken pipe (os error 32)")), show(ErrorCode::ConnectionReset));
        assert_eq!(show(from_stream("connection timed out")), show(ErrorCode::TimedOut));
        assert_eq!(show(from_stream("Transport endpoint is not connected (os error 107)")), show(ErrorCode::Closed));
        assert_eq!(show(from_stream("odd")), show(ErrorCode::Other("the stream failed: odd".into())));
    }
}
