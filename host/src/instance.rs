//! One leashed MySQL guest instance and its store: typed calls into its leashed:mysql exports,
//! each audited as its own call scope, and access to the store's audit.
//!
//! Each call returns `wasmtime::Result<Result<T, E>>`: the outer error is a trap (the guest or the
//! host broke the contract), the inner one is the guest's own answer.

use crate::audit::report::LeakReport;
use crate::audit::{Audit, CallId, CallName};
use crate::bindings::{Column, ConnectOptions, MysqlError, QueryError, ResultSet, Value, Warning};
use crate::exports::GuestExports;
use crate::state::HostState;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

/// An open `leashed:mysql/connection` inside the guest.
#[derive(Debug, Clone, Copy)]
pub struct MysqlHandle(ResourceAny);

/// A prepared `leashed:mysql/statement` inside the guest.
#[derive(Debug, Clone, Copy)]
pub struct StatementHandle(ResourceAny);

/// An open `leashed:mysql/row-stream` inside the guest.
#[derive(Debug, Clone, Copy)]
pub struct RowStreamHandle(ResourceAny);

/// A guest instance with its own store, audit and policy.
pub struct GuestInstance {
    store: Store<HostState>,
    exports: GuestExports,
    last_call: Option<CallId>,
}

impl GuestInstance {
    pub(crate) fn new(store: Store<HostState>, exports: GuestExports) -> Self {
        GuestInstance { store, exports, last_call: None }
    }

    fn begin(&mut self, name: impl Into<CallName>) -> CallId {
        let call = self.store.data().audit.begin_call(name);
        self.last_call = Some(call);
        call
    }

    fn end<T>(&mut self, call: CallId, result: wasmtime::Result<T>) -> wasmtime::Result<T> {
        self.store.data().audit.end_call(call, result.is_err());
        result
    }

    /// Connects and logs in.
    pub async fn open(&mut self, options: &ConnectOptions) -> wasmtime::Result<Result<MysqlHandle, MysqlError>> {
        let call = self.begin(format!("open(mysql://{}@{}:{})", options.user, options.host, options.port));
        let result = self.exports.open(&mut self.store, (options,)).await;
        Ok(self.end(call, result)?.map(MysqlHandle))
    }

    /// Runs one or more statements.
    pub async fn query(
        &mut self,
        conn: MysqlHandle,
        sql: &str,
    ) -> wasmtime::Result<Result<Vec<ResultSet>, QueryError>> {
        let call = self.begin(CallName::sql("query", sql));
        let result = self.exports.query(&mut self.store, (conn.0, sql)).await;
        self.end(call, result)
    }

    /// Runs one statement and returns a stream of its rows.
    pub async fn query_stream(
        &mut self,
        conn: MysqlHandle,
        sql: &str,
    ) -> wasmtime::Result<Result<RowStreamHandle, MysqlError>> {
        let call = self.begin(CallName::sql("query-stream", sql));
        let result = self.exports.query_stream(&mut self.store, (conn.0, sql)).await;
        Ok(self.end(call, result)?.map(RowStreamHandle))
    }

    /// A stream's columns.
    pub async fn stream_columns(&mut self, stream: RowStreamHandle) -> wasmtime::Result<Vec<Column>> {
        let call = self.begin("row-stream.columns()");
        let result = self.exports.stream_columns(&mut self.store, (stream.0,)).await;
        self.end(call, result)
    }

    /// Up to `max` more rows; empty when the result is complete.
    pub async fn next_batch(
        &mut self,
        stream: RowStreamHandle,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<Vec<Value>>, MysqlError>> {
        let call = self.begin(format!("next-batch({max})"));
        let result = self.exports.next_batch(&mut self.store, (stream.0, max)).await;
        self.end(call, result)
    }

    /// The stream's outcome (its result set without rows) once its last row has been read.
    pub async fn stream_outcome(&mut self, stream: RowStreamHandle) -> wasmtime::Result<Option<ResultSet>> {
        let call = self.begin("row-stream.outcome()");
        let result = self.exports.stream_outcome(&mut self.store, (stream.0,)).await;
        self.end(call, result)
    }

    /// Closes a stream (reading what is left) and drops the guest's handle.
    pub async fn close_stream(&mut self, stream: RowStreamHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin("row-stream.close()");
        let closed = self.exports.close_stream(&mut self.store, (stream.0,)).await;
        let dropped = match closed {
            Ok(closed) => stream.0.resource_drop_async(&mut self.store).await.map(|()| closed),
            Err(trap) => Err(trap),
        };
        self.end(call, dropped)
    }

    /// What the guest's linear memories hold now, in bytes (wasm memory never shrinks).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.current_bytes()
    }

    /// The largest size the guest's linear memory has grown to, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.store.data().memory.peak_bytes
    }

    /// Prepares a statement (COM_STMT_PREPARE).
    pub async fn prepare(
        &mut self,
        conn: MysqlHandle,
        sql: &str,
    ) -> wasmtime::Result<Result<StatementHandle, MysqlError>> {
        let call = self.begin(CallName::sql("prepare", sql));
        let result = self.exports.prepare(&mut self.store, (conn.0, sql)).await;
        Ok(self.end(call, result)?.map(StatementHandle))
    }

    /// Sends one piece of a long parameter value (COM_STMT_SEND_LONG_DATA).
    pub async fn send_long_data(
        &mut self,
        stmt: StatementHandle,
        index: u16,
        piece: &[u8],
    ) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin(format!("send-long-data({index}, {} bytes)", piece.len()));
        let result = self.exports.send_long_data(&mut self.store, (stmt.0, index, piece)).await;
        self.end(call, result)
    }

    /// Runs a prepared statement with one value per placeholder (COM_STMT_EXECUTE).
    pub async fn execute(
        &mut self,
        stmt: StatementHandle,
        params: &[Value],
    ) -> wasmtime::Result<Result<Vec<ResultSet>, QueryError>> {
        let call = self.begin(format!("execute({} params)", params.len()));
        let result = self.exports.execute(&mut self.store, (stmt.0, params)).await;
        self.end(call, result)
    }

    /// Frees a prepared statement (COM_STMT_CLOSE) and drops the guest's handle.
    pub async fn close_statement(&mut self, stmt: StatementHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin("statement.close()");
        let closed = self.exports.close_statement(&mut self.store, (stmt.0,)).await;
        let dropped = match closed {
            Ok(closed) => stmt.0.resource_drop_async(&mut self.store).await.map(|()| closed),
            Err(trap) => Err(trap),
        };
        self.end(call, dropped)
    }

    /// COM_PING.
    pub async fn ping(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin("ping()");
        let result = self.exports.ping(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// The server's version from its greeting.
    pub async fn server_version(&mut self, conn: MysqlHandle) -> wasmtime::Result<String> {
        let call = self.begin("server-version()");
        let result = self.exports.server_version(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// The server's id for the session.
    pub async fn connection_id(&mut self, conn: MysqlHandle) -> wasmtime::Result<u32> {
        let call = self.begin("connection-id()");
        let result = self.exports.connection_id(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// Whether the connection is encrypted.
    pub async fn uses_tls(&mut self, conn: MysqlHandle) -> wasmtime::Result<bool> {
        let call = self.begin("uses-tls()");
        let result = self.exports.uses_tls(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// COM_INIT_DB.
    pub async fn select_db(&mut self, conn: MysqlHandle, database: &str) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin(format!("select-db({database:?})"));
        let result = self.exports.select_db(&mut self.store, (conn.0, database)).await;
        self.end(call, result)
    }

    /// COM_RESET_CONNECTION.
    pub async fn reset(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin("reset()");
        let result = self.exports.reset(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// COM_CHANGE_USER.
    pub async fn change_user(
        &mut self,
        conn: MysqlHandle,
        user: &str,
        password: Option<&str>,
        database: Option<&str>,
    ) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin(format!("change-user({user:?})"));
        let result = self.exports.change_user(&mut self.store, (conn.0, user, password, database)).await;
        self.end(call, result)
    }

    /// SHOW WARNINGS for the last statement.
    pub async fn warnings(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<Vec<Warning>, MysqlError>> {
        let call = self.begin("warnings()");
        let result = self.exports.warnings(&mut self.store, (conn.0,)).await;
        self.end(call, result)
    }

    /// Closes the connection (COM_QUIT, release of the lent sockets) and drops the guest's handle.
    pub async fn close(&mut self, conn: MysqlHandle) -> wasmtime::Result<Result<(), MysqlError>> {
        let call = self.begin("close()");
        let closed = self.exports.close(&mut self.store, (conn.0,)).await;
        let dropped = match closed {
            Ok(closed) => conn.0.resource_drop_async(&mut self.store).await.map(|()| closed),
            Err(trap) => Err(trap),
        };
        self.end(call, dropped)
    }

    /// Drops the guest's handle without calling `close` (the guest then closes it itself).
    pub async fn drop_handle(&mut self, conn: MysqlHandle) -> wasmtime::Result<()> {
        let call = self.begin("drop()");
        let result = conn.0.resource_drop_async(&mut self.store).await;
        self.end(call, result)
    }

    /// Whether the guest trapped because its memory would have grown past the policy's
    /// `memory_limit`.
    pub fn memory_limit_hit(&self) -> bool {
        self.store.data().memory.limit_hit
    }

    /// What the guest wrote to stderr, when the policy captures it (empty otherwise).
    pub fn guest_stderr(&self) -> String {
        self.store.data().captured_stderr.as_ref().map(|tail| tail.contents()).unwrap_or_default()
    }

    /// Drops the store, which releases every handle the guest still held (after a trap, all it
    /// had), and asks the OS whether any of their sockets is still open (a host bug if so).
    /// The audit stays readable.
    pub fn teardown(self) -> (Audit, Result<Vec<crate::audit::report::OsMismatch>, String>) {
        let audit = self.store.data().audit.clone();
        drop(self.store);
        let still_open = audit.sockets_still_open();
        (audit, still_open)
    }

    /// Turns the audit's detail (creation and drop sites, per-operation history) on or off for
    /// what happens from now on. The policy sets it at the start; the audit's own benchmark
    /// flips it to compare both settings on one connection.
    pub fn set_audit_detail(&mut self, on: bool) {
        self.store.data_mut().policy.audit_detail = on;
    }

    /// This store's handle registry.
    pub fn audit(&self) -> &Audit {
        &self.store.data().audit
    }

    /// The report for the most recent call: what it lent that the guest still holds.
    pub fn last_call_report(&self) -> Option<LeakReport> {
        self.last_call.map(|call| self.audit().call_report(call))
    }
}
