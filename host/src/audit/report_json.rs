//! Leak reports as JSON (schema in the README, "Audit report JSON"): the same findings as the
//! text report, for tools.

use super::report::{LeakReport, OsMismatch, Scope};
use super::{Event, Forgotten, HandleRecord};
use serde::Serialize;

/// The JSON form of a report (schema in the README, "Audit report JSON").
#[derive(Serialize)]
pub struct ReportJson {
    pub scope: Scope,
    pub clean: bool,
    pub lent: usize,
    pub leaked: usize,
    pub leaks: Vec<LeakJson>,
    pub events: Vec<EventJson>,
    pub os_mismatches: Vec<OsMismatch>,
    /// Why /proc/self/fd could not be read (the report is then not clean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_unreadable: Option<String>,
    pub forgotten: Forgotten,
    /// Leaks a suppression matched: shown, counted, not failing.
    pub suppressed: Vec<SuppressedJson>,
}

#[derive(Serialize)]
pub struct SuppressedJson {
    pub pattern: String,
    pub leak: LeakJson,
}

#[derive(Serialize)]
pub struct LeakJson {
    pub connection: HandleJson,
    pub streams: Vec<HandleJson>,
}

#[derive(Serialize)]
pub struct HandleJson {
    pub id: u64,
    pub kind: String,
    pub parent: Option<u64>,
    pub peer: String,
    pub fd: Option<i32>,
    pub socket_inode: Option<u64>,
    pub socket_open: Option<bool>,
    pub created_in_call: Option<u64>,
    pub age_ms: u128,
    pub site: Vec<String>,
    pub ops: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub last_op: Option<&'static str>,
    pub released: Option<String>,
    /// The guest's backtrace when it dropped the handle (only for `guest-dropped`).
    pub released_site: Vec<String>,
    pub socket_reclaimed: bool,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventJson {
    Denied {
        host: String,
        port: u16,
        call: Option<u64>,
        /// The same refusal repeated, counted as one event.
        times: u64,
    },
    LimitReached {
        what: &'static str,
        limit: usize,
        call: Option<u64>,
        times: u64,
    },
    LateUse {
        handle: u64,
        op: &'static str,
        connection: u64,
        call: Option<u64>,
        use_site: Vec<String>,
        reclaim_site: Vec<String>,
    },
    LateRelease {
        handle: u64,
        handle_kind: String,
        leaked_in: u64,
        call: Option<u64>,
        after_ms: u128,
    },
    DoubleRelease {
        handle: u64,
        first: String,
        second: String,
        call: Option<u64>,
        first_site: Vec<String>,
        second_site: Vec<String>,
    },
}

impl LeakReport {
    pub fn to_json(&self) -> ReportJson {
        let handle = |r: &HandleRecord| HandleJson {
            id: r.id.0,
            kind: r.kind.to_string(),
            parent: r.parent.map(|p| p.0),
            peer: r.peer.to_string(),
            fd: r.fd,
            socket_inode: r.socket_inode,
            socket_open: self.was_open(r.id),
            created_in_call: r.created_in_call.map(|c| c.0),
            age_ms: self.generated.saturating_duration_since(r.created).as_millis(),
            site: r.site.clone(),
            ops: r.ops,
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            last_op: r.last_op.map(|o| o.op),
            released: r.released.map(|x| x.to_string()),
            released_site: r.released_site.clone(),
            socket_reclaimed: r.socket_reclaimed,
        };
        let events = self
            .events
            .iter()
            .map(|e| match e {
                Event::Denied { host, port, call, times } => {
                    EventJson::Denied { host: host.clone(), port: *port, call: call.map(|c| c.0), times: *times }
                }
                Event::LimitReached { what, limit, call, times } => {
                    EventJson::LimitReached { what, limit: *limit, call: call.map(|c| c.0), times: *times }
                }
                Event::LateUse { handle, op, call, connection, use_site, reclaim_site } => EventJson::LateUse {
                    handle: handle.0,
                    op,
                    connection: connection.0,
                    call: call.map(|c| c.0),
                    use_site: use_site.clone(),
                    reclaim_site: reclaim_site.clone(),
                },
                Event::LateRelease { handle, kind, leaked_in, call, after } => EventJson::LateRelease {
                    handle: handle.0,
                    handle_kind: kind.to_string(),
                    leaked_in: leaked_in.0,
                    call: call.map(|c| c.0),
                    after_ms: after.as_millis(),
                },
                Event::DoubleRelease { handle, first, second, call, first_site, second_site } => {
                    EventJson::DoubleRelease {
                        handle: handle.0,
                        first: first.to_string(),
                        second: second.to_string(),
                        call: call.map(|c| c.0),
                        first_site: first_site.clone(),
                        second_site: second_site.clone(),
                    }
                }
            })
            .collect();
        ReportJson {
            scope: self.scope.clone(),
            clean: self.is_clean(),
            lent: self.lent,
            leaked: self.leaked_handles(),
            leaks: self
                .leaks
                .iter()
                .map(|l| LeakJson {
                    connection: handle(&l.connection),
                    streams: l.streams.iter().map(handle).collect(),
                })
                .collect(),
            events,
            os_mismatches: self.os_mismatches.clone(),
            os_unreadable: self.os_unreadable.clone(),
            forgotten: self.forgotten,
            suppressed: self
                .suppressed
                .iter()
                .map(|(l, pattern)| SuppressedJson {
                    pattern: pattern.clone(),
                    leak: LeakJson {
                        connection: handle(&l.connection),
                        streams: l.streams.iter().map(handle).collect(),
                    },
                })
                .collect(),
        }
    }
}
