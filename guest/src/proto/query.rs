//! The responses to one COM_QUERY or COM_STMT_EXECUTE, as a state machine fed one packet at a
//! time. The two differ only in how rows are encoded (text or binary).
//!
//! A response is a sequence of results (more than one for multi-statements and procedures):
//! each is an OK, or column definitions then rows then a terminator, chained by
//! SERVER_MORE_RESULTS_EXISTS. An ERR ends the sequence; the results before it are kept.

use super::binary::decode_binary_row;
use super::value::{CellKind, decode_text_row, describe_column};
use super::{EOF_HEADER, ERR_HEADER, LOCAL_INFILE_HEADER, OK_HEADER, parse_err, protocol};
use crate::bindings::exports::leashed::mysql::types::{Column as ColumnInfo, Error, QueryError, ResultSet, Value};
use mysql_common::constants::{CapabilityFlags, MAX_PAYLOAD_LEN, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, CommonOkPacket, LocalInfilePacket, OkPacket, OkPacketDeserializer, OkPacketKind, OldEofPacket,
    ResultSetTerminator,
};

/// Where the reader stands within the current result.
enum State {
    /// Expecting the first packet of a result: OK, ERR, or a column count.
    Start,
    /// Expecting `remaining` more column definitions.
    Columns { remaining: u64 },
    /// Expecting the EOF after the column definitions (only without CLIENT_DEPRECATE_EOF).
    ColumnsEof,
    /// Expecting rows, or the terminator.
    Rows,
}

/// What the I/O shell should do after feeding a packet.
#[derive(Debug)]
pub enum QueryStep {
    /// Read the next packet and feed it.
    NeedPacket,
    /// Streaming only: the current result's columns are known (see [`QueryResponse::columns`]).
    Columns,
    /// Streaming only: one row of the current result.
    Row(Vec<Value>),
    /// The server asks for this LOCAL INFILE file: send its contents and an empty packet, then
    /// go on feeding packets.
    SendFile(String),
    /// The response is complete (when streaming, the result sets carry no rows).
    Done(Vec<ResultSet>),
}

/// How the rows of a response are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// COM_QUERY: every value as text.
    Text,
    /// COM_STMT_EXECUTE: a NULL bitmap and typed values.
    Binary,
}

/// The response to one query, being read.
pub struct QueryResponse {
    caps: CapabilityFlags,
    format: RowFormat,
    /// Hand rows out one by one instead of collecting them.
    streaming: bool,
    state: State,
    columns: Vec<Column>,
    /// How each of `columns` decodes in a text row.
    kinds: Vec<CellKind>,
    rows: Vec<Vec<Value>>,
    completed: Vec<ResultSet>,
    /// The server status of the last result's OK (or terminator).
    status: StatusFlags,
    /// Some result's OK (or terminator) said the session's state changed (session tracking).
    state_changed: bool,
}

impl QueryResponse {
    /// A reader for the response to a query sent on a session with these negotiated
    /// capabilities.
    pub fn new(caps: CapabilityFlags) -> Self {
        Self::with_format(caps, RowFormat::Text)
    }

    /// A reader for the response to an executed prepared statement.
    pub fn binary(caps: CapabilityFlags) -> Self {
        Self::with_format(caps, RowFormat::Binary)
    }

    /// A reader that hands out the columns and each row as they arrive (text protocol).
    pub fn streaming(caps: CapabilityFlags) -> Self {
        QueryResponse { streaming: true, ..Self::new(caps) }
    }

    /// How many results of the response are complete.
    pub fn completed_results(&self) -> usize {
        self.completed.len()
    }

    /// The current result's columns, once known.
    pub fn columns(&self) -> Vec<ColumnInfo> {
        self.columns.iter().map(describe_column).collect()
    }

    fn with_format(caps: CapabilityFlags, format: RowFormat) -> Self {
        QueryResponse {
            caps,
            format,
            streaming: false,
            state: State::Start,
            columns: Vec::new(),
            kinds: Vec::new(),
            rows: Vec::new(),
            completed: Vec::new(),
            status: StatusFlags::empty(),
            state_changed: false,
        }
    }

    /// Whether the server said, at the end of the last result, that a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
    }

    /// Whether any result so far reported a change to the session's state
    /// (SERVER_SESSION_STATE_CHANGED, sent when the session tracker is on).
    pub fn state_changed(&self) -> bool {
        self.state_changed
    }

    /// Feeds the next packet of the response.
    ///
    /// On a server error the failure carries every result completed before it; the connection is
    /// still usable. On a protocol error it is not.
    pub fn step(&mut self, packet: &[u8]) -> Result<QueryStep, QueryError> {
        self.step_inner(packet).map_err(|error| QueryError { completed: std::mem::take(&mut self.completed), error })
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    fn step_inner(&mut self, packet: &[u8]) -> Result<QueryStep, Error> {
        let first = *packet.first().ok_or_else(|| protocol("empty packet in a query response"))?;
        if first == ERR_HEADER {
            return Err(Error::Server(parse_err(packet, self.caps)?));
        }
        match self.state {
            State::Start => match first {
                OK_HEADER => {
                    let ok = parse_ok::<CommonOkPacket>(packet, self.caps)?;
                    Ok(self.finish_result(&ok))
                }
                LOCAL_INFILE_HEADER if self.caps.contains(CapabilityFlags::CLIENT_LOCAL_FILES) => {
                    let request: LocalInfilePacket<'_> = ParseBuf(packet)
                        .parse(())
                        .map_err(|e| protocol(format!("malformed LOCAL INFILE request: {e}")))?;
                    Ok(QueryStep::SendFile(request.file_name_str().into_owned()))
                }
                LOCAL_INFILE_HEADER => {
                    Err(protocol("the server asked for LOCAL INFILE, which this connection did not enable"))
                }
                _ => {
                    let count = ParseBuf(packet)
                        .checked_eat_lenenc_int()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| protocol("malformed column count"))?;
                    self.columns.reserve(count.min(4096) as usize);
                    self.state = State::Columns { remaining: count };
                    Ok(QueryStep::NeedPacket)
                }
            },
            State::Columns { remaining } => {
                let column: Column =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed column definition: {e}")))?;
                self.kinds.push(CellKind::of(&column));
                self.columns.push(column);
                self.state = match remaining - 1 {
                    0 if self.deprecate_eof() => State::Rows,
                    0 => State::ColumnsEof,
                    remaining => State::Columns { remaining },
                };
                Ok(self.columns_known())
            }
            State::ColumnsEof => {
                parse_ok::<OldEofPacket>(packet, self.caps)?;
                self.state = State::Rows;
                Ok(self.columns_known())
            }
            State::Rows if self.is_terminator(packet) => {
                let ok = if self.deprecate_eof() {
                    parse_ok::<ResultSetTerminator>(packet, self.caps)?
                } else {
                    parse_ok::<OldEofPacket>(packet, self.caps)?
                };
                Ok(self.finish_result(&ok))
            }
            State::Rows => {
                let row = match self.format {
                    RowFormat::Text => decode_text_row(packet, &self.kinds)?,
                    RowFormat::Binary => decode_binary_row(packet, &self.columns)?,
                };
                if self.streaming {
                    return Ok(QueryStep::Row(row));
                }
                self.rows.push(row);
                Ok(QueryStep::NeedPacket)
            }
        }
    }

    /// When streaming, says so once the last column definition is in.
    fn columns_known(&self) -> QueryStep {
        if self.streaming && matches!(self.state, State::Rows) { QueryStep::Columns } else { QueryStep::NeedPacket }
    }

    /// A 0xFE packet ends the rows unless it is a row whose first cell is a huge string.
    fn is_terminator(&self, packet: &[u8]) -> bool {
        packet[0] == EOF_HEADER && if self.deprecate_eof() { packet.len() < MAX_PAYLOAD_LEN } else { packet.len() < 9 }
    }

    fn finish_result(&mut self, ok: &OkPacket<'_>) -> QueryStep {
        let columns = std::mem::take(&mut self.columns);
        self.kinds.clear();
        self.completed.push(ResultSet {
            columns: columns.iter().map(describe_column).collect(),
            rows: std::mem::take(&mut self.rows),
            affected_rows: ok.affected_rows(),
            last_insert_id: ok.last_insert_id().unwrap_or(0),
            warnings: ok.warnings(),
            info: ok.info_str().map(|s| s.into_owned()).unwrap_or_default(),
        });
        self.state = State::Start;
        self.status = ok.status_flags();
        self.state_changed |= ok.status_flags().contains(StatusFlags::SERVER_SESSION_STATE_CHANGED);
        if ok.status_flags().contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
            QueryStep::NeedPacket
        } else {
            QueryStep::Done(std::mem::take(&mut self.completed))
        }
    }
}

/// Parses an OK-like packet (OK, EOF, or the rows' terminator) with the negotiated capabilities.
pub fn parse_ok<K: OkPacketKind>(packet: &[u8], caps: CapabilityFlags) -> Result<OkPacket<'_>, Error> {
    ParseBuf(packet)
        .parse::<OkPacketDeserializer<'_, K>>(caps)
        .map(|ok| ok.into_inner())
        .map_err(|e| protocol(format!("malformed OK/EOF packet: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> CapabilityFlags {
        CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_MULTI_RESULTS
    }

    /// Column definition for `SELECT 1` as MariaDB 10.11 sends it (LONGLONG, binary charset).
    const COLUMN_ONE: &[u8] = b"\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00";

    fn feed(reader: &mut QueryResponse, packets: &[&[u8]]) -> Result<QueryStep, QueryError> {
        let mut last = Ok(QueryStep::NeedPacket);
        for p in packets {
            last = reader.step(p);
        }
        last
    }

    /// A one-row SELECT under CLIENT_DEPRECATE_EOF: count, column, row, 0xFE OK terminator.
    #[test]
    fn single_select_yields_one_result_set() {
        let mut reader = QueryResponse::new(caps());
        let step = feed(&mut reader, &[b"\x01", COLUMN_ONE, b"\x011", b"\xfe\x00\x00\x02\x00\x00\x00"]).unwrap();
        let QueryStep::Done(sets) = step else { panic!("not done: {step:?}") };
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].columns[0].name, "1");
        assert_eq!(sets[0].columns[0].type_name, "BIGINT");
        assert!(matches!(sets[0].rows[..], [ref row] if matches!(row[..], [Value::Int(1)])));
    }

    /// With SERVER_MORE_RESULTS_EXISTS the reader waits for the next result; an ERR then keeps
    /// the completed set and reports the server's error.
    #[test]
    fn error_after_first_result_keeps_the_first_set() {
        let mut reader = QueryResponse::new(caps());
        let more = b"\xfe\x00\x00\x0a\x00\x00\x00"; // status: AUTOCOMMIT | MORE_RESULTS_EXISTS
        let step = feed(&mut reader, &[b"\x01", COLUMN_ONE, b"\x011", more]).unwrap();
        assert!(matches!(step, QueryStep::NeedPacket));
        let err = reader.step(b"\xff\x28\x04#42000You have an error").unwrap_err();
        assert_eq!(err.completed.len(), 1);
        match err.error {
            Error::Server(e) => {
                assert_eq!((e.code, e.sql_state.as_str(), e.message.as_str()), (1064, "42000", "You have an error"))
            }
            other => panic!("expected a server error, got {other:?}"),
        }
    }

    /// An OK in place of a result set (an UPDATE) carries its counters and info string.
    #[test]
    fn ok_result_carries_counters() {
        let mut reader = QueryResponse::new(caps());
        let ok = b"\x00\x03\x07\x02\x00\x01\x00\x05hello"; // info is length-encoded in practice
        let QueryStep::Done(sets) = reader.step(ok).unwrap() else { panic!("not done") };
        assert_eq!((sets[0].affected_rows, sets[0].last_insert_id, sets[0].warnings), (3, 7, 1));
        assert_eq!(sets[0].info, "hello");
        assert!(sets[0].columns.is_empty());
    }

    /// With session tracking negotiated, an OK that changed the session says so (and carries
    /// what changed); the mark stays for the whole response, even when a later result is quiet.
    #[test]
    fn a_state_change_anywhere_in_the_response_is_kept() {
        let mut reader = QueryResponse::new(caps() | CapabilityFlags::CLIENT_SESSION_TRACK);
        // status AUTOCOMMIT | MORE_RESULTS | SESSION_STATE_CHANGED, empty info, then the state
        // info: one SESSION_TRACK_STATE_CHANGE entry saying "1".
        let changed = b"\x00\x00\x00\x0a\x40\x00\x00\x00\x04\x02\x02\x011";
        assert!(matches!(reader.step(changed).unwrap(), QueryStep::NeedPacket));
        assert!(reader.state_changed());
        let quiet = b"\x00\x00\x00\x02\x00\x00\x00\x00";
        assert!(matches!(reader.step(quiet).unwrap(), QueryStep::Done(_)));
        assert!(reader.state_changed());

        let mut untouched = QueryResponse::new(caps() | CapabilityFlags::CLIENT_SESSION_TRACK);
        assert!(matches!(untouched.step(quiet).unwrap(), QueryStep::Done(_)));
        assert!(!untouched.state_changed());
    }

    /// A LOCAL INFILE request is a protocol error unless the capability was negotiated; then
    /// it asks the shell for the file, and the server's OK after the file ends the response.
    #[test]
    fn local_infile_request_needs_the_capability() {
        let mut reader = QueryResponse::new(caps());
        let err = reader.step(b"\xfb/etc/passwd").unwrap_err();
        assert!(matches!(err.error, Error::Protocol(_)));
        let mut reader = QueryResponse::new(caps() | CapabilityFlags::CLIENT_LOCAL_FILES);
        assert!(matches!(reader.step(b"\xfbdata.csv").unwrap(), QueryStep::SendFile(ref name) if name == "data.csv"));
        let QueryStep::Done(sets) = reader.step(b"\x00\x03\x00\x02\x00\x00\x00").unwrap() else { panic!() };
        assert_eq!(sets[0].affected_rows, 3);
    }
}
