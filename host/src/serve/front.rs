//! The client side: the listening socket, with a backlog deep enough for connections to wait
//! in ([`listen`]); a connection's socket watched for the client timeouts of limits.rs
//! ([`Watched`]), its responses marked done when hyper has written them ([`Tracked`]), and the
//! task that runs it and closes it when a timeout runs out ([`run_connection`]), holding its
//! place under `--max-client-connections` until then. Knows nothing of plugins or requests.

use super::limits::{ConnectionClock, Expiry, InFlight};
use super::totals::Totals;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, watch};

/// The listen backlog asked for; Linux caps it at `net.core.somaxconn` (4096 by default). The
/// standard library's (and tokio's) 128 is too shallow for connections to wait in at
/// `--max-client-connections`, or for a burst of new ones: past it their SYNs are dropped and
/// each waits a second for its retransmission.
const LISTEN_BACKLOG: u32 = 65_535;

/// Listens on `address` (HOST:PORT; the first of its addresses that binds) with
/// `LISTEN_BACKLOG`.
pub async fn listen(address: &str) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing");
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A client socket whose reads and writes tell its [`ConnectionClock`].
pub struct Watched<IO> {
    io: IO,
    clock: Arc<ConnectionClock>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, clock: Arc<ConnectionClock>) -> Self {
        Watched { io, clock }
    }

    fn wrote<T>(&self, polled: &Poll<io::Result<T>>) {
        match polled {
            Poll::Pending => self.clock.wrote(true, Instant::now()),
            Poll::Ready(_) => self.clock.wrote(false, Instant::now()),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read(Instant::now());
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.wrote(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight until hyper is done with it (has taken its
/// last frame, or given up on it).
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked { body, _in_flight: in_flight }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Runs `connection` (hyper serving one client) until it ends, until its clock says a client
/// timeout ran out, or, once the server is `stopping`, while it waits for a request head (hyper's
/// graceful shutdown closes idle connections, and busy ones after their response, but waits for
/// a head): then it is dropped, which closes the socket. `_place` is the connection's
/// place under `--max-client-connections`, given back when this returns.
pub async fn run_connection<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    clock: Arc<ConnectionClock>,
    mut stopping: watch::Receiver<bool>,
    peer: SocketAddr,
    totals: &Totals,
    _place: OwnedSemaphorePermit,
) {
    tokio::pin!(connection);
    let mut stopped = false;
    loop {
        if stopped && clock.awaiting_head() {
            tracing::debug!(target: "leashed::client", %peer, "closing the connection: the server is stopping");
            break;
        }
        let due = clock.due();
        // With nothing due (a request in flight), sleep until the clock moves.
        let until = due.map_or_else(|| Instant::now() + Duration::from_secs(3600), |(at, _)| at);
        tokio::select! {
            ended = &mut connection => {
                if let Err(e) = ended {
                    tracing::debug!(target: "leashed::client", %peer, "HTTP connection ended with an error: {e}");
                }
                break;
            }
            () = tokio::time::sleep_until(until.into()) => {
                let Some((_, expiry)) = clock.due().filter(|(at, _)| *at <= Instant::now()) else { continue };
                let counter = match expiry {
                    Expiry::Head(_) => &totals.clients_header_timeout,
                    Expiry::Idle(_) => &totals.clients_idle,
                    Expiry::WriteStalled(_) => &totals.clients_stalled,
                };
                Totals::add(counter, 1);
                tracing::debug!(target: "leashed::client", %peer, "closing the connection: {expiry}");
                break;
            }
            () = clock.moved() => {}
            _ = stopping.wait_for(|stopping| *stopping), if !stopped => stopped = true,
        }
    }
    // Returning drops the connection (closing its socket), then gives its place back.
}
