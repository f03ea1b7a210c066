//! What a store's guest may do with the network: where it may connect, and the time limits the
//! host enforces on every lent socket.

use crate::net::allowlist::Allowlist;
use std::time::Duration;

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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: Allowlist::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: Some(Duration::from_secs(60)),
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
}
