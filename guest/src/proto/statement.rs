//! Prepared statements: the response to COM_STMT_PREPARE as a state machine, and the
//! COM_STMT_EXECUTE request with typed parameters.
//!
//! Executing returns the same kind of response as COM_QUERY, with binary rows; that is read by
//! [`super::query::QueryResponse`], and the binary values are decoded in [`super::binary`].

use super::{EOF_HEADER, ERR_HEADER, parse_err, protocol};
use crate::bindings::exports::leashed::mysql::types::{Error, Value};
use mysql_common::constants::{CapabilityFlags, ColumnType, Command};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{Column, StmtPacket};
use mysql_common::proto::MySerialize;
use mysql_common::value::Value as WireValue;

/// A statement the server prepared.
#[derive(Debug)]
pub struct Prepared {
    pub id: u32,
    pub params: u16,
    pub columns: Vec<Column>,
}

/// What the I/O shell should do after feeding a packet.
#[derive(Debug)]
pub enum PrepareStep {
    NeedPacket,
    Done(Prepared),
}

enum State {
    /// Expecting the statement packet (or ERR).
    Start,
    /// Expecting parameter definitions, then column definitions, each list followed by an EOF
    /// unless CLIENT_DEPRECATE_EOF was negotiated.
    Params {
        remaining: u16,
    },
    ParamsEof,
    Columns {
        remaining: u16,
    },
    ColumnsEof,
}

/// The response to one COM_STMT_PREPARE, being read.
pub struct PrepareResponse {
    caps: CapabilityFlags,
    state: State,
    prepared: Option<Prepared>,
    column_count: u16,
}

impl PrepareResponse {
    pub fn new(caps: CapabilityFlags) -> Self {
        PrepareResponse { caps, state: State::Start, prepared: None, column_count: 0 }
    }

    /// Feeds the next packet. A server error (bad SQL) leaves the connection usable.
    pub fn step(&mut self, packet: &[u8]) -> Result<PrepareStep, Error> {
        let first = *packet.first().ok_or_else(|| protocol("empty packet in a prepare response"))?;
        if first == ERR_HEADER {
            return Err(Error::Server(parse_err(packet, self.caps)?));
        }
        let eofs = !self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
        match self.state {
            State::Start => {
                let stmt: StmtPacket =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed prepare response: {e}")))?;
                self.prepared =
                    Some(Prepared { id: stmt.statement_id(), params: stmt.num_params(), columns: Vec::new() });
                self.column_count = stmt.num_columns();
                self.state = State::Params { remaining: stmt.num_params() };
            }
            // Parameter definitions carry nothing useful (MariaDB describes each as `?` of type
            // NULL); only their count matters.
            State::Params { remaining } => {
                ParseBuf(packet).parse::<Column>(()).map_err(|e| protocol(format!("malformed parameter: {e}")))?;
                self.state = State::Params { remaining: remaining - 1 };
            }
            State::ParamsEof | State::ColumnsEof if first == EOF_HEADER => {
                self.state = match self.state {
                    State::ParamsEof => State::Columns { remaining: self.column_count },
                    _ => return Ok(self.done()),
                };
            }
            State::ParamsEof | State::ColumnsEof => return Err(protocol("expected EOF after definitions")),
            State::Columns { remaining } => {
                let column: Column =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed column definition: {e}")))?;
                self.prepared.as_mut().expect("set at start").columns.push(column);
                self.state = State::Columns { remaining: remaining - 1 };
            }
        }
        // Move past lists that are complete (or empty).
        loop {
            self.state = match self.state {
                State::Params { remaining: 0 } if eofs && self.prepared_params() > 0 => State::ParamsEof,
                State::Params { remaining: 0 } => State::Columns { remaining: self.column_count },
                State::Columns { remaining: 0 } if eofs && self.column_count > 0 => State::ColumnsEof,
                State::Columns { remaining: 0 } => return Ok(self.done()),
                _ => return Ok(PrepareStep::NeedPacket),
            };
        }
    }

    fn prepared_params(&self) -> u16 {
        self.prepared.as_ref().map_or(0, |p| p.params)
    }

    fn done(&mut self) -> PrepareStep {
        PrepareStep::Done(self.prepared.take().expect("set at start"))
    }
}

/// COM_STMT_PREPARE.
pub fn com_stmt_prepare(sql: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + sql.len());
    payload.push(Command::COM_STMT_PREPARE as u8);
    payload.extend_from_slice(sql.as_bytes());
    payload
}

/// COM_STMT_CLOSE (the server does not answer).
pub fn com_stmt_close(id: u32) -> Vec<u8> {
    let mut payload = Vec::new();
    mysql_common::packets::ComStmtClose::new(id).serialize(&mut payload);
    payload
}

/// COM_STMT_SEND_LONG_DATA: one piece of parameter `index` (the server does not answer).
pub fn com_stmt_send_long_data(id: u32, index: u16, piece: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(7 + piece.len());
    mysql_common::packets::ComStmtSendLongData::new(id, index, piece).serialize(&mut payload);
    payload
}

/// The wire value and type of one parameter.
pub fn wire_param(value: &Value) -> WireValue {
    match value {
        Value::Null => WireValue::NULL,
        Value::Int(v) => WireValue::Int(*v),
        Value::Uint(v) => WireValue::UInt(*v),
        Value::Float(v) => WireValue::Float(*v),
        Value::Double(v) => WireValue::Double(*v),
        // The server converts DECIMAL text to the column's type without loss.
        Value::Decimal(s) | Value::Text(s) => WireValue::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => WireValue::Bytes(b.clone()),
        Value::Date(d) => WireValue::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::Datetime(t) => {
            WireValue::Date(t.date.year, t.date.month, t.date.day, t.hour, t.minute, t.second, t.microsecond)
        }
        Value::Time(t) => {
            WireValue::Time(t.negative, t.hours / 24, (t.hours % 24) as u8, t.minutes, t.seconds, t.microseconds)
        }
    }
}

/// COM_STMT_EXECUTE with one value per placeholder. Parameters whose value was streamed with
/// COM_STMT_SEND_LONG_DATA (`long_data[i]`) are declared but not sent again.
pub fn com_stmt_execute(id: u32, params: &[WireValue], long_data: &[bool]) -> Vec<u8> {
    let mut payload = vec![Command::COM_STMT_EXECUTE as u8];
    payload.extend_from_slice(&id.to_le_bytes());
    payload.push(0); // CURSOR_TYPE_NO_CURSOR
    payload.extend_from_slice(&1u32.to_le_bytes()); // iteration count
    if params.is_empty() {
        return payload;
    }
    let streamed = |i: usize| long_data.get(i).copied().unwrap_or(false);
    let mut nulls = vec![0u8; params.len().div_ceil(8)];
    for (i, param) in params.iter().enumerate() {
        if matches!(param, WireValue::NULL) && !streamed(i) {
            nulls[i / 8] |= 1 << (i % 8);
        }
    }
    payload.extend_from_slice(&nulls);
    payload.push(1); // new parameters bound: types follow
    for (i, param) in params.iter().enumerate() {
        let (kind, unsigned) = match param {
            _ if streamed(i) => (ColumnType::MYSQL_TYPE_BLOB, false),
            WireValue::NULL => (ColumnType::MYSQL_TYPE_NULL, false),
            WireValue::Bytes(_) => (ColumnType::MYSQL_TYPE_VAR_STRING, false),
            WireValue::Int(_) => (ColumnType::MYSQL_TYPE_LONGLONG, false),
            WireValue::UInt(_) => (ColumnType::MYSQL_TYPE_LONGLONG, true),
            WireValue::Float(_) => (ColumnType::MYSQL_TYPE_FLOAT, false),
            WireValue::Double(_) => (ColumnType::MYSQL_TYPE_DOUBLE, false),
            WireValue::Date(..) => (ColumnType::MYSQL_TYPE_DATETIME, false),
            WireValue::Time(..) => (ColumnType::MYSQL_TYPE_TIME, false),
        };
        payload.push(kind as u8);
        payload.push(if unsigned { 0x80 } else { 0 });
    }
    for (i, param) in params.iter().enumerate() {
        if !streamed(i) && !matches!(param, WireValue::NULL) {
            param.serialize(&mut payload);
        }
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> CapabilityFlags {
        CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_DEPRECATE_EOF
    }

    /// `SELECT ?` as MariaDB 10.11 answers: statement 1, 1 column, 1 parameter, no EOFs.
    #[test]
    fn prepare_response_reads_params_then_columns() {
        let stmt = b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00";
        let param = b"\x03def\x00\x00\x00\x01?\x00\x0c\x3f\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00";
        let column = b"\x03def\x00\x00\x00\x01?\x00\x0c\x3f\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00";
        let mut response = PrepareResponse::new(caps());
        assert!(matches!(response.step(stmt).unwrap(), PrepareStep::NeedPacket));
        assert!(matches!(response.step(param).unwrap(), PrepareStep::NeedPacket));
        let PrepareStep::Done(prepared) = response.step(column).unwrap() else { panic!("not done") };
        assert_eq!((prepared.id, prepared.params, prepared.columns.len()), (1, 1, 1));
    }

    /// A statement without parameters or columns (`DO 1`) is done after its first packet; a
    /// syntax error is the server's error.
    #[test]
    fn prepare_without_definitions_and_errors() {
        let mut response = PrepareResponse::new(caps());
        let PrepareStep::Done(prepared) = response.step(b"\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00").unwrap()
        else {
            panic!("not done")
        };
        assert_eq!((prepared.id, prepared.params), (7, 0));
        let mut response = PrepareResponse::new(caps());
        assert!(matches!(response.step(b"\xff\x28\x04#42000syntax"), Err(Error::Server(_))));
    }

    /// The execute request: NULL in the bitmap, each type with its unsigned flag, values in
    /// order, and a streamed parameter declared as BLOB but not sent.
    #[test]
    fn execute_request_layout() {
        let params =
            [WireValue::NULL, WireValue::UInt(5), WireValue::Bytes(b"ab".to_vec()), WireValue::Bytes(b"x".to_vec())];
        let payload = com_stmt_execute(9, &params, &[false, false, false, true]);
        let expected: &[u8] = &[
            0x17,
            9,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,           // header, id, flags, iterations
            0b0000_0001, // NULL bitmap: parameter 0
            1,           // types follow
            0x06,
            0,
            0x08,
            0x80,
            0xfd,
            0,
            0xfc,
            0, // NULL, LONGLONG UNSIGNED, VAR_STRING, BLOB (streamed)
            5,
            0,
            0,
            0,
            0,
            0,
            0,
            0, // 5
            2,
            b'a',
            b'b', // "ab"; the streamed one is not sent
        ];
        assert_eq!(payload, expected);
    }
}
