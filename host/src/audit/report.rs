//! Leak reports over the registry: per export call (what a call lent and did not give back
//! before it returned) or for the whole store, as text in the style of LeakSanitizer and as
//! JSON. Each report also cross-checks every socket against /proc/self/fd.
//!
//! A handle *leaks* when the guest did not drop it. Leaked handles are grouped by connection:
//! a connection heads its group (a direct leak, or "dropped, but its streams keep it"), with its
//! undropped streams under it.

use super::suppress::Suppressions;
use super::{Audit, CallId, CallRecord, Event, Forgotten, HandleId, HandleKind, HandleRecord, Release};
use crate::os_fds;
use serde::Serialize;
use std::fmt::Write;
use std::time::Instant;

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Scope {
    /// One export call.
    Call { call: u64, name: String, trapped: bool },
    /// Everything the store lent.
    Store,
}

/// A connection whose handles were not all dropped by the guest.
#[derive(Debug, Clone)]
pub struct LeakedConnection {
    pub connection: HandleRecord,
    /// The connection's readers and writers the guest did not drop.
    pub streams: Vec<HandleRecord>,
}

/// A disagreement between the audit and the OS: always a host bug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsMismatch {
    pub connection: u64,
    pub fd: i32,
    pub socket_inode: u64,
    /// What the audit expects.
    pub expected_open: bool,
    pub actually_open: bool,
}

/// The audit's findings for one scope.
#[derive(Debug, Clone)]
pub struct LeakReport {
    pub scope: Scope,
    pub leaks: Vec<LeakedConnection>,
    pub events: Vec<Event>,
    pub os_mismatches: Vec<OsMismatch>,
    /// Why the OS could not be asked about the sockets (/proc/self/fd unreadable): a host
    /// problem that keeps the report from being clean.
    pub os_unreadable: Option<String>,
    pub lent: usize,
    pub generated: Instant,
    /// Whether each reported handle's socket was open when the report was made (the OS's view).
    pub socket_open: Vec<(HandleId, bool)>,
    /// What the store no longer keeps, only counts (store-wide, in every scope).
    pub forgotten: Forgotten,
    /// Leaks a suppression matched, with the pattern: shown and counted, but not failing.
    pub suppressed: Vec<(LeakedConnection, String)>,
}

impl LeakReport {
    /// Handles the guest did not drop, in all groups.
    pub fn leaked_handles(&self) -> usize {
        self.leaks
            .iter()
            .map(|l| l.streams.len() + usize::from(l.connection.released != Some(Release::GuestDropped)))
            .sum()
    }

    /// Handles of suppressed leaks.
    pub fn suppressed_handles(&self) -> usize {
        self.suppressed
            .iter()
            .map(|(l, _)| l.streams.len() + usize::from(l.connection.released != Some(Release::GuestDropped)))
            .sum()
    }

    /// Moves the leaks a pattern of `suppressions` matches (on the creation site of the
    /// connection or of any of its leaked streams) to [`LeakReport::suppressed`].
    pub fn suppress(&mut self, suppressions: &Suppressions) {
        if suppressions.is_empty() {
            return;
        }
        let (mut kept, mut suppressed) = (Vec::new(), Vec::new());
        for leak in std::mem::take(&mut self.leaks) {
            let sites = std::iter::once(&leak.connection).chain(&leak.streams).map(|r| r.site.as_slice());
            match suppressions.matching(sites.collect::<Vec<_>>()) {
                Some(pattern) => suppressed.push((leak.clone(), pattern.to_string())),
                None => kept.push(leak),
            }
        }
        self.leaks = kept;
        self.suppressed.extend(suppressed);
    }

    /// True when nothing leaked and the audit found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.leaks.is_empty()
            && self.os_mismatches.is_empty()
            && self.os_unreadable.is_none()
            && !self.events.iter().any(is_problem)
            && self.forgotten.problem_events == 0
    }

    /// Panics with the text report unless the report is clean: for embedders' tests.
    #[track_caller]
    pub fn assert_clean(&self) {
        if !self.is_clean() {
            panic!("the guest leaked lent handles:\n{}", self.to_text());
        }
    }
}

fn is_problem(event: &Event) -> bool {
    event.is_problem()
}

impl Audit {
    /// What `call` lent and the guest had not dropped when the report was made.
    pub fn call_report(&self, call: CallId) -> LeakReport {
        let (scope, lent) = match self.call(call) {
            Some(CallRecord { id, name, trapped, lent, .. }) => {
                (Scope::Call { call: id.0, name: name.to_string(), trapped }, lent)
            }
            // Forgotten: it left nothing behind (see the registry's module comment).
            None => {
                (Scope::Call { call: call.0, name: "(forgotten: it left nothing behind)".into(), trapped: false }, 0)
            }
        };
        self.report(scope, lent, |r| r.created_in_call == Some(call), |e| event_call(e) == Some(call))
    }

    /// The sockets of this store's connections that the OS still holds open: after the store
    /// was dropped, each one is a host bug. `Err` says why the OS could not be asked (a host
    /// problem: whether the sockets are closed is unknown, never taken as "none open").
    pub fn sockets_still_open(&self) -> Result<Vec<OsMismatch>, String> {
        let records = self.records();
        if !any_socket_to_check(&records) {
            return Ok(Vec::new());
        }
        let open_inodes = os_fds::open_socket_inodes().map_err(unreadable)?;
        Ok(records
            .iter()
            .filter(|r| r.kind == HandleKind::Connection && !r.parked)
            .filter_map(|r| {
                let (fd, inode) = (r.fd?, r.socket_inode?);
                open_inodes.contains(&inode).then_some(OsMismatch {
                    connection: r.id.0,
                    fd,
                    socket_inode: inode,
                    expected_open: false,
                    actually_open: true,
                })
            })
            .collect())
    }

    /// Everything the store lent that the guest had not dropped.
    pub fn store_report(&self) -> LeakReport {
        self.report(Scope::Store, self.summary().lent, |_| true, |_| true)
    }

    fn report(
        &self,
        scope: Scope,
        lent: usize,
        in_scope: impl Fn(&HandleRecord) -> bool,
        event_in_scope: impl Fn(&Event) -> bool,
    ) -> LeakReport {
        let records = self.records();
        let find = |id: HandleId| records.iter().find(|r| r.id == id);
        let mut leaks: Vec<LeakedConnection> = Vec::new();
        for record in records.iter().filter(|r| in_scope(r) && r.released != Some(Release::GuestDropped)) {
            let head = match record.kind {
                HandleKind::Connection => record,
                _ => record.parent.and_then(find).unwrap_or(record),
            };
            let group = match leaks.iter_mut().position(|l| l.connection.id == head.id) {
                Some(i) => &mut leaks[i],
                None => {
                    leaks.push(LeakedConnection { connection: head.clone(), streams: Vec::new() });
                    leaks.last_mut().unwrap()
                }
            };
            if record.kind != HandleKind::Connection {
                group.streams.push(record.clone());
            }
        }
        leaks.sort_by_key(|l| l.connection.id);
        // One look at /proc/self/fd serves every check in the report. If it cannot be read, the
        // report says so and is not clean: the check fails closed. With no socket to check
        // (every connection was parked, or none was lent) there is nothing to ask the OS.
        let (open_inodes, os_unreadable) = match any_socket_to_check(&records).then(os_fds::open_socket_inodes) {
            None => (Vec::new(), None),
            Some(Ok(inodes)) => (inodes, None),
            Some(Err(e)) => (Vec::new(), Some(unreadable(e))),
        };
        let socket_open = leaks
            .iter()
            .flat_map(|l| std::iter::once(&l.connection).chain(&l.streams))
            .filter_map(|r| Some((r.id, open_inodes.contains(&r.socket_inode?))))
            .collect();
        LeakReport {
            socket_open,
            scope,
            leaks,
            events: self.events().into_iter().filter(|e| event_in_scope(e)).collect(),
            os_mismatches: if os_unreadable.is_none() { os_mismatches(&records, &open_inodes) } else { Vec::new() },
            os_unreadable,
            lent,
            generated: Instant::now(),
            forgotten: self.forgotten(),
            suppressed: Vec::new(),
        }
    }
}

fn event_call(event: &Event) -> Option<CallId> {
    match event {
        Event::Denied { call, .. }
        | Event::LimitReached { call, .. }
        | Event::LateUse { call, .. }
        | Event::LateRelease { call, .. }
        | Event::DoubleRelease { call, .. } => *call,
    }
}

/// Compares, for every connection, whether its socket should be open (some handle of it is
/// alive and it was not reclaimed) with what /proc/self/fd says. A socket counts as open if any
/// fd of this process still refers to it, so a stray duplicate of a released socket is caught.
/// A parked connection's socket belongs to the host's parking lot, which keeps it open on
/// purpose (or closes it when it expires): it is not compared.
/// What a report says when /proc/self/fd cannot be read.
fn unreadable(e: std::io::Error) -> String {
    format!("cannot read /proc/self/fd ({e}), so whether the sockets are closed is unknown")
}

/// Whether any connection's socket is for the OS to vouch for: one the guest was lent and the
/// host did not park (a parked socket stays open on purpose). Leaked streams belong to such a
/// connection too: a connection is parked only once its streams are given back. Under session
/// reuse most requests have none, and skip the look at /proc/self/fd (a tenth of `leashed
/// serve`'s CPU under load, with 32 parked sockets and 32 clients' fds to list).
fn any_socket_to_check(records: &[HandleRecord]) -> bool {
    records.iter().any(|r| r.kind == HandleKind::Connection && !r.parked && r.fd.is_some() && r.socket_inode.is_some())
}

fn os_mismatches(records: &[HandleRecord], open_inodes: &[u64]) -> Vec<OsMismatch> {
    records
        .iter()
        .filter(|r| r.kind == HandleKind::Connection && !r.parked)
        .filter_map(|conn| {
            let (fd, inode) = (conn.fd?, conn.socket_inode?);
            let alive = records.iter().any(|r| (r.id == conn.id || r.parent == Some(conn.id)) && r.released.is_none());
            let expected_open = alive && !conn.socket_reclaimed;
            let actually_open = open_inodes.contains(&inode);
            (expected_open != actually_open).then_some(OsMismatch {
                connection: conn.id.0,
                fd,
                socket_inode: inode,
                expected_open,
                actually_open,
            })
        })
        .collect()
}

// ---- text ------------------------------------------------------------------------------------

impl LeakReport {
    /// The report as text, in the style of LeakSanitizer.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let scope = match &self.scope {
            Scope::Call { call, name, trapped } => {
                format!("call #{call} `{name}`{}", if *trapped { " (trapped)" } else { "" })
            }
            Scope::Store => "the whole store".to_string(),
        };
        // Denials and limits are not faults of the guest, but they explain what it saw.
        let mut notes: Vec<String> = self.events.iter().filter(|e| !is_problem(e)).map(event_text).collect();
        if !self.forgotten.is_empty() {
            let Forgotten { handles, calls, events, problem_events } = self.forgotten;
            notes.push(format!(
                "this store only counts, no longer keeps: {handles} handles of connections given back whole, \
                 {calls} calls that left nothing behind, {events} events past the first {} or denials past the first \
                 {} distinct ones ({problem_events} of them late uses or double releases)\n",
                super::KEPT_EVENTS,
                super::KEPT_DENIALS
            ));
        }
        let suppressed: Vec<String> = self
            .suppressed
            .iter()
            .map(|(leak, pattern)| {
                let streams: Vec<String> = leak.streams.iter().map(|s| format!("{} {}", s.kind, s.id)).collect();
                let site = super::site::one_line(&leak.connection.site).unwrap_or("(no backtrace)");
                format!(
                    "suppressed leak (matches `{pattern}`): connection {}{}{} created at {site}\n",
                    leak.connection.id,
                    if streams.is_empty() { "" } else { " with " },
                    streams.join(", ")
                )
            })
            .collect();
        if self.is_clean() {
            let all = if self.suppressed.is_empty() { "all dropped by the guest" } else { "none leaked unsuppressed" };
            let _ = writeln!(out, "==leashed== no leaks in {scope}: {} handles lent, {all}", self.lent);
            for line in suppressed.iter().chain(&notes) {
                let _ = write!(out, "    note: {line}");
            }
            return out;
        }
        let what = if self.leaks.is_empty() { "misused lent handles" } else { "leaked lent handles" };
        let _ = writeln!(out, "==leashed==ERROR: {what} in {scope}");
        for leak in &self.leaks {
            out.push('\n');
            let conn = &leak.connection;
            let state = match conn.released {
                Some(Release::GuestDropped) if conn.socket_reclaimed => {
                    "dropped by the guest; the reclaim policy closed its socket, but streams were left behind"
                        .to_string()
                }
                Some(Release::GuestDropped) => {
                    "dropped by the guest, but its socket stays open for its streams".to_string()
                }
                Some(other) => format!("never dropped by the guest (released: {other})"),
                None => "never dropped by the guest, still lent".to_string(),
            };
            let _ =
                writeln!(out, "Direct leak: connection {} to {} ({}) {state}", conn.id, conn.peer, fd_text(self, conn));
            write_details(&mut out, conn, self.generated, "    ");
            for stream in &leak.streams {
                let released = match stream.released {
                    None => "still lent".to_string(),
                    Some(r) => format!("released: {r}"),
                };
                let _ = writeln!(out, "  Leaked {} {} of connection {} ({released})", stream.kind, stream.id, conn.id);
                write_details(&mut out, stream, self.generated, "      ");
            }
        }
        for event in self.events.iter().filter(|e| is_problem(e)) {
            out.push('\n');
            out.push_str(&event_text(event));
        }
        for note in suppressed.iter().chain(&notes) {
            let _ = write!(out, "\nnote: {note}");
        }
        if let Some(why) = &self.os_unreadable {
            let _ = writeln!(out, "\nHOST PROBLEM: {why}");
        }
        for m in &self.os_mismatches {
            out.push('\n');
            let _ = writeln!(
                out,
                "HOST BUG: the socket of connection #{} (fd {}, socket:[{}]) is {} but the audit expects it {}",
                m.connection,
                m.fd,
                m.socket_inode,
                if m.actually_open { "open" } else { "closed" },
                if m.expected_open { "open" } else { "closed" },
            );
        }
        let connections = self.leaks.len();
        let _ = writeln!(
            out,
            "\nSUMMARY: leashed: {} handle(s) of {} connection(s) not dropped by the guest in {scope}",
            self.leaked_handles(),
            connections
        );
        out
    }
}

impl LeakReport {
    /// The OS's view of a reported handle's socket when the report was made.
    pub(super) fn was_open(&self, id: HandleId) -> Option<bool> {
        self.socket_open.iter().find(|(h, _)| *h == id).map(|(_, open)| *open)
    }
}

fn fd_text(report: &LeakReport, record: &HandleRecord) -> String {
    match (record.fd, record.socket_inode, report.was_open(record.id)) {
        (Some(fd), Some(inode), Some(open)) => {
            format!("fd {fd}, socket:[{inode}] {}", if open { "open" } else { "closed" })
        }
        _ => "fd unknown".to_string(),
    }
}

fn write_details(out: &mut String, record: &HandleRecord, now: Instant, indent: &str) {
    write_site(out, "created at", &record.site, indent);
    if record.released == Some(Release::GuestDropped) {
        write_site(out, "dropped by the guest at", &record.released_site, indent);
    }
    let age = now.saturating_duration_since(record.created);
    let last = match record.last_op {
        Some(op) => format!("last op {} {} ms ago", op.op, now.saturating_duration_since(op.at).as_millis()),
        None => "no ops".to_string(),
    };
    let _ = writeln!(
        out,
        "{indent}age {} ms, {} ops, {} B read, {} B written, {last}",
        age.as_millis(),
        record.ops,
        record.bytes_read,
        record.bytes_written
    );
}

/// "created at:" and the frames under it, innermost first.
fn write_site(out: &mut String, label: &str, site: &[String], indent: &str) {
    if site.is_empty() {
        let _ = writeln!(out, "{indent}{label}: (no backtrace recorded)");
        return;
    }
    let _ = writeln!(out, "{indent}{label}:");
    for (i, frame) in super::site::condensed(site).iter().enumerate() {
        let _ = writeln!(out, "{indent}  #{i} {frame}");
    }
}

/// " (3 times)" for a refusal repeated, nothing for one.
fn repeated(times: u64) -> String {
    if times > 1 { format!(" ({times} times)") } else { String::new() }
}

fn event_text(event: &Event) -> String {
    let in_call = |call: &Option<CallId>| call.map(|c| format!(" in call {c}")).unwrap_or_default();
    let mut out = String::new();
    match event {
        Event::LateUse { handle, op, call, connection, use_site, reclaim_site } => {
            let _ = writeln!(
                out,
                "Late use: {op} on {handle} after connection {connection} was reclaimed{} (the guest got `closed`)",
                in_call(call)
            );
            write_site(&mut out, "used at", use_site, "    ");
            write_site(
                &mut out,
                &format!("connection {connection} dropped (socket reclaimed) at"),
                reclaim_site,
                "    ",
            );
        }
        Event::DoubleRelease { handle, first, second, call, first_site, second_site } => {
            let _ = writeln!(out, "HOST BUG: {handle} released twice: first {first}, then {second}{}", in_call(call));
            write_site(&mut out, &format!("first release ({first}) at"), first_site, "    ");
            write_site(&mut out, "second release at (host backtrace)", second_site, "    ");
        }
        Event::Denied { host, port, times, .. } => {
            let _ = writeln!(out, "Denied: connect to {host}:{port}{}", repeated(*times));
        }
        Event::LimitReached { what, limit, times, .. } => {
            let _ = writeln!(out, "Limit reached: {what} (limit {limit}){}", repeated(*times));
        }
        Event::LateRelease { handle, kind, leaked_in, call, after } => {
            let _ = writeln!(
                out,
                "Late release: {kind} {handle}, leaked in call {leaked_in}, dropped by the guest{}, {:.1} s later",
                in_call(call),
                after.as_secs_f64()
            );
        }
    }
    out
}
