//! What a store's guest may do with the network: where it may connect, how many handles it may
//! hold, the time limits the host enforces on every lent socket, and what dropping a connection
//! with live streams does.

use crate::net::allowlist::Allowlist;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What happens when the guest drops a connection while a reader or writer lent from it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClosePolicy {
    /// Trap, naming the live streams and where they were created (wasi:sockets' rule).
    #[default]
    Strict,
    /// Python's makefile semantics: the OS socket stays open until the last of the connection,
    /// reader and writer is dropped. The lingering streams are reported as the connection's leak.
    Deferred,
    /// Close the OS socket at once. Streams left behind get `closed` when used, and are reported.
    Reclaim,
}

impl ClosePolicy {
    pub const ALL: [ClosePolicy; 3] = [ClosePolicy::Strict, ClosePolicy::Deferred, ClosePolicy::Reclaim];
}

impl fmt::Display for ClosePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClosePolicy::Strict => "strict",
            ClosePolicy::Deferred => "deferred",
            ClosePolicy::Reclaim => "reclaim",
        })
    }
}

impl FromStr for ClosePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClosePolicy::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| format!("unknown close policy '{s}' (strict, deferred or reclaim)"))
    }
}

/// The host's rules for one store.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where connections may go. Empty: nowhere.
    pub allow: Allowlist,
    /// Longest a connect may take; the guest may ask for less.
    pub connect_timeout: Duration,
    /// Longest a read may wait for data; `None` lets the guest decide (it may wait forever).
    pub read_timeout: Option<Duration>,
    /// Longest a write may stall; `None` lets the guest decide.
    pub write_timeout: Option<Duration>,
    /// Dropping a connection whose streams live.
    pub close: ClosePolicy,
    /// Most connections open at once; past it, `connect` gets `limit-reached`.
    pub max_connections: usize,
    /// Most handles (connections, readers, writers) lent at once; past it, `limit-reached`.
    pub max_handles: usize,
    /// Record creation sites (wasm backtraces) and access history. Off, the registry still
    /// counts handles but skips the backtraces and the per-operation bookkeeping.
    pub audit_detail: bool,
    /// With `audit_detail`, record the guest's backtrace at every drop (the default, so a
    /// record tells the whole life of each handle). Off, only at the one drop a report can show:
    /// a connection dropped while its streams are still lent (the PyMySQL bug). `leashed serve`
    /// turns it off: its reports show leaks and misuse only, and a capture walks and names every
    /// frame of the guest's stack: with the address map, about a fifth of serve's CPU.
    pub every_drop_site: bool,
    /// Session reuse: where `park` puts connections and `resume` finds them. `None` (the
    /// default): `park` is refused and `resume` finds nothing.
    pub reuse: Option<crate::net::parking::SessionReuse>,
    /// The most the guest's linear memories may take together, in bytes; a growth past it
    /// traps, and the trap is known to be this limit (`GuestInstance::memory_limit_hit`).
    /// `None`: wasm's own 4 GiB.
    pub memory_limit: Option<usize>,
    /// Keep what the guest writes to stderr (its panic and abort messages) for the caller,
    /// instead of passing it through: a caller that explains a trap in its own words shows the
    /// guest's text only when it adds something.
    pub capture_guest_stderr: bool,
    /// A cap on open connections shared with other instances (a host-wide limit); past it,
    /// `connect` gets `limit-reached`. `None`: only this instance's `max_connections`.
    pub host_connections: Option<std::sync::Arc<crate::net::budget::ConnectionBudget>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: Allowlist::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: Some(Duration::from_secs(60)),
            close: ClosePolicy::Strict,
            max_connections: 64,
            max_handles: 256,
            audit_detail: true,
            every_drop_site: true,
            reuse: None,
            memory_limit: None,
            capture_guest_stderr: false,
            host_connections: None,
        }
    }
}

impl Policy {
    /// A policy that allows exactly these destinations, with the default limits.
    pub fn allowing(allow: Allowlist) -> Self {
        Policy { allow, ..Policy::default() }
    }
}

/// The tighter of the host's limit and the guest's request (in milliseconds).
pub fn tighter(host: Option<Duration>, guest_ms: Option<u32>) -> Option<Duration> {
    let guest = guest_ms.map(|ms| Duration::from_millis(ms.into()));
    match (host, guest) {
        (Some(h), Some(g)) => Some(h.min(g)),
        (h, g) => h.or(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest can tighten a host limit but never loosen it.
    #[test]
    fn guest_can_only_tighten_limits() {
        let host = Some(Duration::from_secs(10));
        assert_eq!(tighter(host, Some(2_000)), Some(Duration::from_secs(2)));
        assert_eq!(tighter(host, Some(60_000)), host);
        assert_eq!(tighter(None, Some(5)), Some(Duration::from_millis(5)));
        assert_eq!(tighter(None, None), None);
    }

    /// Close policies parse from and print as their CLI names.
    #[test]
    fn close_policies_round_trip_through_their_names() {
        for policy in ClosePolicy::ALL {
            assert_eq!(policy.to_string().parse::<ClosePolicy>(), Ok(policy));
        }
        assert!("lenient".parse::<ClosePolicy>().is_err());
    }
}
