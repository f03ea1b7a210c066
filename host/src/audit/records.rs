//! What the audit records: handle and call ids, the record of each lent handle and each export
//! call, the events that are not leaks, and the summary counts. The registry that fills them in
//! is in the module root.

use std::fmt;
use std::net::SocketAddr;
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

/// Longest SQL text a call's name quotes; a longer statement is cut, marked with `…`.
const SQL_LABEL_CHARS: usize = 200;

/// An export call's name, e.g. `query("SELECT 1")`. A statement is kept as its text (cut after
/// 200 characters, `SQL_LABEL_CHARS`) and quoted only when a report names the call: most calls
/// leave nothing behind and are never named, and a round trip should not pay for escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallName {
    /// The name as it is.
    Plain(std::borrow::Cow<'static, str>),
    /// `op(sql)`, with the SQL quoted as a Rust string literal.
    Sql { op: &'static str, sql: String, cut: bool },
}

impl CallName {
    /// `op("sql")`, with `sql` cut after 200 characters (`SQL_LABEL_CHARS`).
    pub fn sql(op: &'static str, sql: &str) -> CallName {
        match sql.char_indices().nth(SQL_LABEL_CHARS) {
            None => CallName::Sql { op, sql: sql.to_owned(), cut: false },
            Some((cut, _)) => CallName::Sql { op, sql: sql[..cut].to_owned(), cut: true },
        }
    }
}

impl fmt::Display for CallName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallName::Plain(name) => f.write_str(name),
            CallName::Sql { op, sql, cut } => write!(f, "{op}({sql:?}{})", if *cut { "…" } else { "" }),
        }
    }
}

impl From<String> for CallName {
    fn from(name: String) -> Self {
        CallName::Plain(name.into())
    }
}

impl From<&'static str> for CallName {
    fn from(name: &'static str) -> Self {
        CallName::Plain(name.into())
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
    /// For a connection: the guest parked it for session reuse, so its socket stays open on
    /// purpose, owned by the host's parking lot, after the guest dropped every handle.
    pub parked: bool,
    /// For a connection: it took over a parked socket; who had parked it.
    pub resumed_from: Option<String>,
}

impl HandleRecord {
    /// A handle just lent: no history, not released.
    pub(super) fn new(
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
            parked: false,
            resumed_from: None,
        }
    }
}

/// One export call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub id: CallId,
    /// The call as written, e.g. `run("127.0.0.1", 3306)`.
    pub name: CallName,
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
    /// A connect the policy refused, before any socket was created; `times` counts the same
    /// refusal (host, port, call) repeated, which is kept as one event. A host name longer than
    /// DNS allows is kept cut.
    Denied { host: String, port: u16, call: Option<CallId>, times: u64 },
    /// A connect or lend refused by a per-store limit, `times` times in the same call.
    LimitReached { what: &'static str, limit: usize, call: Option<CallId>, times: u64 },
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
    /// Of the released connections, those the guest parked for session reuse.
    pub parked: usize,
}

impl fmt::Display for Summary {
    /// `audit: 3 handles lent, 3 released, 0 open`; when the host had to release some:
    /// `audit: 3 handles lent, 0 released by the guest, 3 reclaimed after the trap, 0 open`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reclaimed == 0 {
            let parked = match self.parked {
                0 => String::new(),
                1 => " (1 connection parked for reuse)".into(),
                n => format!(" ({n} connections parked for reuse)"),
            };
            return write!(
                f,
                "audit: {} handles lent, {} released{parked}, {} open",
                self.lent, self.released, self.open
            );
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

#[cfg(test)]
mod tests {
    use super::CallName;

    /// A call's name quotes its SQL, cut after 200 characters however long the statement.
    #[test]
    fn long_sql_is_cut_in_call_names() {
        assert_eq!(CallName::sql("query", "SELECT 'a'").to_string(), "query(\"SELECT 'a'\")");
        let long = "x".repeat(10_000);
        assert_eq!(CallName::sql("prepare", &long).to_string(), format!("prepare({:?}…)", "x".repeat(200)));
        assert_eq!(CallName::sql("query", "é\n").to_string(), "query(\"é\\n\")");
    }
}
