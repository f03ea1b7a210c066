//! Two-tier socket errors: [`NetError`] is what host code returns; [`NetError::code`] and
//! `convert_error_code` are the one place it becomes the WIT `error-code` the guest sees.
//!
//! A trap is never an error code: an invalid handle, or a drop the close policy forbids, stops
//! the guest instead.

use crate::bindings::ErrorCode;
use std::io;

/// A leashed:net failure: either an error code for the guest, or a trap.
#[derive(Debug)]
pub enum NetError {
    /// Returned to the guest as `error-code`.
    Code(ErrorCode),
    /// Traps the guest (a host-side invariant or the guest's misuse of a handle).
    Trap(wasmtime::Error),
}

impl NetError {
    /// An error code for the guest.
    pub fn code(code: ErrorCode) -> Self {
        NetError::Code(code)
    }
}

impl From<ErrorCode> for NetError {
    fn from(code: ErrorCode) -> Self {
        NetError::Code(code)
    }
}

impl From<wasmtime::component::ResourceTableError> for NetError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        NetError::Trap(e.into())
    }
}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        NetError::Code(code_of(&e))
    }
}

/// Maps an OS error to the guest's error code: by errno kind first, then `other` with the text.
pub fn code_of(e: &io::Error) -> ErrorCode {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => ErrorCode::ConnectionRefused,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => ErrorCode::ConnectionReset,
        TimedOut => ErrorCode::TimedOut,
        NotConnected => ErrorCode::Closed,
        _ => ErrorCode::Other(e.to_string()),
    }
}
