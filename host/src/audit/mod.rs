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

mod records;
pub mod report;
pub mod report_json;
pub mod site;
pub mod suppress;

use crate::net::socket::Socket;
use crate::os_fds;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub use records::{
    CallId, CallName, CallRecord, Denial, Event, HandleId, HandleKind, HandleRecord, LastOp, Release, Summary,
};

/// Connections given back whole that a store keeps the records of; older ones are only counted.
pub const KEPT_CLEAN_CONNECTIONS: usize = 1024;
/// Calls that left nothing behind that a store keeps the records of.
pub const KEPT_CLEAN_CALLS: usize = 1024;
/// Events a store keeps; later ones are only counted.
pub const KEPT_EVENTS: usize = 10_000;
/// Distinct denials (host and port) a store keeps: a guest that asks for ten thousand names
/// costs the host 64 events, and the rest are counted. A denial repeated is one event.
pub const KEPT_DENIALS: usize = 64;
/// The longest host name a denial keeps (DNS's limit); a longer one is cut.
pub const MAX_HOST_NAME: usize = crate::net::allowlist::MAX_NAME_BYTES;

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
    /// Where a denial or a limit already has its event, so a repeat only counts.
    repeats: HashMap<RepeatKey, usize>,
    denials_kept: usize,
}

/// What makes two refusals the same event.
#[derive(Debug, PartialEq, Eq, Hash)]
enum RepeatKey {
    Denied(Option<CallId>, String, u16),
    Limit(Option<CallId>, &'static str),
}

impl Registry {
    fn record_mut(&mut self, id: HandleId) -> Option<&mut HandleRecord> {
        self.records.get_mut(&id)
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() < KEPT_EVENTS {
            // A call is kept while an event of its is kept (a report names the call).
            if let Some(call) = self.current_call.and_then(|c| self.calls.get_mut(&c)) {
                call.events += 1;
            }
            self.events.push(event);
        } else {
            self.forgotten.events += 1;
            if event.is_problem() {
                self.forgotten.problem_events += 1;
            }
        }
    }

    /// Records a refusal, once: a repeat of one already recorded only adds to its count.
    fn push_refusal(&mut self, key: RepeatKey, event: Event) {
        if let Some(&index) = self.repeats.get(&key) {
            match self.events.get_mut(index) {
                Some(Event::Denied { times, .. } | Event::LimitReached { times, .. }) => *times += 1,
                _ => {}
            }
            return;
        }
        if matches!(key, RepeatKey::Denied(..)) {
            if self.denials_kept >= KEPT_DENIALS {
                self.forgotten.events += 1;
                return;
            }
            self.denials_kept += 1;
        }
        if self.events.len() < KEPT_EVENTS {
            self.repeats.insert(key, self.events.len());
        }
        self.push_event(event);
    }

    /// Queues a call that left nothing behind to be forgotten, and forgets the oldest beyond the
    /// kept number.
    fn retire_clean_call(&mut self, id: CallId) {
        self.clean_calls.push_back(id);
        while self.clean_calls.len() > KEPT_CLEAN_CALLS {
            let oldest = self.clean_calls.pop_front().expect("longer than the kept number");
            self.calls.remove(&oldest);
            self.forgotten.calls += 1;
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
                && !conn.parked
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
        let (fd, socket_inode) = (socket.fd, socket.inode);
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

    /// Records that the guest parked connection `id` for session reuse: its socket stays open,
    /// in the host's parking lot, once the guest has dropped every handle.
    pub fn note_parked(&self, id: HandleId) {
        if let Some(record) = self.registry().record_mut(id) {
            record.parked = true;
        }
    }

    /// Records that connection `id` took over a parked socket, parked by `origin`.
    pub fn note_resumed(&self, id: HandleId, origin: &str) {
        if let Some(record) = self.registry().record_mut(id) {
            record.resumed_from = Some(origin.to_string());
        }
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
        let host = cut_host_name(host);
        registry
            .push_refusal(RepeatKey::Denied(call, host.clone(), port), Event::Denied { host, port, call, times: 1 });
    }

    /// Records a refusal by a per-store limit.
    pub fn limit_reached(&self, what: &'static str, limit: usize) {
        let mut registry = self.registry();
        let call = registry.current_call;
        registry.push_refusal(RepeatKey::Limit(call, what), Event::LimitReached { what, limit, call, times: 1 });
    }

    /// Starts an export call: handles lent from now on belong to it.
    pub fn begin_call(&self, name: impl Into<CallName>) -> CallId {
        let mut registry = self.registry();
        registry.started_calls += 1;
        let id = CallId(registry.started_calls);
        let record = CallRecord {
            id,
            name: name.into(),
            trapped: false,
            finished: false,
            lent: 0,
            not_dropped: 0,
            events: 0,
            ended: None,
        };
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
            registry.retire_clean_call(id);
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
                    let (mut leaked_by, mut now_clean) = (None, None);
                    if let Some(created) = created_in.and_then(|c| registry.calls.get_mut(&c)) {
                        created.not_dropped = created.not_dropped.saturating_sub(1);
                        if created.finished && Some(created.id) != call {
                            leaked_by = created.ended.map(|ended| (created.id, ended.elapsed()));
                            // Its last handle is back: it has left nothing behind after all (a
                            // MySQL connection's open lends what its close gives back).
                            if created.not_dropped == 0 && !created.trapped && created.events == 0 {
                                now_clean = Some(created.id);
                            }
                        }
                    }
                    if let Some((leaked_in, after)) = leaked_by {
                        registry.push_event(Event::LateRelease { handle: id, kind, leaked_in, call, after });
                    }
                    if let Some(clean) = now_clean {
                        registry.retire_clean_call(clean);
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

    /// How many call records the registry holds.
    pub fn call_count(&self) -> usize {
        self.registry().calls.len()
    }

    /// How many handle records the registry holds (without copying them, as `records` does).
    pub fn record_count(&self) -> usize {
        self.registry().records.len()
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
        let parked = registry.records.values().filter(|r| r.parked && r.released.is_some()).count();
        Summary { lent, released, open: lent - released, reclaimed, trapped: registry.trapped, parked }
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

/// A guest's host name as the audit keeps it: at most [`MAX_HOST_NAME`] bytes, cut at a
/// character boundary and marked when cut, so a hostile name costs the host no more.
fn cut_host_name(host: &str) -> String {
    if host.len() <= MAX_HOST_NAME {
        return host.to_string();
    }
    let mut end = MAX_HOST_NAME;
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &host[..end], host.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

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
