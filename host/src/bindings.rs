//! Host bindings generated from `wit/` (world `leashed:mysql/client`: leashed:net's `tcp` and
//! `reuse` imports, leashed:mysql's exports).
//!
//! Every leashed:net import is async (tokio I/O) and trappable: a bad handle or a strict-policy
//! violation traps, while socket failures come back to the guest as `error-code`. The imports
//! that lend, use or drop handles also get the store, so the audit can capture the guest's
//! backtrace: when a handle is lent or dropped, and when a stream is used after its socket was
//! reclaimed.

wasmtime::component::bindgen!({
    world: "client",
    path: "../wit",
    imports: {
        // These get the store, to capture the guest's backtrace.
        "leashed:net/tcp.[static]connection.connect": async | store | trappable,
        "leashed:net/reuse.resume": async | store | trappable,
        "leashed:net/tcp.[method]connection.reader": async | store | trappable,
        "leashed:net/tcp.[method]connection.writer": async | store | trappable,
        "leashed:net/tcp.[method]reader.read": async | store | trappable,
        "leashed:net/tcp.[method]writer.write": async | store | trappable,
        "leashed:net/tcp.[method]writer.flush": async | store | trappable,
        // Drops never wait, so they are synchronous.
        "leashed:net/tcp.[drop]connection": store | trappable,
        "leashed:net/tcp.[drop]reader": store | trappable,
        "leashed:net/tcp.[drop]writer": store | trappable,
        default: async | trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq],
    with: {
        "leashed:net/tcp.connection": crate::net::socket::LentConnection,
        "leashed:net/tcp.reader": crate::net::socket::LentReader,
        "leashed:net/tcp.writer": crate::net::socket::LentWriter,
    },
    trappable_error_type: {
        "leashed:net/tcp.error-code" => crate::net::error::NetError,
    },
});

pub use self::leashed::net::tcp::ErrorCode;

/// leashed:net/sites, from a world of its own: the MySQL guest (world `client`) does not import
/// it; interpreted guests and plugins may.
pub mod sites {
    wasmtime::component::bindgen!({
        inline: "package leashed:host; world sites { import leashed:net/sites@0.2.0; }",
        path: "../wit",
    });
}
pub use exports::leashed::mysql::types::{
    Column, ConnectOptions, Date, Datetime, Error as MysqlError, LocalFile, QueryError, ResultSet, ServerError, Time,
    TlsMode, Value, Warning,
};
