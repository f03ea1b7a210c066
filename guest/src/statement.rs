//! The exported `statement` resource: a prepared statement id on its connection's session,
//! executed with binary parameters, with long data sent ahead. Closing it (or dropping it)
//! hands it back to the session's statement cache, which closes on the server what it does
//! not keep.

use crate::bindings::exports::leashed::mysql::connection::GuestStatement;
use crate::bindings::exports::leashed::mysql::types::{Column as ColumnInfo, Error, QueryError, ResultSet, Value};
use crate::client::{Session, SharedSession, read_results, with_session};
use crate::proto::query::QueryResponse;
use crate::proto::statement::{com_stmt_close, com_stmt_execute, com_stmt_send_long_data, wire_param};
use crate::proto::value::describe_column;
use crate::statement_cache::PreparedSql;
use std::cell::{Cell, RefCell};

/// The guest side of an exported `statement` handle: a statement id on its connection's session.
pub struct MysqlStatement {
    pub(crate) session: SharedSession,
    /// The statement; `None` once closed.
    pub(crate) prepared: RefCell<Option<PreparedSql>>,
    /// The session's statement generation it was handed out in (see `statement_cache.rs`).
    pub(crate) generation: u32,
    /// Which parameters got long data since the last execute.
    pub(crate) long_data: RefCell<Vec<bool>>,
    /// False once closed (by `close`, or with its connection).
    pub(crate) open: Cell<bool>,
}

impl MysqlStatement {
    fn with_session<T, E>(
        &self,
        refuse: impl FnOnce(Error) -> E,
        error_of: impl Fn(&E) -> &Error,
        op: impl FnOnce(&mut Session) -> Result<T, E>,
    ) -> Result<T, E> {
        if !self.open.get() {
            return Err(refuse(Error::Closed));
        }
        with_session(&self.session, refuse, error_of, op)
    }

    /// The statement's id and parameter count (zeros once closed: every use checks `open`).
    fn id_and_params(&self) -> (u32, u16) {
        self.prepared.borrow().as_ref().map_or((0, 0), |p| (p.id, p.params))
    }

    /// Hands the statement back to its session's cache, unless already closed. A statement
    /// with long data sent and not executed is not kept; whatever the cache does not keep gets
    /// COM_STMT_CLOSE (which the server does not answer).
    fn free(&self) -> Result<(), Error> {
        let result = self.with_session(
            |e| e,
            |e| e,
            |session| {
                let Some(prepared) = self.prepared.borrow_mut().take() else { return Ok(()) };
                let keep = !self.long_data.borrow().contains(&true);
                for id in session.statements.close(prepared, self.generation, keep) {
                    session.link.begin_command();
                    session.link.send(&com_stmt_close(id))?;
                }
                Ok(())
            },
        );
        self.open.set(false);
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }
}

impl Drop for MysqlStatement {
    fn drop(&mut self) {
        let _ = self.free();
    }
}

impl GuestStatement for MysqlStatement {
    fn param_count(&self) -> u16 {
        self.id_and_params().1
    }

    fn columns(&self) -> Vec<ColumnInfo> {
        self.prepared.borrow().as_ref().map_or_else(Vec::new, |p| p.columns.iter().map(describe_column).collect())
    }

    fn send_long_data(&self, index: u16, piece: Vec<u8>) -> Result<(), Error> {
        let (id, params) = self.id_and_params();
        if self.open.get() && index >= params {
            return Err(Error::Invalid(format!(
                "parameter index {index} out of range: the statement has {params} parameters"
            )));
        }
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                session.link.begin_command();
                session.link.send(&com_stmt_send_long_data(id, index, &piece))
            },
        )?;
        self.long_data.borrow_mut()[usize::from(index)] = true;
        Ok(())
    }

    fn execute(&self, params: Vec<Value>) -> Result<Vec<ResultSet>, QueryError> {
        let fail = |error| QueryError { completed: Vec::new(), error };
        let (id, param_count) = self.id_and_params();
        if self.open.get() && params.len() != usize::from(param_count) {
            return Err(fail(Error::Invalid(format!(
                "the statement has {param_count} parameters, but {} values were given",
                params.len()
            ))));
        }
        let wire: Vec<_> = params.iter().map(wire_param).collect();
        // Long data counts for this execute only, whatever its outcome.
        let long_data = std::mem::replace(&mut *self.long_data.borrow_mut(), vec![false; params.len()]);
        self.with_session(
            fail,
            |e| &e.error,
            |session| {
                session.link.begin_command();
                session.link.send(&com_stmt_execute(id, &wire, &long_data)).map_err(fail)?;
                read_results(session, QueryResponse::binary(session.server.capabilities))
            },
        )
    }

    fn close(&self) -> Result<(), Error> {
        self.free()
    }
}
