//! The state behind each lent handle: one OS socket shared by a connection and the reader and
//! writer it lends.
//!
//! The socket is reference-counted: the OS fd closes when the connection and every stream lent
//! from it are gone, which is exactly the drop rule the WIT contract states. The one exception is
//! the `reclaim` close policy, which closes the fd early through [`Socket::reclaim`]; the streams
//! left behind then fail with `closed`. Every table entry owns a [`HandleGuard`], so releasing a
//! handle is recorded by the audit whichever way the entry dies.
//!
//! A socket carries plain TCP until `start-tls` swaps its transport for a TLS stream over the
//! same fd; the lent reader and writer then read and write through TLS.

use super::budget::BudgetPermit;
use super::tls;
use crate::audit::HandleGuard;
use crate::bindings::leashed::net::tcp::{ErrorCode, TlsOptions};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Largest single read the host serves, whatever `max` the guest asks for.
pub const MAX_READ: usize = 1 << 20;

/// What carries the bytes: the TCP stream itself, or TLS over it.
#[derive(Debug, Clone)]
enum Transport {
    Plain(Arc<TcpStream>),
    /// The async lock serializes reads and writes on the TLS session (a store runs one guest
    /// call at a time, so it is never contended).
    Tls(Arc<tokio::sync::Mutex<TlsStream<TcpStream>>>),
}

/// One connected OS socket and the limits that apply to it.
#[derive(Debug)]
pub struct Socket {
    /// `None` once closed (reclaimed, or a failed TLS handshake): the fd is closed.
    stream: Mutex<Option<Transport>>,
    /// Closed by the `reclaim` policy (rather than by a failed TLS handshake).
    reclaimed: AtomicBool,
    /// `shutdown` was called in some direction: the socket can serve no other session.
    shut_down: AtomicBool,
    /// The fd the stream had, for the audit's cross-check (it stays recorded after close).
    pub fd: Option<i32>,
    /// The socket's inode (`socket:[N]` in /proc/self/fd), read once when it connected: an fd
    /// number may be reused, the inode names this socket.
    pub inode: Option<u64>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The connect timeout this connection was made with; it also bounds its TLS handshake.
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// When the TCP connection was made (session reuse retires old sockets).
    pub born: std::time::Instant,
    reader_lent: AtomicBool,
    writer_lent: AtomicBool,
    /// Its place under a host-wide connection cap, if any, until the socket is dropped.
    _permit: Option<BudgetPermit>,
}

/// Which stream of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSide {
    Read,
    Write,
}

impl Socket {
    pub fn new(
        stream: TcpStream,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
        permit: Option<BudgetPermit>,
    ) -> io::Result<Arc<Socket>> {
        let fd = raw_fd(&stream);
        Ok(Arc::new(Socket {
            peer: stream.peer_addr()?,
            local: stream.local_addr()?,
            fd,
            inode: fd.and_then(crate::os_fds::socket_inode),
            stream: Mutex::new(Some(Transport::Plain(Arc::new(stream)))),
            reclaimed: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            connect_timeout,
            read_timeout,
            write_timeout,
            born: std::time::Instant::now(),
            reader_lent: AtomicBool::new(false),
            writer_lent: AtomicBool::new(false),
            _permit: permit,
        }))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Transport>> {
        self.stream.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The transport, unless the socket is closed (then `NotConnected`, which maps to `closed`).
    fn transport(&self) -> io::Result<Transport> {
        self.slot().clone().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the connection is closed"))
    }

    /// Closes the OS socket now, whatever handles still point at it.
    pub fn reclaim(&self) {
        self.reclaimed.store(true, Ordering::Release);
        self.slot().take();
    }

    /// Whether `shutdown` was called on it, in any direction.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Whether [`Socket::reclaim`] closed it.
    pub fn is_reclaimed(&self) -> bool {
        self.reclaimed.load(Ordering::Acquire)
    }

    /// Upgrades the socket to TLS in place. On a failed handshake the socket is closed, since
    /// the stream is in an unknown state.
    pub async fn start_tls(&self, options: &TlsOptions, limit: Option<Duration>) -> Result<(), ErrorCode> {
        let config = tls::client_config(options)?;
        let plain = match self.slot().take() {
            Some(Transport::Plain(plain)) => plain,
            Some(tls @ Transport::Tls(_)) => {
                *self.slot() = Some(tls);
                return Err(ErrorCode::InvalidState);
            }
            None => return Err(ErrorCode::Closed),
        };
        // No read or write holds the stream between guest calls, so this is the only reference.
        let tcp = match Arc::try_unwrap(plain) {
            Ok(tcp) => tcp,
            Err(plain) => {
                *self.slot() = Some(Transport::Plain(plain));
                return Err(ErrorCode::InvalidState);
            }
        };
        let handshake = async { tls::handshake(tcp, config, &options.server_name).await.map_err(io::Error::other) };
        match with_timeout(limit, handshake).await {
            Ok(stream) => {
                *self.slot() = Some(Transport::Tls(Arc::new(tokio::sync::Mutex::new(stream))));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(ErrorCode::TimedOut),
            Err(e) => Err(match e.into_inner().map(|inner| inner.downcast::<ErrorCode>()) {
                Some(Ok(code)) => *code,
                _ => ErrorCode::Tls("TLS handshake failed".into()),
            }),
        }
    }

    fn lent_flag(&self, side: StreamSide) -> &AtomicBool {
        match side {
            StreamSide::Read => &self.reader_lent,
            StreamSide::Write => &self.writer_lent,
        }
    }

    /// Marks a stream as lent; false if one is lent already.
    pub fn try_lend(&self, side: StreamSide) -> bool {
        !self.lent_flag(side).swap(true, Ordering::AcqRel)
    }

    /// Marks a stream as returned.
    pub fn give_back(&self, side: StreamSide) {
        self.lent_flag(side).store(false, Ordering::Release);
    }

    /// Reads up to `max` (at least 1) bytes, waiting for at least one; an empty result is end of
    /// stream.
    pub async fn read(&self, max: usize) -> io::Result<Vec<u8>> {
        // Read into spare capacity: zeroing a `max`-sized buffer on every call would cost more
        // than the few bytes a typical reply carries.
        let mut buf = Vec::with_capacity(max.min(MAX_READ));
        match self.transport()? {
            Transport::Plain(stream) => {
                let read = async {
                    loop {
                        stream.readable().await?;
                        match stream.try_read_buf(&mut buf) {
                            Ok(n) => return Ok(n),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                };
                with_timeout(self.read_timeout, read).await?;
            }
            Transport::Tls(tls) => {
                with_timeout(self.read_timeout, async { tls.lock().await.read_buf(&mut buf).await }).await?;
            }
        }
        Ok(buf)
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        let stream = match self.transport()? {
            Transport::Plain(stream) => stream,
            Transport::Tls(tls) => {
                // TLS buffers records: flush so the bytes leave now.
                let write = async {
                    let mut tls = tls.lock().await;
                    tls.write_all(bytes).await?;
                    tls.flush().await
                };
                return with_timeout(self.write_timeout, write).await;
            }
        };
        while !bytes.is_empty() {
            let wrote = with_timeout(self.write_timeout, async {
                loop {
                    stream.writable().await?;
                    match stream.try_write(bytes) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
            })
            .await?;
            bytes = &bytes[wrote..];
        }
        Ok(())
    }

    /// `shutdown(2)` on one or both directions.
    pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.shut_down.store(true, Ordering::Release);
        match self.transport()? {
            Transport::Plain(stream) => socket2::SockRef::from(&*stream).shutdown(how),
            Transport::Tls(tls) => socket2::SockRef::from(tls.lock().await.get_ref().0).shutdown(how),
        }
    }

    /// Whether the peer has neither closed the connection nor sent anything since it was last
    /// read: a non-blocking peek at the TCP bytes (below TLS, if any). A parked MySQL session
    /// the server killed or timed out shows up here as end of stream, a reset, or an
    /// unsolicited error packet.
    pub fn is_quiet(&self) -> bool {
        let Some(transport) = self.slot().clone() else { return false };
        let peek = |tcp: &TcpStream| {
            let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
            // The fd is non-blocking (tokio's), so an idle socket answers WouldBlock at once.
            matches!(socket2::SockRef::from(tcp).peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        };
        match transport {
            Transport::Plain(tcp) => peek(&tcp),
            // Nothing uses a parked socket, so the lock is free; if not, it is not idle.
            Transport::Tls(tls) => tls.try_lock().is_ok_and(|tls| peek(tls.get_ref().0)),
        }
    }

    /// Fails with `NotConnected` (`closed`) if the socket is closed.
    pub fn check_open(&self) -> io::Result<()> {
        self.transport().map(drop)
    }
}

#[cfg(unix)]
fn raw_fd(stream: &TcpStream) -> Option<i32> {
    use std::os::fd::AsRawFd;
    Some(stream.as_raw_fd())
}

#[cfg(not(unix))]
fn raw_fd(_: &TcpStream) -> Option<i32> {
    None
}

/// Runs `op`, failing with `TimedOut` after `limit` (if any).
pub async fn with_timeout<T>(limit: Option<Duration>, op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match limit {
        None => op.await,
        Some(limit) => tokio::time::timeout(limit, op)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
    }
}

/// A `connection` handle: the socket, and its audit guard.
#[derive(Debug)]
pub struct LentConnection {
    pub socket: Arc<Socket>,
    pub guard: HandleGuard,
    /// The guest dropped it while streams lived (deferred or reclaim policy): the entry stays in
    /// the table, as their parent, until the last of them is dropped.
    pub dropped_by_guest: bool,
    /// The guest parked it (`park`): at its final release the socket goes to the parking lot
    /// under this key, with this state, instead of closing.
    pub park: Option<(String, Vec<u8>)>,
}

/// A `reader` handle, lent by a connection.
#[derive(Debug)]
pub struct LentReader {
    pub socket: Arc<Socket>,
    pub guard: HandleGuard,
    /// The table slot of the connection that lent it.
    pub parent_rep: u32,
}

/// A `writer` handle, lent by a connection.
#[derive(Debug)]
pub struct LentWriter {
    pub socket: Arc<Socket>,
    pub guard: HandleGuard,
    /// The table slot of the connection that lent it.
    pub parent_rep: u32,
}

/// What a reader and a writer have in common, for the code that uses or drops either.
pub trait LentStream: std::any::Any + Send {
    fn socket(&self) -> &Arc<Socket>;
    fn guard_mut(&mut self) -> &mut HandleGuard;
    /// The table slot of the connection that lent it.
    fn parent_rep(&self) -> u32;
}

impl LentStream for LentReader {
    fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
    fn guard_mut(&mut self) -> &mut HandleGuard {
        &mut self.guard
    }
    fn parent_rep(&self) -> u32 {
        self.parent_rep
    }
}

impl LentStream for LentWriter {
    fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
    fn guard_mut(&mut self) -> &mut HandleGuard {
        &mut self.guard
    }
    fn parent_rep(&self) -> u32 {
        self.parent_rep
    }
}

impl Drop for LentReader {
    fn drop(&mut self) {
        self.socket.give_back(StreamSide::Read);
    }
}

impl Drop for LentWriter {
    fn drop(&mut self) {
        self.socket.give_back(StreamSide::Write);
    }
}
