//! The exported `row-stream` resource: the rows of one statement, read from the wire only as
//! the caller asks for them, so a result of any size needs no more guest memory than one batch.
//!
//! The stream owns its connection's wire until the result's end: the session is marked
//! `streaming`, which makes every other call on the connection refuse with `invalid`. Finishing
//! or closing the stream (dropping it closes it) reads what is left and frees the connection.

use crate::bindings::exports::leashed::mysql::connection::GuestRowStream;
use crate::bindings::exports::leashed::mysql::types::{Column as ColumnInfo, Error, ResultSet, Value};
use crate::client::{Session, SharedSession, with_session_even_streaming};
use crate::proto::query::{QueryResponse, QueryStep};
use std::cell::{Cell, RefCell};

/// The guest side of an exported `row-stream` handle.
pub struct MysqlRowStream {
    session: SharedSession,
    columns: Vec<ColumnInfo>,
    /// `None` once the whole response has been read.
    response: RefCell<Option<QueryResponse>>,
    /// Whether the rows arriving belong to the first result (the one streamed); rows of any
    /// later result are dropped.
    first_result: Cell<bool>,
    /// How many later results were dropped, until reported.
    dropped: Cell<usize>,
    /// The first result's counters, without rows, once the response has been read.
    outcome: RefCell<Option<ResultSet>>,
}

impl MysqlRowStream {
    /// Sends `sql` and reads up to its columns; the session stays marked as streaming until the
    /// result is read.
    pub(crate) fn start(shared: SharedSession, session: &mut Session, sql: &str) -> Result<MysqlRowStream, Error> {
        let response = QueryResponse::streaming(session.server.capabilities);
        let mut stream = MysqlRowStream {
            session: shared,
            columns: Vec::new(),
            response: RefCell::new(None),
            first_result: Cell::new(true),
            dropped: Cell::new(0),
            outcome: RefCell::new(None),
        };
        let mut response = Some(response);
        let mut refused_file = None;
        session.link.begin_command();
        session.link.send(&crate::proto::command::com_query(sql))?;
        loop {
            let packet = session.link.recv()?;
            let reader = response.as_mut().expect("set until done");
            match reader.step(&packet).map_err(|failure| failure.error)? {
                // The first statement had no rows; this is a later one's, to be dropped.
                QueryStep::Columns if reader.completed_results() > 0 => {
                    stream.first_result.set(false);
                    break;
                }
                QueryStep::Columns => {
                    stream.columns = reader.columns();
                    break;
                }
                // A statement without rows (or with its whole response already read).
                QueryStep::Done(sets) => {
                    stream.dropped.set(sets.len().saturating_sub(1));
                    stream.keep_outcome(sets);
                    response = None;
                    break;
                }
                // Reported once the server has answered, so nothing is left on the wire.
                QueryStep::SendFile(name) => refused_file = session.send_local_file(&name)?,
                QueryStep::NeedPacket | QueryStep::Row(_) => {}
            }
        }
        session.streaming = response.is_some();
        *stream.response.borrow_mut() = response;
        if let Some(refused) = refused_file {
            // Leave nothing on the wire: read and drop whatever the later statements sent.
            stream.read(session, None, &mut Vec::new())?;
            return Err(refused);
        }
        Ok(stream)
    }

    /// Reads up to `max` rows into `rows` (all that are left, dropping them, if `max` is `None`).
    fn read(&self, session: &mut Session, max: Option<usize>, rows: &mut Vec<Vec<Value>>) -> Result<(), Error> {
        let mut slot = self.response.borrow_mut();
        let Some(reader) = slot.as_mut() else { return Ok(()) };
        let mut packet = Vec::new();
        while max.is_none_or(|max| rows.len() < max) {
            let step = session
                .link
                .recv_into(&mut packet)
                .and_then(|()| reader.step(&packet).map_err(|failure| failure.error));
            let step = match step {
                Ok(step) => step,
                Err(error) => {
                    // A server error ends the response; anything else closes the connection.
                    *slot = None;
                    session.streaming = false;
                    return Err(error);
                }
            };
            match step {
                QueryStep::Row(row) if max.is_some() && self.first_result.get() => rows.push(row),
                QueryStep::Columns => self.first_result.set(false),
                QueryStep::Done(sets) => {
                    *slot = None;
                    session.streaming = false;
                    self.dropped.set(sets.len().saturating_sub(1));
                    self.keep_outcome(sets);
                    return Ok(());
                }
                // Rows being drained or dropped; a later statement's LOCAL INFILE.
                QueryStep::SendFile(name) => {
                    session.send_local_file(&name)?;
                }
                QueryStep::Row(_) | QueryStep::NeedPacket => {}
            }
        }
        Ok(())
    }

    fn read_on_session(&self, max: Option<usize>, rows: &mut Vec<Vec<Value>>) -> Result<(), Error> {
        if self.response.borrow().is_none() {
            return Ok(());
        }
        with_session_even_streaming(&self.session, |e| e, |e| e, |session| self.read(session, max, rows))
    }

    /// Keeps the first result's counters (its rows, if any, were streamed or dropped).
    fn keep_outcome(&self, sets: Vec<ResultSet>) {
        if let Some(mut first) = sets.into_iter().next() {
            first.rows = Vec::new();
            *self.outcome.borrow_mut() = Some(first);
        }
    }

    /// Reports, once, that later results were dropped.
    fn report_dropped(&self) -> Result<(), Error> {
        match self.dropped.take() {
            0 => Ok(()),
            dropped => Err(Error::Invalid(format!(
                "query-stream takes one statement: {dropped} more result set(s) were read and dropped"
            ))),
        }
    }
}

impl Drop for MysqlRowStream {
    fn drop(&mut self) {
        let _ = self.read_on_session(None, &mut Vec::new());
    }
}

impl GuestRowStream for MysqlRowStream {
    fn columns(&self) -> Vec<ColumnInfo> {
        self.columns.clone()
    }

    fn next_batch(&self, max: u32) -> Result<Vec<Vec<Value>>, Error> {
        if max == 0 {
            return Err(Error::Invalid("next-batch needs max of at least 1".into()));
        }
        let mut rows = Vec::with_capacity(max.min(4096) as usize);
        self.read_on_session(Some(max as usize), &mut rows)?;
        // Rows first; the end (and any complaint) on the call that finds none.
        if rows.is_empty() {
            self.report_dropped()?;
        }
        Ok(rows)
    }

    fn close(&self) -> Result<(), Error> {
        self.read_on_session(None, &mut Vec::new())?;
        self.report_dropped()
    }

    fn outcome(&self) -> Option<ResultSet> {
        self.outcome.borrow().clone()
    }
}
