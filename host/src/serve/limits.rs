//! The limits `leashed serve` puts on its clients (never on plugins), in one place: how long a
//! connection may take to send a request head, sit idle between requests or leave a response
//! unread; how many connections are open at once; how much of a body the host reads before the
//! request takes a slot, and the slowest rate a body may arrive at. Only rules and clocks, no
//! I/O: `front.rs` applies them to connections, `body.rs` to request bodies.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a body may arrive below [`ClientLimits::body_min_rate`] before the rate counts:
/// a client's first bytes often wait on a slow start, a proxy or a TLS-terminating hop.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// What clients may do, as the operator set it (`leashed serve --help` explains each).
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// Longest a request head (request line and headers) may take, from the connection's
    /// start for its first request, from the request's first byte for later ones
    /// (`--header-timeout`: Go's `ReadHeaderTimeout`, nginx's `client_header_timeout`).
    pub header_timeout: Duration,
    /// Longest a kept-alive connection may wait for the next request's first byte, and a
    /// response may wait for the client to read it (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Client connections open at once; past it the server stops accepting, and new connections
    /// wait in the listen backlog (`--max-client-connections`).
    pub max_connections: usize,
    /// How much of a request body the host reads before the request takes a slot, in bytes;
    /// the rest is streamed to the plugin (`--body-buffer`).
    pub body_buffer: usize,
    /// The slowest a body may arrive, in bytes per second, after [`BODY_RATE_GRACE`]
    /// (`--body-min-rate`).
    pub body_min_rate: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            body_buffer: 1 << 20,
            body_min_rate: 1024,
        }
    }
}

/// Which client timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within `--header-timeout`.
    Head(Duration),
    /// No byte of a next request within `--idle-timeout`.
    Idle(Duration),
    /// The client read none of its response for `--idle-timeout`.
    WriteStalled(Duration),
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Head(after) => write!(f, "no complete request head within {after:?} (--header-timeout)"),
            Expiry::Idle(after) => write!(f, "idle for {after:?} with no request (--idle-timeout)"),
            Expiry::WriteStalled(after) => write!(f, "read none of its response for {after:?} (--idle-timeout)"),
        }
    }
}

/// Where a client connection stands, as far as its timeouts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request head is being waited for, since the connection's start (its first request) or
    /// the request's first byte: `--header-timeout` runs. Moves to `Busy` once the head is read.
    Head { since: Instant },
    /// Between requests, no byte of the next one yet: `--idle-timeout` runs. Moves to `Head` at
    /// the first byte, or to `Busy` when a head was already buffered.
    Idle { since: Instant },
    /// Requests in flight, from a complete head until the response is written out: no timeout
    /// of the client's here (the request's deadline and the body's rate govern it). Moves to
    /// `Idle` when the last one is done.
    Busy { requests: usize },
}

/// The clock of one client connection: what its bytes and requests did, and when it is due to
/// be closed. Sans-IO: every change takes the time it happened at.
#[derive(Debug)]
struct ClockState {
    phase: Phase,
    /// Since when a write to the client has been blocked (its receive window full).
    write_blocked_since: Option<Instant>,
}

impl ClockState {
    /// When the connection must be closed, and why, if nothing happens first.
    fn due(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<(Instant, Expiry)> {
        let phase = match self.phase {
            Phase::Head { since } => Some((since + header_timeout, Expiry::Head(header_timeout))),
            Phase::Idle { since } => Some((since + idle_timeout, Expiry::Idle(idle_timeout))),
            Phase::Busy { .. } => None,
        };
        let stalled = self.write_blocked_since.map(|since| (since + idle_timeout, Expiry::WriteStalled(idle_timeout)));
        match (phase, stalled) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Bytes came from the client. Returns whether the due time moved.
    fn read(&mut self, now: Instant) -> bool {
        if let Phase::Idle { .. } = self.phase {
            self.phase = Phase::Head { since: now };
            return true;
        }
        false
    }

    fn request_started(&mut self) {
        self.phase = match self.phase {
            Phase::Busy { requests } => Phase::Busy { requests: requests + 1 },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
    }

    /// A request's response was written out (or abandoned). Returns whether the due time moved.
    fn request_done(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Busy { requests } if requests > 1 => self.phase = Phase::Busy { requests: requests - 1 },
            _ => self.phase = Phase::Idle { since: now },
        }
        matches!(self.phase, Phase::Idle { .. })
    }

    /// A write to the client blocked (`true`) or went through (`false`). Returns whether the
    /// due time moved.
    fn wrote(&mut self, blocked: bool, now: Instant) -> bool {
        match (blocked, self.write_blocked_since) {
            (true, None) => {
                self.write_blocked_since = Some(now);
                true
            }
            (false, Some(_)) => {
                self.write_blocked_since = None;
                false
            }
            _ => false,
        }
    }
}

/// One client connection's clock, shared by its IO (which reports bytes), its service (which
/// reports requests) and its watchdog (which closes it when it is due).
#[derive(Debug)]
pub struct ConnectionClock {
    header_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<ClockState>,
    /// Woken when the due time moved earlier, so the watchdog sleeps to the new one.
    moved: Notify,
}

impl ConnectionClock {
    /// The clock of a connection accepted at `now`: its first request head is waited for.
    pub fn new(limits: &ClientLimits, now: Instant) -> Arc<Self> {
        Arc::new(ConnectionClock {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            state: Mutex::new(ClockState { phase: Phase::Head { since: now }, write_blocked_since: None }),
            moved: Notify::new(),
        })
    }

    /// When the connection must be closed, and why, if nothing happens first.
    pub fn due(&self) -> Option<(Instant, Expiry)> {
        self.lock().due(self.header_timeout, self.idle_timeout)
    }

    /// Whether the connection only waits for a request head: none in flight, nothing left to
    /// write out. Closing it then loses nothing.
    pub fn awaiting_head(&self) -> bool {
        let state = self.lock();
        matches!(state.phase, Phase::Head { .. }) && state.write_blocked_since.is_none()
    }

    /// Resolves when the due time may have moved earlier than the last [`Self::due`].
    pub async fn moved(&self) {
        self.moved.notified().await;
    }

    /// Bytes came from the client at `now`.
    pub fn read(&self, now: Instant) {
        let moved = self.lock().read(now);
        self.notify_if(moved);
    }

    /// A write to the client blocked, or went through, at `now`.
    pub fn wrote(&self, blocked: bool, now: Instant) {
        let moved = self.lock().wrote(blocked, now);
        self.notify_if(moved);
    }

    /// A request head was read: the connection is busy until the guard is dropped (with the
    /// response's body, once it is written out).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.lock().request_started();
        InFlight(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify_if(&self, moved: bool) {
        if moved {
            self.moved.notify_one();
        }
    }
}

/// A request in flight on a connection; dropping it says its response is done.
#[derive(Debug)]
pub struct InFlight(Arc<ConnectionClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let moved = self.0.lock().request_done(Instant::now());
        self.0.notify_if(moved);
    }
}

/// The minimum rate of one request body, as Apache's mod_reqtimeout counts it: the host may
/// wait for the client [`BODY_RATE_GRACE`] plus one second per `min_rate` bytes received so
/// far. Only time spent waiting on the client counts, never time the plugin took to read on.
#[derive(Debug, Clone)]
pub struct BodyRate {
    min_rate: u64,
    grace: Duration,
    received: u64,
    /// Time spent waiting on the client, in waits that ended.
    waited: Duration,
    /// Since when the host has been waiting, if it is.
    waiting_since: Option<Instant>,
}

impl BodyRate {
    pub fn new(limits: &ClientLimits) -> Self {
        BodyRate {
            min_rate: limits.body_min_rate.max(1),
            grace: BODY_RATE_GRACE,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
        }
    }

    /// `bytes` arrived at `now`, ending the wait for them.
    pub fn arrived(&mut self, bytes: usize, now: Instant) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        self.received += bytes as u64;
    }

    /// The host waits for more from `now` on (or goes on waiting): the time by which more must
    /// have come.
    pub fn waiting(&mut self, now: Instant) -> Instant {
        let since = *self.waiting_since.get_or_insert(now);
        let earned = self.grace + Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        since + earned.saturating_sub(self.waited)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The rate, for messages.
    pub fn min_rate(&self) -> u64 {
        self.min_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn clock(t0: Instant) -> ClockState {
        ClockState { phase: Phase::Head { since: t0 }, write_blocked_since: None }
    }

    /// A new connection's first head is due `--header-timeout` after it was accepted.
    #[test]
    fn the_first_head_is_timed_from_the_connection_start() {
        let t0 = Instant::now();
        let state = clock(t0);
        assert_eq!(state.due(10 * S, 30 * S), Some((t0 + 10 * S, Expiry::Head(10 * S))));
    }

    /// Between requests the idle timeout runs; the header timeout starts only at the first byte.
    #[test]
    fn idle_time_between_requests_is_not_header_time() {
        let t0 = Instant::now();
        let mut state = clock(t0);
        state.request_started();
        assert_eq!(state.due(10 * S, 30 * S), None, "no client timeout while a request is in flight");
        assert!(state.request_done(t0 + S));
        assert_eq!(state.due(10 * S, 30 * S), Some((t0 + 31 * S, Expiry::Idle(30 * S))));
        assert!(state.read(t0 + 20 * S));
        assert_eq!(state.due(10 * S, 30 * S), Some((t0 + 30 * S, Expiry::Head(10 * S))));
        assert!(!state.read(t0 + 25 * S), "the head's time is counted from its first byte");
    }

    /// A blocked write is due after the idle timeout, even while a request is in flight.
    #[test]
    fn a_response_left_unread_is_due_after_the_idle_timeout() {
        let t0 = Instant::now();
        let mut state = clock(t0);
        state.request_started();
        assert!(state.wrote(true, t0 + S));
        assert!(!state.wrote(true, t0 + 2 * S), "the stall counts from its start");
        assert_eq!(state.due(10 * S, 30 * S), Some((t0 + 31 * S, Expiry::WriteStalled(30 * S))));
        state.wrote(false, t0 + 3 * S);
        assert_eq!(state.due(10 * S, 30 * S), None);
    }

    /// One byte a second fails a rate of 1024 B/s right after the grace; 2 KiB/s never does.
    #[test]
    fn a_body_below_the_rate_is_due_after_the_grace() {
        let limits = ClientLimits { body_min_rate: 1024, ..ClientLimits::default() };
        let t0 = Instant::now();
        let mut slow = BodyRate::new(&limits);
        for second in 0..5 {
            let by = slow.waiting(t0 + second * S);
            slow.arrived(1, t0 + (second + 1) * S);
            assert!(by > t0 + (second + 1) * S, "within the grace at {second} s");
        }
        let by = slow.waiting(t0 + 5 * S);
        assert!(by < t0 + 5 * S + S / 10, "past the grace, one byte buys only 1/1024 s: {:?}", by - t0);

        let mut fast = BodyRate::new(&limits);
        for second in 0..60 {
            fast.waiting(t0 + second * S);
            fast.arrived(2048, t0 + (second + 1) * S);
        }
        assert!(fast.waiting(t0 + 60 * S) > t0 + 60 * S + BODY_RATE_GRACE);
    }

    /// Time the reader spends elsewhere (the plugin not reading) is not charged to the client.
    #[test]
    fn only_time_spent_waiting_on_the_client_counts() {
        let t0 = Instant::now();
        let mut rate = BodyRate::new(&ClientLimits::default());
        rate.waiting(t0);
        rate.arrived(10, t0 + S);
        // The reader comes back a minute later: the client had a full grace left.
        let by = rate.waiting(t0 + 61 * S);
        assert!(by > t0 + 61 * S + 3 * S, "{:?}", by - t0);
    }
}
