//! The counters of a whole `leashed serve` run, added to as each request's store is torn down
//! (and as client limits act), and the final `audit:` line printed at shutdown.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Run-wide counts; every request adds its own when its store has been dropped and checked.
#[derive(Debug, Default)]
pub struct Totals {
    pub requests: AtomicU64,
    /// Handles lent to plugins, and released (by the guest, or reclaimed at teardown).
    pub lent: AtomicU64,
    pub released: AtomicU64,
    /// Requests that left handles behind, and how many handles they left (reclaimed after).
    pub leaky_requests: AtomicU64,
    pub leaked_handles: AtomicU64,
    /// Handles of leaks a suppression matched (logged, never refused).
    pub suppressed_handles: AtomicU64,
    /// Of the leaky requests, those refused with 500 (`--deny-leaks`), and those whose response
    /// had already gone out.
    pub refused: AtomicU64,
    pub leaked_after_head: AtomicU64,
    /// Requests whose plugin trapped, ran past the deadline, or were cancelled at shutdown.
    pub trapped: AtomicU64,
    pub timed_out: AtomicU64,
    pub cancelled: AtomicU64,
    /// Sockets the OS still held after a request's store was dropped: host bugs.
    pub sockets_left_open: AtomicU64,
    /// MySQL sessions requests parked for reuse, and how many the lot held at shutdown (read
    /// just before it closed them).
    pub parked: AtomicU64,
    pub parked_at_exit: AtomicU64,
    /// Client connections closed by a client timeout (limits.rs): no complete head within
    /// `--header-timeout`, idle past `--idle-timeout`, a response left unread that long.
    pub clients_header_timeout: AtomicU64,
    pub clients_idle: AtomicU64,
    pub clients_stalled: AtomicU64,
    /// Requests whose body came too slowly (408), and bodies longer than `--body-buffer`
    /// streamed to their plugin.
    pub bodies_too_slow: AtomicU64,
    pub bodies_streamed: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotalsSnapshot {
    pub requests: u64,
    pub lent: u64,
    pub released: u64,
    pub leaky_requests: u64,
    pub leaked_handles: u64,
    pub suppressed_handles: u64,
    pub refused: u64,
    pub leaked_after_head: u64,
    pub trapped: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub sockets_left_open: u64,
    pub parked: u64,
    pub parked_at_exit: u64,
    pub clients_header_timeout: u64,
    pub clients_idle: u64,
    pub clients_stalled: u64,
    pub bodies_too_slow: u64,
    pub bodies_streamed: u64,
}

impl Totals {
    pub fn snapshot(&self) -> TotalsSnapshot {
        TotalsSnapshot {
            requests: self.requests.load(Relaxed),
            lent: self.lent.load(Relaxed),
            released: self.released.load(Relaxed),
            leaky_requests: self.leaky_requests.load(Relaxed),
            leaked_handles: self.leaked_handles.load(Relaxed),
            suppressed_handles: self.suppressed_handles.load(Relaxed),
            refused: self.refused.load(Relaxed),
            leaked_after_head: self.leaked_after_head.load(Relaxed),
            trapped: self.trapped.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            sockets_left_open: self.sockets_left_open.load(Relaxed),
            parked: self.parked.load(Relaxed),
            parked_at_exit: self.parked_at_exit.load(Relaxed),
            clients_header_timeout: self.clients_header_timeout.load(Relaxed),
            clients_idle: self.clients_idle.load(Relaxed),
            clients_stalled: self.clients_stalled.load(Relaxed),
            bodies_too_slow: self.bodies_too_slow.load(Relaxed),
            bodies_streamed: self.bodies_streamed.load(Relaxed),
        }
    }

    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

impl fmt::Display for TotalsSnapshot {
    /// `audit: 12 requests, 36 handles lent, 36 released, 2 leaked in 1 request (reclaimed,
    /// sockets closed), 12 sessions parked (1 still parked at exit, closed), 0 open`; the parked
    /// part only when sessions were parked; the `open` count is the sockets the OS still held
    /// after their request ended, which is 0 unless the host has a bug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "audit: {}, {} lent, {} released",
            plural(self.requests, "request"),
            plural(self.lent, "handle"),
            self.released
        )?;
        if self.leaky_requests > 0 {
            write!(
                f,
                ", {} leaked in {} (reclaimed, sockets closed; {} refused with 500",
                self.leaked_handles,
                plural(self.leaky_requests, "request"),
                self.refused
            )?;
            if self.leaked_after_head > 0 {
                write!(f, ", {} found after the response had gone out", self.leaked_after_head)?;
            }
            f.write_str(")")?;
        }
        if self.suppressed_handles > 0 {
            write!(f, ", {} suppressed", self.suppressed_handles)?;
        }
        if self.trapped + self.timed_out + self.cancelled > 0 {
            write!(
                f,
                ", {} trapped, {} timed out, {} cancelled at shutdown (their handles reclaimed)",
                self.trapped, self.timed_out, self.cancelled
            )?;
        }
        if self.parked + self.parked_at_exit > 0 {
            write!(
                f,
                ", {} parked ({} still parked at exit, closed)",
                plural(self.parked, "session"),
                self.parked_at_exit
            )?;
        }
        write!(f, ", {} open", self.sockets_left_open)
    }
}

impl TotalsSnapshot {
    /// What client timeouts and limits did over the run, for the log at shutdown; `None` when
    /// they never acted.
    pub fn clients(&self) -> Option<String> {
        let closed = self.clients_header_timeout + self.clients_idle + self.clients_stalled;
        (closed + self.bodies_too_slow + self.bodies_streamed > 0).then(|| {
            format!(
                "client connections closed: {} without a complete request head in time (--header-timeout), {} idle \
                 (--idle-timeout), {} not reading their response (--idle-timeout); request bodies: {} too slow \
                 (408, --body-min-rate), {} longer than --body-buffer streamed",
                self.clients_header_timeout,
                self.clients_idle,
                self.clients_stalled,
                self.bodies_too_slow,
                self.bodies_streamed
            )
        })
    }
}
