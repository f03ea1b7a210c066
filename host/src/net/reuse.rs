//! `impl Host` for leashed:net/reuse, and its bodies: `park` marks a connection, its final
//! release moves the socket into the parking lot (`net/parking.rs`) instead of closing it, and
//! `resume` lends a parked socket to a new instance as a fresh connection handle. The audit
//! records both: a parked connection is released (not leaked) with its socket open on purpose;
//! a resumed one names the connection that parked it.
//!
//! Only the MySQL guest that `leashed serve` composes itself reaches these imports (the serve
//! path refuses any plugin that imports `reuse`); even so, what the guest hands over is bounded
//! here before it is stored: a key of at most [`MAX_KEY_BYTES`], a state of at most
//! [`MAX_STATE_BYTES`], and only a quiet socket is parked.

use super::error::NetError;
use super::parking::Parked;
use super::socket::LentConnection;
use crate::audit::HandleKind;
use crate::bindings::leashed::net::reuse::{Host, HostWithStore};
use crate::bindings::leashed::net::tcp::ErrorCode;
use crate::state::HostState;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Access, HasSelf, Resource};

/// The longest key `park` and `resume` accept (the guest's keys are 64 hex digits).
pub const MAX_KEY_BYTES: usize = 256;

/// The largest state `park` keeps (the guest keeps its own under 32 KiB: the session and its
/// cached statements).
pub const MAX_STATE_BYTES: usize = 64 * 1024;

impl Host for HostState {
    async fn park(&mut self, conn: Resource<LentConnection>, key: String, state: Vec<u8>) -> Result<(), NetError> {
        let id = self.table.get(&conn)?.guard.id();
        if self.policy.audit_detail {
            self.audit.note_op(id, "park", 0, 0);
        }
        self.park_connection(&conn, key, state)
    }
}

impl HostWithStore<HostState> for HasSelf<HostState> {
    async fn resume(
        mut access: Access<'_, HostState, Self>,
        key: String,
    ) -> wasmtime::Result<Option<(Resource<LentConnection>, Vec<u8>)>> {
        let site = super::sites::guest_site(&mut access);
        access.get().resume_connection(key, site)
    }
}

impl HostState {
    /// `connection.park`: the connection's socket is parked under `key` when its last handle
    /// is dropped. Refused when this host does not reuse sessions (`invalid-state`), or the key
    /// is full (`limit-reached`).
    pub fn park_connection(
        &mut self,
        conn: &Resource<LentConnection>,
        key: String,
        state: Vec<u8>,
    ) -> Result<(), NetError> {
        let Some(reuse) = self.policy.reuse.clone() else { return Err(ErrorCode::InvalidState.into()) };
        if key.len() > MAX_KEY_BYTES || state.len() > MAX_STATE_BYTES {
            return Err(ErrorCode::LimitReached.into());
        }
        let entry = self.table.get_mut(conn)?;
        entry.socket.check_open()?;
        if entry.socket.is_reclaimed() {
            return Err(ErrorCode::InvalidState.into());
        }
        let key = reuse.key(&key);
        if !reuse.lot.has_room(&key) {
            return Err(ErrorCode::LimitReached.into());
        }
        entry.park = Some((key, state));
        Ok(())
    }

    /// `connection.resume`: the newest fresh socket parked under `key`, lent as a new
    /// connection, with the state its guest parked. `None` when reuse is off, nothing is
    /// parked, or this instance may open no more connections (its `connect` then says so).
    pub fn resume_connection(
        &mut self,
        key: String,
        site: Vec<String>,
    ) -> wasmtime::Result<Option<(Resource<LentConnection>, Vec<u8>)>> {
        let Some(reuse) = self.policy.reuse.clone() else { return Ok(None) };
        if key.len() > MAX_KEY_BYTES {
            return Ok(None);
        }
        let (_, handles) = self.audit.open_counts();
        if self.held_connections >= self.policy.max_connections || handles >= self.policy.max_handles {
            return Ok(None);
        }
        let Some(parked) = reuse.lot.take(&reuse.key(&key)) else { return Ok(None) };
        let guard = self.audit.lend(HandleKind::Connection, None, &parked.socket, site);
        self.audit.note_resumed(guard.id(), &parked.origin);
        let conn = LentConnection { socket: parked.socket, guard, dropped_by_guest: false, park: None };
        let conn = self.table.push(conn)?;
        self.held_connections += 1;
        Ok(Some((conn, parked.state)))
    }

    /// The last handle of a connection is gone: a parked connection's socket goes to the
    /// parking lot; any other closes as the entry drops.
    pub(super) fn retire_connection(&mut self, mut entry: LentConnection) {
        let (Some((key, state)), Some(reuse)) = (entry.park.take(), self.policy.reuse.clone()) else { return };
        // Only a socket nothing else holds, still whole, and quiet (nothing unread that the next
        // session would take for its own answer) can serve another session. A shut-down one was
        // withdrawn by its guest.
        let socket = &entry.socket;
        if Arc::strong_count(socket) != 1
            || socket.is_reclaimed()
            || socket.is_shut_down()
            || socket.check_open().is_err()
            || !socket.is_quiet()
        {
            return;
        }
        let id = entry.guard.id();
        let origin = match self.audit.record(id) {
            Some(record) => format!("connection {id}, lent {:.1} s earlier", record.created.elapsed().as_secs_f64()),
            None => format!("connection {id}"),
        };
        let parked =
            Parked { socket: entry.socket.clone(), state, origin, born: entry.socket.born, parked_at: Instant::now() };
        if reuse.lot.park(key, parked).is_ok() {
            self.audit.note_parked(id);
        }
    }
}
