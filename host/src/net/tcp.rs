//! `impl Host*` for leashed:net/tcp: each method looks the handle up, checks its state, and
//! delegates to [`Socket`], the [`Allowlist`](super::allowlist::Allowlist) or the audit.
//!
//! Nothing here owns state; it all lives in [`HostState`].

use super::error::NetError;
use super::socket::{LentConnection, LentReader, LentWriter, Socket, StreamSide, with_timeout};
use crate::audit::{HandleGuard, HandleKind};
use crate::bindings::leashed::net::tcp::{
    ConnectOptions, ErrorCode, Host, HostConnection, HostReader, HostWriter, ShutdownType, SocketAddress,
};
use crate::policy::tighter;
use crate::state::HostState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use wasmtime::component::Resource;

impl Host for HostState {
    fn convert_error_code(&mut self, err: NetError) -> wasmtime::Result<ErrorCode> {
        match err {
            NetError::Code(code) => Ok(code),
            NetError::Trap(trap) => Err(trap),
        }
    }
}

impl HostConnection for HostState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        options: ConnectOptions,
    ) -> Result<Resource<LentConnection>, NetError> {
        let addrs = match self.policy.allow.vet(&host, port).await {
            Ok(addrs) => addrs,
            Err(code) => {
                if code == ErrorCode::Denied {
                    self.audit.deny(&host, port);
                }
                return Err(code.into());
            }
        };
        let connect_timeout = tighter(Some(self.policy.connect_timeout), options.connect_timeout_ms);
        let stream = connect_first(&addrs, connect_timeout).await?;
        stream.set_nodelay(options.nodelay)?;
        let socket = Socket::new(
            stream,
            tighter(self.policy.read_timeout, options.read_timeout_ms),
            tighter(self.policy.write_timeout, options.write_timeout_ms),
        )?;
        let guard = self.audit.lend(HandleKind::Connection, None, &socket);
        Ok(self.table.push(LentConnection { socket, guard })?)
    }

    async fn reader(&mut self, conn: Resource<LentConnection>) -> Result<Resource<LentReader>, NetError> {
        let (socket, guard) = lend_stream(self, &conn, StreamSide::Read)?;
        Ok(self.table.push_child(LentReader { socket, guard }, &conn)?)
    }

    async fn writer(&mut self, conn: Resource<LentConnection>) -> Result<Resource<LentWriter>, NetError> {
        let (socket, guard) = lend_stream(self, &conn, StreamSide::Write)?;
        Ok(self.table.push_child(LentWriter { socket, guard }, &conn)?)
    }

    async fn shutdown(&mut self, conn: Resource<LentConnection>, how: ShutdownType) -> Result<(), NetError> {
        let how = match how {
            ShutdownType::Receive => std::net::Shutdown::Read,
            ShutdownType::Send => std::net::Shutdown::Write,
            ShutdownType::Both => std::net::Shutdown::Both,
        };
        Ok(self.table.get(&conn)?.socket.shutdown(how)?)
    }

    async fn peer_address(&mut self, conn: Resource<LentConnection>) -> Result<SocketAddress, NetError> {
        Ok(address(self.table.get(&conn)?.socket.peer))
    }

    async fn local_address(&mut self, conn: Resource<LentConnection>) -> Result<SocketAddress, NetError> {
        Ok(address(self.table.get(&conn)?.socket.local))
    }

    async fn drop(&mut self, conn: Resource<LentConnection>) -> wasmtime::Result<()> {
        let live = live_children(self, &conn)?;
        if !live.is_empty() {
            let id = self.table.get(&conn)?.guard.id();
            wasmtime::bail!(
                "resource has children: connection {id} was dropped while its {} still lent \
                 (strict close policy: drop the writer and the reader before the connection)",
                live.join(" and ")
            );
        }
        let mut entry = self.table.delete(conn)?;
        entry.guard.dropped_by_guest();
        Ok(())
    }
}

impl HostReader for HostState {
    async fn read(&mut self, reader: Resource<LentReader>, max: u32) -> Result<Vec<u8>, NetError> {
        let socket = self.table.get(&reader)?.socket.clone();
        if max == 0 {
            // An empty answer would read as end of stream.
            return Err(ErrorCode::InvalidState.into());
        }
        Ok(socket.read(max as usize).await?)
    }

    async fn drop(&mut self, reader: Resource<LentReader>) -> wasmtime::Result<()> {
        self.table.delete(reader)?.guard.dropped_by_guest();
        Ok(())
    }
}

impl HostWriter for HostState {
    async fn write(&mut self, writer: Resource<LentWriter>, bytes: Vec<u8>) -> Result<u32, NetError> {
        let socket = self.table.get(&writer)?.socket.clone();
        socket.write_all(&bytes).await?;
        Ok(bytes.len() as u32)
    }

    async fn flush(&mut self, writer: Resource<LentWriter>) -> Result<(), NetError> {
        // Writes go straight to the OS socket; there is no host-side buffer to drain.
        self.table.get(&writer)?;
        Ok(())
    }

    async fn drop(&mut self, writer: Resource<LentWriter>) -> wasmtime::Result<()> {
        self.table.delete(writer)?.guard.dropped_by_guest();
        Ok(())
    }
}

/// Tries each vetted address in turn; the last error wins.
async fn connect_first(addrs: &[SocketAddr], limit: Option<std::time::Duration>) -> Result<TcpStream, NetError> {
    let mut last = NetError::code(ErrorCode::NameUnresolvable);
    for addr in addrs {
        match with_timeout(limit, TcpStream::connect(addr)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}

/// Checks that the connection has no live stream on `side`, marks one lent, and records it in the
/// audit as a child of the connection.
fn lend_stream(
    state: &HostState,
    conn: &Resource<LentConnection>,
    side: StreamSide,
) -> Result<(Arc<Socket>, HandleGuard), NetError> {
    let parent = state.table.get(conn)?;
    if !parent.socket.try_lend(side) {
        return Err(ErrorCode::InvalidState.into());
    }
    let kind = match side {
        StreamSide::Read => HandleKind::Reader,
        StreamSide::Write => HandleKind::Writer,
    };
    let guard = state.audit.lend(kind, Some(parent.guard.id()), &parent.socket);
    Ok((parent.socket.clone(), guard))
}

/// "reader #2" / "writer #3" for each child still in the table.
fn live_children(state: &HostState, conn: &Resource<LentConnection>) -> wasmtime::Result<Vec<String>> {
    let mut live = Vec::new();
    for child in state.table.iter_children(conn)? {
        if let Some(reader) = child.downcast_ref::<LentReader>() {
            live.push(format!("reader {}", reader.guard.id()));
        } else if let Some(writer) = child.downcast_ref::<LentWriter>() {
            live.push(format!("writer {}", writer.guard.id()));
        }
    }
    Ok(live)
}

fn address(addr: SocketAddr) -> SocketAddress {
    SocketAddress { address: addr.ip().to_string(), port: addr.port() }
}
