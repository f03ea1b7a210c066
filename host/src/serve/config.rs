//! What the operator of `leashed serve` chose: the policy every request's store gets, the
//! plugin's environment, the per-request limits and the limits on clients. Defaults are the
//! CLI's.

use super::limits::ClientLimits;
use crate::audit::suppress::Suppressions;
use crate::net::parking::ParkingLimits;
use crate::outbound_http::OutboundHttp;
use crate::policy::Policy;
use std::time::Duration;

/// Settings for every request a [`super::Server`] serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Each request's store: where its plugin may connect, close policy, connection and handle
    /// limits.
    pub policy: Policy,
    /// Environment variables the plugin sees (its configuration, e.g. `DATABASE_URL`).
    pub env: Vec<(String, String)>,
    /// The most linear memory one request's instance may use, all memories together, in bytes.
    pub memory_limit: usize,
    /// How long one request may take, from arrival to the handler's return (including waiting
    /// for a slot). Past it the request gets 504 and its instance is stopped.
    pub deadline: Duration,
    /// Requests running at once; later ones wait for a slot (within their deadline, else 503).
    pub max_concurrent: usize,
    /// Refuse a response with 500 when its request leaked (if its head has not gone out yet).
    pub deny_leaks: bool,
    /// Leaks to tolerate: shown and counted as suppressed, never refused.
    pub suppressions: Suppressions,
    /// Whether plugins may send outgoing HTTP requests.
    pub outbound_http: OutboundHttp,
    /// How long shutdown waits for requests in flight before cancelling them.
    pub shutdown_timeout: Duration,
    /// Session reuse: MySQL sessions a request's guest parks at close are lent to later requests
    /// of the same plugin that ask for the same session. `None`: off.
    pub session_reuse: Option<ParkingLimits>,
    /// What clients may do: timeouts, open connections, request bodies (limits.rs).
    pub client: ClientLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            policy: Policy { max_connections: 16, max_handles: 64, ..Policy::default() },
            env: Vec::new(),
            memory_limit: 256 << 20,
            deadline: Duration::from_secs(30),
            max_concurrent: 64,
            deny_leaks: false,
            suppressions: Suppressions::default(),
            outbound_http: OutboundHttp::Denied,
            shutdown_timeout: Duration::from_secs(10),
            session_reuse: Some(ParkingLimits::default()),
            client: ClientLimits::default(),
        }
    }
}
