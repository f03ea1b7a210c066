//! The exported `statement` resource: a prepared statement id on its connection's session,
//! executed with binary parameters, with long data sent ahead, and closed on the server when
//! it is closed or dropped.

use crate::bindings::exports::leashed::mysql::connection::GuestStatement;
use crate::bindings::exports::leashed::mysql::types::{Column as ColumnInfo, Error, QueryError, ResultSet, Value};
use crate::client::{Session, SharedSession, read_results, with_session};
use crate::proto::query::QueryResponse;
use crate::proto::statement::{com_stmt_close, com_stmt_execute, com_stmt_send_long_data, wire_param};
use std::cell::{Cell, RefCell};

/// The guest side of an exported `statement` handle: a statement id on its connection's session.
pub struct MysqlStatement {
    pub(crate) session: SharedSession,
    pub(crate) id: u32,
    pub(crate) params: u16,
    pub(crate) columns: Vec<ColumnInfo>,
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

    /// COM_STMT_CLOSE, unless already closed; the server does not answer it.
    fn free(&self) -> Result<(), Error> {
        let result = self.with_session(
            |e| e,
            |e| e,
            |session| {
                session.link.begin_command();
                session.link.send(&com_stmt_close(self.id))
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
        self.params
    }

    fn columns(&self) -> Vec<ColumnInfo> {
        self.columns.clone()
    }

    fn send_long_data(&self, index: u16, piece: Vec<u8>) -> Result<(), Error> {
        if index >= self.params {
            return Err(Error::Invalid(format!(
                "parameter index {index} out of range: the statement has {} parameters",
                self.params
            )));
        }
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                session.link.begin_command();
                session.link.send(&com_stmt_send_long_data(self.id, index, &piece))
            },
        )?;
        self.long_data.borrow_mut()[usize::from(index)] = true;
        Ok(())
    }

    fn execute(&self, params: Vec<Value>) -> Result<Vec<ResultSet>, QueryError> {
        let fail = |error| QueryError { completed: Vec::new(), error };
        if params.len() != usize::from(self.params) {
            return Err(fail(Error::Invalid(format!(
                "the statement has {} parameters, but {} values were given",
                self.params,
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
                session.link.send(&com_stmt_execute(self.id, &wire, &long_data)).map_err(fail)?;
                read_results(session, QueryResponse::binary(session.server.capabilities))
            },
        )
    }

    fn close(&self) -> Result<(), Error> {
        self.free()
    }
}
