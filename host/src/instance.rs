//! One guest instance and its store: typed calls into the guest's leashed:mysql exports, and
//! access to the store's audit.
//!
//! Each call returns `wasmtime::Result<Result<T, E>>`: the outer error is a trap (the guest or the
//! host broke the contract), the inner one is the guest's own answer.

use crate::audit::Audit;
use crate::bindings::{Client, ConnectOptions, MysqlError, QueryError, ResultSet};
use crate::state::HostState;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

/// An open `leashed:mysql/connection` inside the guest.
#[derive(Debug, Clone, Copy)]
pub struct MysqlHandle(ResourceAny);

/// A guest instance with its own store, audit and policy.
pub struct GuestInstance {
    store: Store<HostState>,
    client: Client,
}

impl GuestInstance {
    pub(crate) fn new(store: Store<HostState>, client: Client) -> Self {
        GuestInstance { store, client }
    }

    /// Connects and logs in.
    pub async fn open(&mut self, options: &ConnectOptions) -> wasmtime::Result<Result<MysqlHandle, MysqlError>> {
        let api = self.client.leashed_mysql_connection().connection();
        Ok(api.call_open(&mut self.store, options).await?.map(MysqlHandle))
    }

    /// Runs one or more statements.
    pub async fn query(
        &mut self,
        conn: MysqlHandle,
        sql: &str,
    ) -> wasmtime::Result<Result<Vec<ResultSet>, QueryError>> {
        let api = self.client.leashed_mysql_connection().connection();
        api.call_query(&mut self.store, conn.0, sql).await
    }

    /// COM_PING.
    pub async fn ping(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let api = self.client.leashed_mysql_connection().connection();
        api.call_ping(&mut self.store, conn.0).await
    }

    /// Closes the connection (COM_QUIT, release of the lent sockets) and drops the guest's handle.
    pub async fn close(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let api = self.client.leashed_mysql_connection().connection();
        let closed = api.call_close(&mut self.store, conn.0).await?;
        conn.0.resource_drop_async(&mut self.store).await?;
        Ok(closed)
    }

    /// Drops the guest's handle without calling `close` (the guest then closes it itself).
    pub async fn drop_handle(&mut self, conn: MysqlHandle) -> wasmtime::Result<()> {
        conn.0.resource_drop_async(&mut self.store).await
    }

    /// This store's handle registry.
    pub fn audit(&self) -> &Audit {
        &self.store.data().audit
    }
}
