//! The guest's stderr kept for the host, when the policy captures it: the last 64 KiB of what
//! the guest wrote, older bytes dropped. A write never fails, so a chatty guest is never stopped
//! by its own logging (a Rust guest panics when stderr refuses a write).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How much of the guest's stderr is kept.
const KEPT_BYTES: usize = 64 * 1024;

/// A shared tail of the guest's stderr; clones write to and read from the same buffer.
#[derive(Clone, Default)]
pub struct StderrTail {
    kept: Arc<Mutex<Tail>>,
}

#[derive(Default)]
struct Tail {
    bytes: VecDeque<u8>,
    /// Everything ever written, to find what is new since a mark.
    written: u64,
}

impl StderrTail {
    /// All that is kept, as text.
    pub fn contents(&self) -> String {
        let tail = self.kept.lock().unwrap();
        String::from_utf8_lossy(&tail.bytes.iter().copied().collect::<Vec<u8>>()).into_owned()
    }

    /// A mark for [`StderrTail::since`].
    pub fn mark(&self) -> u64 {
        self.kept.lock().unwrap().written
    }

    /// What was written after `mark`, as far as it is still kept.
    pub fn since(&self, mark: u64) -> String {
        let tail = self.kept.lock().unwrap();
        let new = (tail.written - mark).min(tail.bytes.len() as u64) as usize;
        let bytes: Vec<u8> = tail.bytes.iter().skip(tail.bytes.len() - new).copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.kept.lock().unwrap();
        tail.written += bytes.len() as u64;
        let bytes = &bytes[bytes.len().saturating_sub(KEPT_BYTES)..];
        let overflow = (tail.bytes.len() + bytes.len()).saturating_sub(KEPT_BYTES);
        tail.bytes.drain(..overflow);
        tail.bytes.extend(bytes);
    }
}

impl AsyncWrite for StderrTail {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_64_kib_are_kept_and_marks_find_what_is_new() {
        let tail = StderrTail::default();
        tail.push(b"first\n");
        let mark = tail.mark();
        tail.push(b"second\n");
        assert_eq!(tail.since(mark), "second\n");
        assert_eq!(tail.contents(), "first\nsecond\n");
        tail.push(&vec![b'x'; KEPT_BYTES]);
        assert_eq!(tail.contents(), "x".repeat(KEPT_BYTES), "the oldest bytes went first");
        assert_eq!(tail.since(mark).len(), KEPT_BYTES);
    }
}
