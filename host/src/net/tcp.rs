//! `impl Host*` for leashed:net/tcp: each method looks the handle up, checks its state and the
//! policy, and delegates to [`Socket`], the allowlist or the audit.
//!
//! Imports that lend, use or drop a handle also get the store (bindgen's `store` flag), to capture
//! the guest's backtrace for the audit: where a handle was lent and dropped, and where a stream
//! was used after its socket was reclaimed. Their bodies are `HostState` methods, so host-level
//! tests can call them without wasm. Nothing here owns state; it all lives in [`HostState`].

use super::error::NetError;
use super::socket::{LentConnection, LentReader, LentStream, LentWriter, Socket, StreamSide, with_timeout};
use crate::audit::{HandleGuard, HandleId, HandleKind};
use crate::bindings::leashed::net::tcp::{
    ConnectOptions, ErrorCode, Host, HostConnection, HostConnectionWithStore, HostReader, HostReaderWithStore,
    HostWriter, HostWriterWithStore, ShutdownType, SocketAddress, TlsOptions,
};
use crate::policy::{ClosePolicy, tighter};
use crate::state::HostState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use wasmtime::component::{Access, HasSelf, Resource};

impl Host for HostState {
    fn convert_error_code(&mut self, err: NetError) -> wasmtime::Result<ErrorCode> {
        match err {
            NetError::Code(code) => Ok(code),
            NetError::Trap(trap) => Err(trap),
        }
    }
}

use super::sites::guest_site;

/// The guest's backtrace if this use of a stream is a late use (its socket was reclaimed), so
/// the audit can say where it happened; nothing (and no cost) otherwise.
fn late_use_site<S: LentStream>(
    access: &mut Access<'_, HostState, HasSelf<HostState>>,
    stream: &Resource<S>,
) -> Vec<String> {
    let late = access.get().table.get(stream).is_ok_and(|s| s.socket().is_reclaimed());
    if late { guest_site(access) } else { Vec::new() }
}

/// The guest's backtrace at a stream's drop, if the policy records every drop site (no report
/// shows where a stream was dropped, so `leashed serve` skips it).
fn stream_drop_site(access: &mut Access<'_, HostState, HasSelf<HostState>>) -> Vec<String> {
    if access.get().policy.every_drop_site { guest_site(access) } else { Vec::new() }
}

impl HostConnectionWithStore<HostState> for HasSelf<HostState> {
    async fn connect(
        mut access: Access<'_, HostState, Self>,
        address: String,
        port: u16,
        options: ConnectOptions,
    ) -> Result<Resource<LentConnection>, NetError> {
        let site = guest_site(&mut access);
        access.get().lend_connection(address, port, options, site).await
    }

    async fn reader(
        mut access: Access<'_, HostState, Self>,
        conn: Resource<LentConnection>,
    ) -> Result<Resource<LentReader>, NetError> {
        let site = guest_site(&mut access);
        access.get().lend_reader(&conn, site)
    }

    async fn writer(
        mut access: Access<'_, HostState, Self>,
        conn: Resource<LentConnection>,
    ) -> Result<Resource<LentWriter>, NetError> {
        let site = guest_site(&mut access);
        access.get().lend_writer(&conn, site)
    }

    fn drop(mut access: Access<'_, HostState, Self>, conn: Resource<LentConnection>) -> wasmtime::Result<()> {
        let shown = access.get().policy.every_drop_site || !live_children(access.get(), &conn)?.is_empty();
        let site = if shown { guest_site(&mut access) } else { Vec::new() };
        access.get().drop_connection(conn, site)
    }
}

impl HostConnection for HostState {
    async fn shutdown(&mut self, conn: Resource<LentConnection>, how: ShutdownType) -> Result<(), NetError> {
        let how = match how {
            ShutdownType::Receive => std::net::Shutdown::Read,
            ShutdownType::Send => std::net::Shutdown::Write,
            ShutdownType::Both => std::net::Shutdown::Both,
        };
        let entry = self.table.get(&conn)?;
        let (socket, id) = (entry.socket.clone(), entry.guard.id());
        self.note_op(id, "shutdown", 0, 0);
        Ok(socket.shutdown(how).await?)
    }

    async fn start_tls(&mut self, conn: Resource<LentConnection>, options: TlsOptions) -> Result<(), NetError> {
        let entry = self.table.get(&conn)?;
        let (socket, id) = (entry.socket.clone(), entry.guard.id());
        self.note_op(id, "start-tls", 0, 0);
        // The handshake is part of connecting: the connect timeout the guest asked for bounds it.
        Ok(socket.start_tls(&options, socket.connect_timeout).await?)
    }

    async fn peer_address(&mut self, conn: Resource<LentConnection>) -> Result<SocketAddress, NetError> {
        Ok(address(self.table.get(&conn)?.socket.peer))
    }

    async fn local_address(&mut self, conn: Resource<LentConnection>) -> Result<SocketAddress, NetError> {
        Ok(address(self.table.get(&conn)?.socket.local))
    }
}

// Every reader and writer method needs the store (above).
impl HostReader for HostState {}
impl HostWriter for HostState {}

impl HostReaderWithStore<HostState> for HasSelf<HostState> {
    async fn read(
        mut access: Access<'_, HostState, Self>,
        reader: Resource<LentReader>,
        max: u32,
    ) -> Result<Vec<u8>, NetError> {
        let use_site = late_use_site(&mut access, &reader);
        access.get().read(&reader, max, use_site).await
    }

    fn drop(mut access: Access<'_, HostState, Self>, reader: Resource<LentReader>) -> wasmtime::Result<()> {
        let site = stream_drop_site(&mut access);
        access.get().drop_stream(reader, site)
    }
}

impl HostWriterWithStore<HostState> for HasSelf<HostState> {
    async fn write(
        mut access: Access<'_, HostState, Self>,
        writer: Resource<LentWriter>,
        bytes: Vec<u8>,
    ) -> Result<u32, NetError> {
        let use_site = late_use_site(&mut access, &writer);
        access.get().write(&writer, &bytes, use_site).await
    }

    async fn flush(mut access: Access<'_, HostState, Self>, writer: Resource<LentWriter>) -> Result<(), NetError> {
        let use_site = late_use_site(&mut access, &writer);
        access.get().flush(&writer, use_site)
    }

    fn drop(mut access: Access<'_, HostState, Self>, writer: Resource<LentWriter>) -> wasmtime::Result<()> {
        let site = stream_drop_site(&mut access);
        access.get().drop_stream(writer, site)
    }
}

// The bodies of the imports above, on the state alone. Public so host-level tests can drive
// them without wasm; a `site` is the guest's backtrace at the call (empty when not recorded),
// and a `use_site` is only recorded if the use turns out to be a late use.
impl HostState {
    /// `connection.connect`: allowlist, limits, the TCP connect, the audit record.
    pub async fn lend_connection(
        &mut self,
        host: String,
        port: u16,
        options: ConnectOptions,
        site: Vec<String>,
    ) -> Result<Resource<LentConnection>, NetError> {
        connect(self, host, port, options, site).await
    }

    /// `connection.reader`.
    pub fn lend_reader(
        &mut self,
        conn: &Resource<LentConnection>,
        site: Vec<String>,
    ) -> Result<Resource<LentReader>, NetError> {
        let (socket, guard) = lend_stream(self, conn, StreamSide::Read, site)?;
        Ok(self.table.push_child(LentReader { socket, guard, parent_rep: conn.rep() }, conn)?)
    }

    /// `connection.writer`.
    pub fn lend_writer(
        &mut self,
        conn: &Resource<LentConnection>,
        site: Vec<String>,
    ) -> Result<Resource<LentWriter>, NetError> {
        let (socket, guard) = lend_stream(self, conn, StreamSide::Write, site)?;
        Ok(self.table.push_child(LentWriter { socket, guard, parent_rep: conn.rep() }, conn)?)
    }

    /// `reader.read`: up to `max` bytes, waiting for at least one; empty at end of stream.
    pub async fn read(
        &mut self,
        reader: &Resource<LentReader>,
        max: u32,
        use_site: Vec<String>,
    ) -> Result<Vec<u8>, NetError> {
        let entry = self.table.get(reader)?;
        let (socket, id) = (entry.socket.clone(), entry.guard.id());
        if max == 0 {
            // An empty answer would read as end of stream.
            return Err(ErrorCode::InvalidState.into());
        }
        match socket.read(max as usize).await {
            Ok(bytes) => {
                self.note_op(id, "read", bytes.len(), 0);
                Ok(bytes)
            }
            Err(e) => Err(self.failed(&socket, id, "read", e, use_site)),
        }
    }

    /// `writer.write`: all of `bytes`, or an error.
    pub async fn write(
        &mut self,
        writer: &Resource<LentWriter>,
        bytes: &[u8],
        use_site: Vec<String>,
    ) -> Result<u32, NetError> {
        let entry = self.table.get(writer)?;
        let (socket, id) = (entry.socket.clone(), entry.guard.id());
        match socket.write_all(bytes).await {
            Ok(()) => {
                self.note_op(id, "write", 0, bytes.len());
                Ok(bytes.len() as u32)
            }
            Err(e) => Err(self.failed(&socket, id, "write", e, use_site)),
        }
    }

    /// `writer.flush`. Writes go straight to the OS socket, so there is no host-side buffer to
    /// drain: this only checks the socket is still open.
    pub fn flush(&mut self, writer: &Resource<LentWriter>, use_site: Vec<String>) -> Result<(), NetError> {
        let entry = self.table.get(writer)?;
        let (socket, id) = (entry.socket.clone(), entry.guard.id());
        match socket.check_open() {
            Ok(()) => {
                self.note_op(id, "flush", 0, 0);
                Ok(())
            }
            Err(e) => Err(self.failed(&socket, id, "flush", e, use_site)),
        }
    }

    /// The guest drops a connection. With live streams, the close policy decides: `strict`
    /// traps; `deferred` and `reclaim` keep the entry as the streams' parent (and `reclaim`
    /// closes the socket now).
    pub fn drop_connection(&mut self, conn: Resource<LentConnection>, site: Vec<String>) -> wasmtime::Result<()> {
        let live = live_children(self, &conn)?;
        if live.is_empty() {
            let mut entry = self.table.delete(conn)?;
            self.held_connections -= 1;
            entry.guard.dropped_by_guest(site);
            self.retire_connection(entry);
            return Ok(());
        }
        let id = self.table.get(&conn)?.guard.id();
        match self.policy.close {
            ClosePolicy::Strict => {
                let described: Vec<String> = live.iter().map(|&(kind, child)| self.describe(kind, child)).collect();
                let at = crate::audit::site::one_line(&site).map(|frame| format!(" at {frame}")).unwrap_or_default();
                wasmtime::bail!(
                    "resource has children: {} was dropped{at} while its {} still lent (strict close policy: \
                     drop the writer and the reader before the connection)",
                    self.describe(HandleKind::Connection, id),
                    described.join(" and ")
                );
            }
            ClosePolicy::Deferred | ClosePolicy::Reclaim => {
                // The entry stays as its streams' parent until the last of them is dropped.
                let entry = self.table.get_mut(&conn)?;
                entry.dropped_by_guest = true;
                entry.guard.record_guest_drop_now(site);
                if self.policy.close == ClosePolicy::Reclaim {
                    entry.socket.reclaim();
                    self.audit.note_reclaimed(id);
                }
                Ok(())
            }
        }
    }

    /// The guest drops a reader or a writer; a connection it already dropped goes with its last
    /// stream.
    pub fn drop_stream<S: LentStream>(&mut self, stream: Resource<S>, site: Vec<String>) -> wasmtime::Result<()> {
        let mut entry = self.table.delete(stream)?;
        entry.guard_mut().dropped_by_guest(site);
        let parent = entry.parent_rep();
        drop(entry);
        release_orphaned_parent(self, parent)
    }

    fn note_op(&self, id: HandleId, op: &'static str, read: usize, written: usize) {
        if self.policy.audit_detail {
            self.audit.note_op(id, op, read, written);
        }
    }

    /// Maps an I/O failure to the guest's error, recording a use of a reclaimed socket.
    fn failed(
        &self,
        socket: &Socket,
        id: HandleId,
        op: &'static str,
        e: std::io::Error,
        use_site: Vec<String>,
    ) -> NetError {
        if socket.is_reclaimed() {
            self.audit.note_late_use(id, op, use_site);
        }
        e.into()
    }

    /// "reader #2 (created at f ← g)" for messages.
    fn describe(&self, kind: HandleKind, id: HandleId) -> String {
        let site = self.audit.record(id).map(|r| r.site).unwrap_or_default();
        match crate::audit::site::one_line(&site) {
            Some(frame) => format!("{kind} {id} (created at {frame})"),
            None => format!("{kind} {id}"),
        }
    }
}

/// `connect` itself: allowlist, limits, the TCP connect, the audit record.
async fn connect(
    state: &mut HostState,
    host: String,
    port: u16,
    options: ConnectOptions,
    site: Vec<String>,
) -> Result<Resource<LentConnection>, NetError> {
    let addrs = match state.policy.allow.vet(&host, port).await {
        Ok(addrs) => addrs,
        Err(code) => {
            if code == ErrorCode::Denied {
                state.audit.deny(&host, port);
            }
            return Err(code.into());
        }
    };
    check_limits(state, HandleKind::Connection)?;
    let permit = match &state.policy.host_connections {
        None => None,
        Some(budget) => match place_under_the_cap(budget, state.policy.reuse.as_ref()) {
            Some(permit) => Some(permit),
            None => {
                state.audit.limit_reached(crate::net::budget::HOST_WIDE_LIMIT, budget.max());
                return Err(ErrorCode::LimitReached.into());
            }
        },
    };
    let connect_timeout = tighter(Some(state.policy.connect_timeout), options.connect_timeout_ms);
    let stream = connect_first(&addrs, connect_timeout).await?;
    stream.set_nodelay(options.nodelay)?;
    let socket = Socket::new(
        stream,
        connect_timeout,
        tighter(state.policy.read_timeout, options.read_timeout_ms),
        tighter(state.policy.write_timeout, options.write_timeout_ms),
        permit,
    )?;
    let guard = state.audit.lend(HandleKind::Connection, None, &socket, site);
    let conn = state.table.push(LentConnection { socket, guard, dropped_by_guest: false, park: None })?;
    state.held_connections += 1;
    Ok(conn)
}

/// A place under the host-wide cap. At the cap, idle parked sessions give theirs up, the one
/// parked longest first: a connect someone needs now is worth more than a session kept in case.
fn place_under_the_cap(
    budget: &std::sync::Arc<crate::net::budget::ConnectionBudget>,
    reuse: Option<&crate::net::parking::SessionReuse>,
) -> Option<crate::net::budget::BudgetPermit> {
    loop {
        if let Some(permit) = budget.try_take() {
            return Some(permit);
        }
        if !reuse.is_some_and(|reuse| reuse.lot.close_longest_parked()) {
            return None;
        }
    }
}

/// Refuses with `limit-reached` past the store's connection or handle limit. Connections count
/// as sockets held: one the guest dropped while a stream of it lives (deferred, reclaim) still
/// counts, so no policy lets a guest hold more than `max_connections` sockets.
pub(super) fn check_limits(state: &HostState, kind: HandleKind) -> Result<(), NetError> {
    let (_, handles) = state.audit.open_counts();
    if kind == HandleKind::Connection && state.held_connections >= state.policy.max_connections {
        state.audit.limit_reached("open connections", state.policy.max_connections);
        return Err(ErrorCode::LimitReached.into());
    }
    if handles >= state.policy.max_handles {
        state.audit.limit_reached("lent handles", state.policy.max_handles);
        return Err(ErrorCode::LimitReached.into());
    }
    Ok(())
}

/// Checks that the connection has no live stream on `side`, marks one lent, and records it in the
/// audit as a child of the connection.
fn lend_stream(
    state: &HostState,
    conn: &Resource<LentConnection>,
    side: StreamSide,
    site: Vec<String>,
) -> Result<(Arc<Socket>, HandleGuard), NetError> {
    let parent = state.table.get(conn)?;
    parent.socket.check_open()?;
    let kind = match side {
        StreamSide::Read => HandleKind::Reader,
        StreamSide::Write => HandleKind::Writer,
    };
    check_limits(state, kind)?;
    if !parent.socket.try_lend(side) {
        return Err(ErrorCode::InvalidState.into());
    }
    let guard = state.audit.lend(kind, Some(parent.guard.id()), &parent.socket, site);
    Ok((parent.socket.clone(), guard))
}

/// Deletes a connection the guest already dropped once its last stream is gone (deferred and
/// reclaim policies), which releases its socket.
fn release_orphaned_parent(state: &mut HostState, parent_rep: u32) -> wasmtime::Result<()> {
    let parent = Resource::<LentConnection>::new_own(parent_rep);
    let orphaned = match state.table.get(&parent) {
        Ok(entry) => entry.dropped_by_guest && state.table.iter_children(&parent)?.next().is_none(),
        Err(_) => false,
    };
    if orphaned {
        let entry = state.table.delete(parent)?;
        state.held_connections -= 1;
        state.retire_connection(entry);
    }
    Ok(())
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

/// Each child still in the table, as (kind, id).
fn live_children(state: &HostState, conn: &Resource<LentConnection>) -> wasmtime::Result<Vec<(HandleKind, HandleId)>> {
    let mut live = Vec::new();
    for child in state.table.iter_children(conn)? {
        if let Some(reader) = child.downcast_ref::<LentReader>() {
            live.push((HandleKind::Reader, reader.guard.id()));
        } else if let Some(writer) = child.downcast_ref::<LentWriter>() {
            live.push((HandleKind::Writer, writer.guard.id()));
        }
    }
    Ok(live)
}

fn address(addr: SocketAddr) -> SocketAddress {
    SocketAddress { address: addr.ip().to_string(), port: addr.port() }
}
