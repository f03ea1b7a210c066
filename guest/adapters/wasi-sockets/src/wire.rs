//! The byte streams of a connected wasi socket, read and written with deadlines. A wasi stream
//! never blocks by itself here: each call that would wait polls the stream's pollable together
//! with a monotonic-clock timer, so every wait ends by the timeout the guest asked for.
//!
//! Every pollable is dropped before the call returns: wasmtime refuses to drop a stream (or a
//! socket) while a pollable made from it lives.

use crate::errors;
use crate::exports::leashed::net::tcp::ErrorCode;
use crate::wasi::clocks::monotonic_clock;
use crate::wasi::io::poll::{Pollable, poll};
use crate::wasi::io::streams::{InputStream, OutputStream, StreamError};
use std::time::Duration;

/// When a wait gives up: an instant of the monotonic clock, or never.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Option<u64>);

impl Deadline {
    /// `timeout` from now; `None` waits for ever.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| monotonic_clock::now().saturating_add(saturating_nanos(t))))
    }
}

fn saturating_nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until `ready` fires; `timed-out` when the deadline passes first.
pub fn wait(ready: &Pollable, deadline: Deadline) -> Result<(), ErrorCode> {
    let Deadline(Some(at)) = deadline else {
        ready.block();
        return Ok(());
    };
    let timer = monotonic_clock::subscribe_instant(at);
    let fired = poll(&[ready, &timer]);
    if fired.contains(&0) { Ok(()) } else { Err(ErrorCode::TimedOut) }
}

/// The two streams of a connected socket. Declared input first, output second: the order they
/// are dropped in, both before the socket that owns them.
pub struct Wire {
    pub input: InputStream,
    pub output: OutputStream,
}

impl Wire {
    /// Up to `max` bytes, waiting (until `deadline`) for at least one; empty at end of stream.
    pub fn read(&self, max: usize, deadline: Deadline) -> Result<Vec<u8>, ErrorCode> {
        loop {
            match self.input.read(max as u64) {
                Ok(bytes) if !bytes.is_empty() => return Ok(bytes),
                Ok(_) => wait(&self.input.subscribe(), deadline)?,
                Err(StreamError::Closed) => return Ok(Vec::new()),
                Err(StreamError::LastOperationFailed(e)) => return Err(errors::from_stream(&e.to_debug_string())),
            }
        }
    }

    /// Writes all of `bytes` as fast as the stream takes them; `timed-out` when it takes nothing
    /// for `timeout` (each bit of progress starts the timeout again).
    pub fn write_all(&self, mut bytes: &[u8], timeout: Option<Duration>) -> Result<(), ErrorCode> {
        let mut deadline = Deadline::after(timeout);
        while !bytes.is_empty() {
            let permitted = self.output.check_write().map_err(broken)?;
            if permitted == 0 {
                wait(&self.output.subscribe(), deadline)?;
                continue;
            }
            let n = bytes.len().min(usize::try_from(permitted).unwrap_or(usize::MAX));
            self.output.write(&bytes[..n]).map_err(broken)?;
            bytes = &bytes[n..];
            deadline = Deadline::after(timeout);
        }
        Ok(())
    }

    /// Waits until everything written has been handed to the OS.
    pub fn flush(&self, timeout: Option<Duration>) -> Result<(), ErrorCode> {
        self.output.flush().map_err(broken)?;
        let deadline = Deadline::after(timeout);
        // The stream takes no writes until the flush is done; then check-write permits again.
        while self.output.check_write().map_err(broken)? == 0 {
            wait(&self.output.subscribe(), deadline)?;
        }
        Ok(())
    }
}

fn broken(e: StreamError) -> ErrorCode {
    match e {
        StreamError::Closed => ErrorCode::Closed,
        StreamError::LastOperationFailed(e) => errors::from_stream(&e.to_debug_string()),
    }
}
