//! The leashed guest: a MySQL/MariaDB client compiled to a wasm32-wasip2 component.
//!
//! It reaches the server only through the TCP connection its host lends it (`leashed:net/tcp`)
//! and exports `leashed:mysql/connection`.
//!
//! # Layout
//! - [`proto`]: the protocol core. It never does I/O: it turns packets the server sent into
//!   packets to send and into results (handshake and auth, commands, result sets, values).
//! - [`link`]: the thin I/O shell. It owns the lent connection, reader and writer, frames packets
//!   over them, and holds the one force-close that releases all three.
//! - [`client`]: the exported `connection` resource, which drives `proto` over a `link` and
//!   force-closes on every error that leaves the connection unusable.
//! - [`row_stream`]: the exported `row-stream` resource, which reads a result batch by batch.
//! - [`statement`]: the exported `statement` resource (prepared statements).
//! - [`statement_cache`]: a session's prepared statements, open and cached by SQL.
//! - [`reuse`]: session keys and the state a parked session carries (session reuse).
//! - [`parking`]: how a session is parked for the next instance and taken over by it.
//! - [`hygiene`]: whether a session is provably untouched, so parking can skip the reset.

pub mod client;
pub mod hygiene;
pub mod link;
pub mod parking;
pub mod proto;
pub mod reuse;
pub mod row_stream;
pub mod statement;
pub mod statement_cache;

/// Bindings generated from `wit/` (world `leashed:mysql/client`).
pub mod bindings {
    wit_bindgen::generate!({
        world: "client",
        path: "../wit",
        pub_export_macro: true,
        generate_all,
    });
}

// The exports exist only in the component; native builds (the core's unit tests) skip them.
#[cfg(target_arch = "wasm32")]
use client::Component;
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);
