//! The handle registry: every handle lent to a guest, its parent, its OS socket, and how it
//! ended. One registry per store.
//!
//! Releasing is structural: each table entry owns a [`HandleGuard`] whose `Drop` records the
//! release, so the registry cannot miss a handle however its entry dies. The registry never
//! closes anything itself.

use crate::net::socket::Socket;
use crate::os_fds;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Identifies one lent handle for the life of its store. Resource-table slots are reused; these
/// ids never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleId(pub u64);

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleKind {
    Connection,
    Reader,
    Writer,
}

impl fmt::Display for HandleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleKind::Connection => "connection",
            HandleKind::Reader => "reader",
            HandleKind::Writer => "writer",
        })
    }
}

/// How a handle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The guest dropped it: the contract was kept.
    GuestDropped,
    /// The guest never dropped it; the host reclaimed it when the store was torn down.
    StoreTeardown,
}

/// Everything the audit knows about one lent handle.
#[derive(Debug, Clone)]
pub struct HandleRecord {
    pub id: HandleId,
    pub kind: HandleKind,
    /// The connection a reader or writer was lent by.
    pub parent: Option<HandleId>,
    pub peer: SocketAddr,
    /// The OS fd and socket inode behind the handle (Linux), for the cross-check with /proc.
    pub fd: Option<i32>,
    pub socket_inode: Option<u64>,
    pub created: Instant,
    pub released: Option<Release>,
    /// The position of this release among the store's releases (1 = first), to check the order
    /// streams and connections were given back in.
    pub release_order: Option<u64>,
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub lent: usize,
    pub released: usize,
    pub open: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit: {} handles lent, {} released, {} open", self.lent, self.released, self.open)
    }
}

/// A connect the policy refused, before any socket was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Default)]
struct Registry {
    records: Vec<HandleRecord>,
    denials: Vec<Denial>,
    releases: u64,
}

/// A store's handle registry; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Audit {
    inner: Arc<Mutex<Registry>>,
}

impl Audit {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated (every update is
        // a single push or field store), so a poisoned lock is still good data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a newly lent handle and returns the guard its table entry must own.
    pub fn lend(&self, kind: HandleKind, parent: Option<HandleId>, socket: &Socket) -> HandleGuard {
        let fd = os_fds::fd_of(socket);
        let socket_inode = fd.and_then(os_fds::socket_inode);
        let mut registry = self.registry();
        let id = HandleId(registry.records.len() as u64 + 1);
        registry.records.push(HandleRecord {
            id,
            kind,
            parent,
            peer: socket.peer,
            fd,
            socket_inode,
            created: Instant::now(),
            released: None,
            release_order: None,
        });
        HandleGuard { id, audit: self.clone(), cause: Release::StoreTeardown }
    }

    /// Records a connect the policy refused.
    pub fn deny(&self, host: &str, port: u16) {
        self.registry().denials.push(Denial { host: host.to_string(), port });
    }

    fn mark_released(&self, id: HandleId, cause: Release) {
        let mut registry = self.registry();
        let order = registry.releases + 1;
        if let Some(record) = registry.records.get_mut(id.0 as usize - 1)
            && record.released.is_none()
        {
            record.released = Some(cause);
            record.release_order = Some(order);
            registry.releases = order;
        }
    }

    /// Every handle lent so far, in lending order.
    pub fn records(&self) -> Vec<HandleRecord> {
        self.registry().records.clone()
    }

    /// The connects refused by policy.
    pub fn denials(&self) -> Vec<Denial> {
        self.registry().denials.clone()
    }

    /// Handles not yet released.
    pub fn open_handles(&self) -> Vec<HandleRecord> {
        self.registry().records.iter().filter(|r| r.released.is_none()).cloned().collect()
    }

    pub fn summary(&self) -> Summary {
        let registry = self.registry();
        let released = registry.records.iter().filter(|r| r.released.is_some()).count();
        Summary { lent: registry.records.len(), released, open: registry.records.len() - released }
    }
}

/// Owned by every table entry; its drop records the handle's release.
#[derive(Debug)]
pub struct HandleGuard {
    id: HandleId,
    audit: Audit,
    cause: Release,
}

impl HandleGuard {
    pub fn id(&self) -> HandleId {
        self.id
    }

    /// Called when the guest drops the handle, just before the entry is dropped.
    pub fn dropped_by_guest(&mut self) {
        self.cause = Release::GuestDropped;
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.audit.mark_released(self.id, self.cause);
    }
}
