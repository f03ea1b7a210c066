//! The handle registry: every handle lent to a guest, its parent, its OS socket, where and in
//! which call it was created, what was done with it, and how it ended. One registry per store.
//!
//! Releasing is structural: each table entry owns a [`HandleGuard`] whose `Drop` records the
//! release, so the registry cannot miss a handle however its entry dies. The registry never
//! closes anything itself. Reports over it are built in [`report`].
//!
//! A long-lived store must not grow without bound, so what has nothing left to report is only
//! counted once enough of it piles up: connections the guest gave back whole (with their streams,
//! and with the OS agreeing their socket is closed), calls that left nothing behind, and events
//! past a cap. Leaks, trapped calls and anything still open are always kept.

pub mod report;
pub mod report_json;
pub mod site;
pub mod suppress;

use crate::net::socket::Socket;
use crate::os_fds;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Identifies one lent handle for the life of its store. Resource-table slots are reused; these
/// ids never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleId(pub u64);

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies one export call into the guest (1 = the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
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
    /// The guest never dropped it; its socket had been closed by the `reclaim` policy, and the
    /// host released the handle when the store was torn down.
    PolicyReclaim,
    /// The guest never dropped it; the host reclaimed it when the store was torn down.
    StoreTeardown,
    /// The guest trapped while holding it; the host released it with the store.
    AfterTrap,
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Release::GuestDropped => "guest-dropped",
            Release::PolicyReclaim => "policy-reclaim",
            Release::StoreTeardown => "store-teardown",
            Release::AfterTrap => "after-trap",
        })
    }
}

/// The last operation on a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastOp {
    pub op: &'static str,
    pub at: Instant,
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
    /// The export call during which it was lent.
    pub created_in_call: Option<CallId>,
    /// The guest's wasm backtrace when it was lent, innermost frame first.
    pub site: Vec<String>,
    /// Operations (read, write, flush, shutdown, ...) done through this handle.
    pub ops: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub last_op: Option<LastOp>,
    pub released: Option<Release>,
    pub released_in_call: Option<CallId>,
    /// The guest's wasm backtrace when it dropped the handle (empty for host releases).
    pub released_site: Vec<String>,
    /// The position of this release among the store's releases (1 = first), to check the order
    /// streams and connections were given back in.
    pub release_order: Option<u64>,
    /// For a connection: the `reclaim` policy closed its socket when the guest dropped it.
    pub socket_reclaimed: bool,
    /// For a connection: the readers and writers it lent.
    pub streams: Vec<HandleId>,
}

impl HandleRecord {
    /// A handle just lent: no history, not released.
    fn new(
        id: HandleId,
        kind: HandleKind,
        parent: Option<HandleId>,
        peer: SocketAddr,
        (fd, socket_inode): (Option<i32>, Option<u64>),
        created_in_call: Option<CallId>,
        site: Vec<String>,
    ) -> Self {
        HandleRecord {
            id,
            kind,
            parent,
            peer,
            fd,
            socket_inode,
            created: Instant::now(),
            created_in_call,
            site,
            ops: 0,
            bytes_read: 0,
            bytes_written: 0,
            last_op: None,
            released: None,
            released_in_call: None,
            released_site: Vec::new(),
            release_order: None,
            socket_reclaimed: false,
            streams: Vec::new(),
        }
    }
}

/// One export call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub id: CallId,
    /// The call as written, e.g. `run("127.0.0.1", 3306)`.
    pub name: String,
    pub trapped: bool,
    pub finished: bool,
    /// Handles lent during the call.
    pub lent: usize,
    /// Of those, how many the guest has not dropped yet.
    pub not_dropped: usize,
    /// Events recorded during the call.
    pub events: usize,
    /// When it returned (or trapped).
    pub ended: Option<Instant>,
}

/// Something the audit saw that is not a leak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connect the policy refused, before any socket was created.
    Denied { host: String, port: u16, call: Option<CallId> },
    /// A connect or lend refused by a per-store limit.
    LimitReached { what: &'static str, limit: usize, call: Option<CallId> },
    /// A stream used after its connection's socket was reclaimed: where the guest used it, and
    /// where it dropped the connection (which reclaimed the socket).
    LateUse {
        handle: HandleId,
        op: &'static str,
        call: Option<CallId>,
        connection: HandleId,
        use_site: Vec<String>,
        reclaim_site: Vec<String>,
    },
    /// A handle a finished call leaked, dropped by the guest in a later call (as HikariCP reports
    /// a connection returned after its leak was reported). Not a fault by itself: the leak was
    /// already reported with the call that leaked it.
    LateRelease {
        handle: HandleId,
        kind: HandleKind,
        /// The call that lent it and returned without dropping it.
        leaked_in: CallId,
        /// The call in which the guest dropped it.
        call: Option<CallId>,
        /// From the end of the leaking call to the drop.
        after: Duration,
    },
    /// A host bug: a handle released a second time. The first site is the guest's backtrace
    /// when it dropped the handle (empty if the host released it); the second is the host's own
    /// backtrace at the second release, which is where the bug is.
    DoubleRelease {
        handle: HandleId,
        first: Release,
        second: Release,
        call: Option<CallId>,
        first_site: Vec<String>,
        second_site: Vec<String>,
    },
}

impl Event {
    /// Late uses and double releases are faults; denials and limits only explain what the guest
    /// saw.
    pub fn is_problem(&self) -> bool {
        matches!(self, Event::LateUse { .. } | Event::DoubleRelease { .. })
    }
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub lent: usize,
    pub released: usize,
    pub open: usize,
    /// Of the released, those the host released because the guest never dropped them (at
    /// teardown, or after a trap).
    pub reclaimed: usize,
    /// Whether a call trapped (then the guest could not drop anything it still held).
    pub trapped: bool,
}

impl fmt::Display for Summary {
    /// `audit: 3 handles lent, 3 released, 0 open`; when the host had to release some:
    /// `audit: 3 handles lent, 0 released by the guest, 3 reclaimed after the trap, 0 open`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reclaimed == 0 {
            return write!(f, "audit: {} handles lent, {} released, {} open", self.lent, self.released, self.open);
        }
        let when = if self.trapped { "after the trap" } else { "by the host at teardown" };
        write!(
            f,
            "audit: {} handles lent, {} released by the guest, {} reclaimed {when}, {} open",
            self.lent,
            self.released - self.reclaimed,
            self.reclaimed,
            self.open
        )
    }
}

/// A connect the policy refused, before any socket was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub host: String,
    pub port: u16,
}

/// Connections given back whole that a store keeps the records of; older ones are only counted.
pub const KEPT_CLEAN_CONNECTIONS: usize = 1024;
/// Calls that left nothing behind that a store keeps the records of.
pub const KEPT_CLEAN_CALLS: usize = 1024;
/// Events a store keeps; later ones are only counted.
pub const KEPT_EVENTS: usize = 10_000;

/// What a long-lived store no longer keeps, only counts (see the module comment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    /// Handles of connections the guest gave back whole.
    pub handles: u64,
    /// Calls that left nothing behind.
    pub calls: u64,
    /// Events past [`KEPT_EVENTS`].
    pub events: u64,
    /// Of those, late uses and double releases: a report is never clean while any were lost.
    pub problem_events: u64,
}

impl Forgotten {
    pub fn is_empty(&self) -> bool {
        *self == Forgotten::default()
    }
}

#[derive(Debug, Default)]
struct Registry {
    records: BTreeMap<HandleId, HandleRecord>,
    calls: BTreeMap<CallId, CallRecord>,
    events: Vec<Event>,
    lent: u64,
    releases: u64,
    started_calls: u64,
    current_call: Option<CallId>,
    trapped: bool,
    open_connections: usize,
    open_handles: usize,
    /// Connections given back whole, and clean calls, oldest first, waiting to be forgotten.
    clean_connections: VecDeque<HandleId>,
    clean_calls: VecDeque<CallId>,
    forgotten: Forgotten,
}

impl Registry {
    fn record_mut(&mut self, id: HandleId) -> Option<&mut HandleRecord> {
        self.records.get_mut(&id)
    }

    fn push_event(&mut self, event: Event) {
        if let Some(call) = self.current_call.and_then(|c| self.calls.get_mut(&c)) {
            call.events += 1;
        }
        if self.events.len() < KEPT_EVENTS {
            self.events.push(event);
        } else {
            self.forgotten.events += 1;
            if event.is_problem() {
                self.forgotten.problem_events += 1;
            }
        }
    }

    /// After a guest drop: if the handle's connection and all its streams are now dropped by the
    /// guest, it joins the queue of connections to forget, and the oldest beyond the kept number
    /// are forgotten, unless the OS still has their socket open (a host bug the reports must
    /// keep showing).
    fn retire_if_given_back(&mut self, id: HandleId) {
        let Some(record) = self.records.get(&id) else { return };
        let connection = record.parent.unwrap_or(id);
        let Some(conn) = self.records.get(&connection) else { return };
        let dropped = |h: &HandleId| self.records.get(h).is_some_and(|r| r.released == Some(Release::GuestDropped));
        if !(dropped(&connection) && conn.streams.iter().all(dropped)) {
            return;
        }
        self.clean_connections.push_back(connection);
        while self.clean_connections.len() > KEPT_CLEAN_CONNECTIONS {
            let oldest = self.clean_connections.pop_front().expect("longer than the kept number");
            let Some(conn) = self.records.get(&oldest) else { continue };
            if let (Some(fd), Some(inode)) = (conn.fd, conn.socket_inode)
                && os_fds::socket_is_open(fd, inode)
            {
                continue;
            }
            for handle in std::iter::once(oldest).chain(conn.streams.clone()) {
                if self.records.remove(&handle).is_some() {
                    self.forgotten.handles += 1;
                }
            }
        }
    }
}

/// A store's handle registry; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Audit {
    inner: Arc<Mutex<Registry>>,
}

impl Audit {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Every update is a single push or field store, so a lock poisoned by a panic elsewhere
        // still holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a newly lent handle and returns the guard its table entry must own.
    pub fn lend(&self, kind: HandleKind, parent: Option<HandleId>, socket: &Socket, site: Vec<String>) -> HandleGuard {
        let fd = os_fds::fd_of(socket);
        let socket_inode = fd.and_then(os_fds::socket_inode);
        let mut registry = self.registry();
        registry.lent += 1;
        let id = HandleId(registry.lent);
        let created_in_call = registry.current_call;
        registry.open_handles += 1;
        if kind == HandleKind::Connection {
            registry.open_connections += 1;
        }
        if let Some(call) = created_in_call.and_then(|c| registry.calls.get_mut(&c)) {
            call.lent += 1;
            call.not_dropped += 1;
        }
        if let Some(conn) = parent.and_then(|p| registry.record_mut(p)) {
            conn.streams.push(id);
        }
        let record = HandleRecord::new(id, kind, parent, socket.peer, (fd, socket_inode), created_in_call, site);
        registry.records.insert(id, record);
        HandleGuard { id, audit: self.clone(), cause: None, drop_site: Vec::new(), recorded: false }
    }

    /// Records an operation on a handle and the bytes it moved.
    pub fn note_op(&self, id: HandleId, op: &'static str, read: usize, written: usize) {
        let mut registry = self.registry();
        if let Some(record) = registry.record_mut(id) {
            record.ops += 1;
            record.bytes_read += read as u64;
            record.bytes_written += written as u64;
            record.last_op = Some(LastOp { op, at: Instant::now() });
        }
    }

    /// Records that the `reclaim` policy closed this connection's socket.
    pub fn note_reclaimed(&self, connection: HandleId) {
        if let Some(record) = self.registry().record_mut(connection) {
            record.socket_reclaimed = true;
        }
    }

    /// Records a stream used after its connection's socket was reclaimed, with the guest's
    /// backtrace at the use.
    pub fn note_late_use(&self, handle: HandleId, op: &'static str, use_site: Vec<String>) {
        let mut registry = self.registry();
        let connection = registry.record_mut(handle).and_then(|r| r.parent).unwrap_or(handle);
        let reclaim_site = registry.record_mut(connection).map(|c| c.released_site.clone()).unwrap_or_default();
        let call = registry.current_call;
        registry.push_event(Event::LateUse { handle, op, call, connection, use_site, reclaim_site });
    }

    /// Records a connect the policy refused.
    pub fn deny(&self, host: &str, port: u16) {
        let mut registry = self.registry();
        let call = registry.current_call;
        registry.push_event(Event::Denied { host: host.to_string(), port, call });
    }

    /// Records a refusal by a per-store limit.
    pub fn limit_reached(&self, what: &'static str, limit: usize) {
        let mut registry = self.registry();
        let call = registry.current_call;
        registry.push_event(Event::LimitReached { what, limit, call });
    }

    /// Starts an export call: handles lent from now on belong to it.
    pub fn begin_call(&self, name: impl Into<String>) -> CallId {
        let mut registry = self.registry();
        registry.started_calls += 1;
        let id = CallId(registry.started_calls);
        let record =
            CallRecord { id, name: name.into(), trapped: false, finished: false, lent: 0, not_dropped: 0, events: 0, ended: None };
        registry.calls.insert(id, record);
        registry.current_call = Some(id);
        id
    }

    /// Ends an export call. A trap poisons the instance: handles the guest still holds can only
    /// be released with the store.
    pub fn end_call(&self, id: CallId, trapped: bool) {
        let mut registry = self.registry();
        let mut clean = false;
        if let Some(call) = registry.calls.get_mut(&id) {
            call.finished = true;
            call.trapped = trapped;
            call.ended = Some(Instant::now());
            clean = !trapped && call.not_dropped == 0 && call.events == 0;
        }
        registry.trapped |= trapped;
        registry.current_call = None;
        if clean {
            registry.clean_calls.push_back(id);
            while registry.clean_calls.len() > KEPT_CLEAN_CALLS {
                let oldest = registry.clean_calls.pop_front().expect("longer than the kept number");
                registry.calls.remove(&oldest);
                registry.forgotten.calls += 1;
            }
        }
    }

    fn mark_released(&self, id: HandleId, cause: Option<Release>, site: Vec<String>) {
        let mut registry = self.registry();
        let call = registry.current_call;
        let trapped = registry.trapped;
        let Some(record) = registry.record_mut(id) else { return };
        let parent = record.parent;
        let reclaimed = match parent {
            Some(parent) => registry.record_mut(parent).is_some_and(|p| p.socket_reclaimed),
            None => false,
        };
        let cause = cause.unwrap_or(if reclaimed {
            Release::PolicyReclaim
        } else if trapped {
            Release::AfterTrap
        } else {
            Release::StoreTeardown
        });
        let order = registry.releases + 1;
        let record = registry.record_mut(id).expect("looked up above");
        match record.released {
            Some(first) => {
                // A host bug, so the second site is the host's own backtrace.
                let first_site = record.released_site.clone();
                let second_site = site::capture_host();
                registry.push_event(Event::DoubleRelease {
                    handle: id,
                    first,
                    second: cause,
                    call,
                    first_site,
                    second_site,
                });
            }
            None => {
                let (kind, created_in) = (record.kind, record.created_in_call);
                record.released = Some(cause);
                record.released_in_call = call;
                record.released_site = site;
                record.release_order = Some(order);
                registry.releases = order;
                registry.open_handles -= 1;
                if kind == HandleKind::Connection {
                    registry.open_connections -= 1;
                }
                if cause == Release::GuestDropped {
                    let mut leaked_by = None;
                    if let Some(created) = created_in.and_then(|c| registry.calls.get_mut(&c)) {
                        created.not_dropped = created.not_dropped.saturating_sub(1);
                        if created.finished && Some(created.id) != call {
                            leaked_by = created.ended.map(|ended| (created.id, ended.elapsed()));
                        }
                    }
                    if let Some((leaked_in, after)) = leaked_by {
                        registry.push_event(Event::LateRelease { handle: id, kind, leaked_in, call, after });
                    }
                    registry.retire_if_given_back(id);
                }
            }
        }
    }

    /// Open (unreleased) connections and handles, for the per-store limits.
    pub fn open_counts(&self) -> (usize, usize) {
        let registry = self.registry();
        (registry.open_connections, registry.open_handles)
    }

    /// One handle's record.
    pub fn record(&self, id: HandleId) -> Option<HandleRecord> {
        self.registry().record_mut(id).cloned()
    }

    /// Every handle lent so far and not forgotten, in lending order.
    pub fn records(&self) -> Vec<HandleRecord> {
        self.registry().records.values().cloned().collect()
    }

    /// Every export call so far that is not forgotten.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.registry().calls.values().cloned().collect()
    }

    /// One call's record, unless it was forgotten.
    pub fn call(&self, id: CallId) -> Option<CallRecord> {
        self.registry().calls.get(&id).cloned()
    }

    /// Denials, limits, late uses and host bugs, in order (the first [`KEPT_EVENTS`]).
    pub fn events(&self) -> Vec<Event> {
        self.registry().events.clone()
    }

    /// What this store no longer keeps, only counts.
    pub fn forgotten(&self) -> Forgotten {
        self.registry().forgotten
    }

    /// The connects refused by policy.
    pub fn denials(&self) -> Vec<Denial> {
        self.registry()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Denied { host, port, .. } => Some(Denial { host: host.clone(), port: *port }),
                _ => None,
            })
            .collect()
    }

    /// Handles not yet released.
    pub fn open_handles(&self) -> Vec<HandleRecord> {
        self.registry().records.values().filter(|r| r.released.is_none()).cloned().collect()
    }

    pub fn summary(&self) -> Summary {
        let registry = self.registry();
        let (lent, released) = (registry.lent as usize, registry.releases as usize);
        let reclaimed =
            registry.records.values().filter(|r| r.released.is_some_and(|c| c != Release::GuestDropped)).count();
        Summary { lent, released, open: lent - released, reclaimed, trapped: registry.trapped }
    }
}

/// Owned by every table entry; its drop records the handle's release.
#[derive(Debug)]
pub struct HandleGuard {
    id: HandleId,
    audit: Audit,
    /// `None` until the guest drops the handle: a guard dropped without it was released by the
    /// host (the cause is worked out from the store's state).
    cause: Option<Release>,
    /// The guest's backtrace at its drop.
    drop_site: Vec<String>,
    /// The release is already in the registry (recorded before the entry died).
    recorded: bool,
}

impl HandleGuard {
    pub fn id(&self) -> HandleId {
        self.id
    }

    /// Called when the guest drops the handle, just before the entry is dropped, with the
    /// guest's backtrace at the drop.
    pub fn dropped_by_guest(&mut self, site: Vec<String>) {
        self.cause = Some(Release::GuestDropped);
        self.drop_site = site;
    }

    /// Records the guest's drop now, for an entry the table must keep (a connection whose
    /// streams outlive it under the deferred or reclaim policy).
    pub fn record_guest_drop_now(&mut self, site: Vec<String>) {
        self.audit.mark_released(self.id, Some(Release::GuestDropped), site);
        self.recorded = true;
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        if !self.recorded {
            self.audit.mark_released(self.id, self.cause, std::mem::take(&mut self.drop_site));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second release of the same handle is a host bug, reported with both causes; the first
    /// release stands.
    #[test]
    fn double_release_is_reported_as_a_host_bug() {
        let audit = Audit::default();
        let call = audit.begin_call("run()");
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let record = HandleRecord::new(HandleId(1), HandleKind::Reader, None, addr, (None, None), Some(call), vec![]);
        audit.registry().records.insert(HandleId(1), record);
        audit.mark_released(HandleId(1), Some(Release::GuestDropped), vec!["guest_close".into()]);
        audit.mark_released(HandleId(1), None, vec![]);
        assert_eq!(audit.records()[0].released, Some(Release::GuestDropped));
        let events = audit.events();
        let [Event::DoubleRelease { handle, first, second, call: in_call, first_site, second_site }] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(
            (*handle, *first, *second, *in_call),
            (HandleId(1), Release::GuestDropped, Release::StoreTeardown, Some(call))
        );
        assert_eq!(first_site, &["guest_close"]);
        assert!(second_site.iter().any(|f| f.contains("double_release_is_reported")), "{second_site:?}");
    }
}
