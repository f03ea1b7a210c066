//! leashed: a wasmtime host that lends TCP sockets to a WebAssembly MySQL client, under a policy,
//! and audits every handle the guest did not release.
//!
//! # Layout
//! - [`bindings`]: types and traits generated from `wit/`.
//! - [`net`]: leashed:net — the lent sockets ([`net::socket`]), their host traits
//!   ([`net::tcp`]), the allowlist and the error mapping.
//! - [`policy`]: what a store's guest may do (allowlist, timeouts).
//! - [`audit`]: the handle registry, creation sites and leak reports; [`os_fds`]: the OS's view
//!   of the same sockets.
//! - [`state`]: the per-store state the imports work on; [`memory`]: the guest memory's peak;
//!   [`guest_stderr`]: the tail of the guest's stderr; [`trap_text`]: a trap's kind in words.
//! - [`component`], [`runtime`]: loading a component and instantiating it (wiring only).
//! - [`instance`]: typed calls into a guest instance's leashed:mysql exports (found, and
//!   typechecked once per runtime, by the crate-private `exports`).
//! - [`invoke`]: any component that imports leashed:net, its exports called by name under audit.
//! - [`render`]: result sets as a mysql-style table or as JSON; [`error_text`]: a guest-reported
//!   error in a user's words, naming the server.
//! - [`mysql_url`]: `mysql://` URLs to connect options; [`param`]: `--param` values.
//! - [`compose`]: plugging the MySQL guest into a plugin's leashed:mysql import (wac-graph).
//! - [`serve`]: `leashed serve`, wasi:http plugins with a fresh instance, limits and an audit per
//!   request; [`outbound_http`]: what their outgoing HTTP requests may do.
//!
//! The `leashed` binary (src/main.rs) is a thin CLI over these.

pub mod audit;
pub mod bindings;
pub mod component;
pub mod compose;
pub mod error_text;
mod exports;
#[cfg(test)]
mod fuzz_parsers;
pub mod guest_stderr;
pub mod instance;
pub mod invoke;
pub mod memory;
pub mod mysql_url;
pub mod net;
pub mod os_fds;
pub mod outbound_http;
pub mod param;
pub mod policy;
pub mod render;
pub mod runtime;
pub mod serve;
pub mod sql_split;
pub mod state;
pub mod trap_text;

pub use audit::report::LeakReport;
pub use audit::{Audit, CallId, HandleId, HandleKind, HandleRecord, Release, Summary};
pub use component::ComponentSource;
pub use instance::{GuestInstance, MysqlHandle, RowStreamHandle, StatementHandle};
pub use invoke::{AuditedComponent, AuditedInstance, CallOutcome};
pub use net::allowlist::{AllowEntry, Allowlist};
pub use policy::{ClosePolicy, Policy};
pub use runtime::Runtime;
