//! leashed-wasi-sockets: the `leashed:net/tcp` contract implemented over the standard
//! `wasi:sockets` 0.2, as a component of its own. Plugged into the leashed MySQL guest (or into
//! a plugin composed with it) by `leashed compose --for wasi-sockets`, it turns a component that
//! only leashed's host could run into one any WASI 0.2 runtime runs: `wasmtime serve`, Spin,
//! wasmCloud.
//!
//! What each file owns:
//! - `lent.rs`: the connection, reader and writer resources, and the contract's drop rules
//!   (children first; a connection dropped under a live stream traps, as the leashed host's
//!   strict policy does).
//! - `connect.rs`: name resolution and the connect, under the connect timeout.
//! - `wire.rs`: the wasi byte streams of a connected socket, read and written with deadlines.
//! - `tls.rs`: `start-tls` with rustls over those streams; `tls_config.rs` (the host's, shared
//!   by a `#[path]` module) builds the rustls configuration.
//! - `errors.rs`: wasi error codes and stream errors as leashed:net error codes.
//!
//! There is no audit here: a stock runtime has none. What the adapter keeps is the contract: the
//! drop order, the timeouts, the error codes, TLS with the same checks as the host's.

wit_bindgen::generate!({ world: "adapter", path: "wit", generate_all });

mod connect;
mod errors;
mod lent;
mod tls;
#[path = "../../../../host/src/net/tls_config.rs"]
mod tls_config;
mod wire;

/// The component's export; native builds (the unit tests) have no component to export from.
#[cfg(target_arch = "wasm32")]
struct Adapter;

#[cfg(target_arch = "wasm32")]
impl exports::leashed::net::tcp::Guest for Adapter {
    type Connection = lent::LentConnection;
    type Reader = lent::LentReader;
    type Writer = lent::LentWriter;
}

/// Session reuse needs a host that outlives instances; on a stock runtime the adapter has none,
/// so nothing is parked (the guest then closes the connection as usual) and nothing is resumed.
#[cfg(target_arch = "wasm32")]
impl exports::leashed::net::reuse::Guest for Adapter {
    fn park(
        _conn: exports::leashed::net::tcp::ConnectionBorrow<'_>,
        _key: String,
        _state: Vec<u8>,
    ) -> Result<(), exports::leashed::net::tcp::ErrorCode> {
        Err(exports::leashed::net::tcp::ErrorCode::InvalidState)
    }

    fn resume(_key: String) -> Option<(exports::leashed::net::tcp::Connection, Vec<u8>)> {
        None
    }
}

/// No audit runs on a stock runtime, so no site is wanted and attached frames are dropped.
#[cfg(target_arch = "wasm32")]
impl exports::leashed::net::sites::Guest for Adapter {
    fn wanted() -> bool {
        false
    }

    fn attach(_frames: Vec<String>) {}
}

#[cfg(target_arch = "wasm32")]
export!(Adapter);
