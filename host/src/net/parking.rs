//! Session reuse: the parking lot. A guest that ends a clean session `park`s its connection; when
//! its last handle is dropped, the host keeps the socket (plain or TLS, handshake included) here
//! instead of closing it. A later instance that asks for the same key `resume`s it, and skips the
//! connect, the TLS handshake and the login.
//!
//! Keys are scoped by the component that parked (its digest), so two components never share a
//! session. Each key keeps at most `per_key` sockets and the whole lot at most `max_parked`; a
//! socket idle longer than `idle`, or older than `max_age`, is closed instead of lent. Parked
//! sockets belong to no instance: they count against no instance's limits, and no instance's
//! audit reports them open; they do count against the host-wide cap on open connections (each
//! keeps its place under it, `net/budget.rs`).

use super::socket::Socket;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many sockets, for how long.
#[derive(Debug, Clone, Copy)]
pub struct ParkingLimits {
    /// Most sockets parked under one key.
    pub per_key: usize,
    /// Most sockets parked in the whole lot, under any key.
    pub max_parked: usize,
    pub idle: Duration,
    pub max_age: Duration,
}

impl Default for ParkingLimits {
    fn default() -> Self {
        ParkingLimits { per_key: 8, max_parked: 64, idle: Duration::from_secs(30), max_age: Duration::from_secs(300) }
    }
}

/// A parked socket.
#[derive(Debug)]
pub struct Parked {
    pub socket: Arc<Socket>,
    /// What the guest needs to take the session over.
    pub state: Vec<u8>,
    /// Who parked it, e.g. "connection #1 (first lent 2.1 s ago)", for the resuming audit.
    pub origin: String,
    /// When its TCP connection was made.
    pub born: Instant,
    pub parked_at: Instant,
}

/// Every parked socket of one host (one `leashed serve`), shared by its instances.
#[derive(Debug, Default)]
pub struct ParkingLot {
    limits: ParkingLimits,
    keys: Mutex<HashMap<String, VecDeque<Parked>>>,
}

/// A store's way into the lot: the lot, and the scope its keys live in (the component's digest).
#[derive(Debug, Clone)]
pub struct SessionReuse {
    pub lot: Arc<ParkingLot>,
    pub scope: String,
}

impl SessionReuse {
    /// The lot's key for the guest's `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.scope)
    }
}

impl ParkingLot {
    pub fn new(limits: ParkingLimits) -> ParkingLot {
        ParkingLot { limits, keys: Mutex::default() }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Parked>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key`, and the lot, have room for one more.
    pub fn has_room(&self, key: &str) -> bool {
        self.sweep();
        let keys = self.keys();
        keys.get(key).map_or(0, VecDeque::len) < self.limits.per_key && parked_in(&keys) < self.limits.max_parked
    }

    /// Parks `parked` under `key`; gives it back when the key is full or the socket too old.
    pub fn park(&self, key: String, parked: Parked) -> Result<(), Parked> {
        let now = Instant::now();
        if now.duration_since(parked.born) >= self.limits.max_age {
            return Err(parked);
        }
        let mut keys = self.keys();
        if parked_in(&keys) >= self.limits.max_parked {
            return Err(parked);
        }
        let queue = keys.entry(key).or_default();
        if queue.len() >= self.limits.per_key {
            return Err(parked);
        }
        queue.push_back(parked);
        Ok(())
    }

    /// The most recently parked socket under `key` that is still fresh, and quiet: the server
    /// has neither closed it nor sent anything since (a KILL, a restart, wait_timeout). Older
    /// and dead ones are closed on the way.
    pub fn take(&self, key: &str) -> Option<Parked> {
        let now = Instant::now();
        let mut keys = self.keys();
        let queue = keys.get_mut(key)?;
        while let Some(parked) = queue.pop_back() {
            if self.fresh(&parked, now) && parked.socket.is_quiet() {
                return Some(parked);
            }
        }
        None
    }

    fn fresh(&self, parked: &Parked, now: Instant) -> bool {
        now.duration_since(parked.parked_at) < self.limits.idle && now.duration_since(parked.born) < self.limits.max_age
    }

    /// Closes every parked socket that is idle or old.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut keys = self.keys();
        for queue in keys.values_mut() {
            queue.retain(|parked| self.fresh(parked, now));
        }
        keys.retain(|_, queue| !queue.is_empty());
    }

    /// Closes the parked socket that has waited longest, under any key, so that a connect
    /// refused by the host-wide cap can have its place; `false` if nothing is parked.
    pub fn close_longest_parked(&self) -> bool {
        let mut keys = self.keys();
        let oldest = keys
            .iter()
            .filter_map(|(key, queue)| queue.front().map(|parked| (parked.parked_at, key.clone())))
            .min_by_key(|(parked_at, _)| *parked_at);
        let Some((_, key)) = oldest else { return false };
        let queue = keys.get_mut(&key).expect("the key was just found");
        drop(queue.pop_front());
        if queue.is_empty() {
            keys.remove(&key);
        }
        true
    }

    /// How many sockets are parked.
    pub fn len(&self) -> usize {
        parked_in(&self.keys())
    }

    /// The most sockets the lot keeps.
    pub fn max_parked(&self) -> usize {
        self.limits.max_parked
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The socket inodes of every parked socket: open on purpose, for the OS cross-checks.
    pub fn inodes(&self) -> HashSet<u64> {
        let keys = self.keys();
        keys.values().flatten().filter_map(|parked| parked.socket.inode).collect()
    }

    /// Closes every parked socket (at shutdown).
    pub fn clear(&self) {
        self.keys().clear();
    }
}

/// Sockets parked under every key.
fn parked_in(keys: &HashMap<String, VecDeque<Parked>>) -> usize {
    keys.values().map(VecDeque::len).sum()
}
