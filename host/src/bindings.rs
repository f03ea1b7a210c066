//! Host bindings generated from `wit/` (world `leashed:mysql/client`).
//!
//! Every leashed:net import is async (tokio I/O) and trappable: a bad handle or a strict-policy
//! violation traps, while socket failures come back to the guest as `error-code`.

wasmtime::component::bindgen!({
    world: "client",
    path: "../wit",
    imports: { default: async | trappable },
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
pub use exports::leashed::mysql::types::{
    Column, ConnectOptions, Date, Datetime, Error as MysqlError, QueryError, ResultSet, ServerError, Time, Value,
};
