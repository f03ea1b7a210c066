//! Binary-protocol values (the rows of an executed prepared statement): each cell decoded by its
//! column definition into the same `value` the text protocol gives for it.
//!
//! mysql_common decodes the wire format; this module maps its values onto the API's. Strings,
//! DECIMAL, BIT, JSON and GEOMETRY arrive as bytes and go through the text protocol's decoder, so
//! both protocols agree by construction; integers take their signedness from the column's
//! UNSIGNED flag, and temporal values their precision from the column's decimals.

use super::protocol;
use super::value::decode_text;
use crate::bindings::exports::leashed::mysql::types::{Date, Datetime, Error, Time, Value};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{Column, NullBitmap};
use mysql_common::value::{BinValue, ServerSide, Value as WireValue, ValueDeserializer};
use std::borrow::Cow;

/// Decodes one binary row: a 0x00 header, a NULL bitmap, then each non-NULL value.
pub fn decode_binary_row(packet: &[u8], columns: &[Column]) -> Result<Vec<Value>, Error> {
    let mut buf = ParseBuf(packet);
    if buf.checked_eat_u8() != Some(0x00) {
        return Err(protocol("binary row without its 0x00 header"));
    }
    let nulls: NullBitmap<ServerSide, Cow<'_, [u8]>> =
        buf.parse(columns.len()).map_err(|e| protocol(format!("truncated NULL bitmap: {e}")))?;
    let mut row = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        if nulls.is_null(i) {
            row.push(Value::Null);
            continue;
        }
        // mysql_common panics on the types only replication uses; a server never sends them in
        // a result, so one that does is speaking nonsense.
        if matches!(
            column.column_type(),
            ColumnType::MYSQL_TYPE_TIMESTAMP2
                | ColumnType::MYSQL_TYPE_DATETIME2
                | ColumnType::MYSQL_TYPE_TIME2
                | ColumnType::MYSQL_TYPE_TYPED_ARRAY
                | ColumnType::MYSQL_TYPE_UNKNOWN
        ) {
            return Err(protocol(format!("column type {:?} in a binary row", column.column_type())));
        }
        let cell: ValueDeserializer<BinValue> = buf
            .parse((column.column_type(), column.flags()))
            .map_err(|e| protocol(format!("truncated binary row: {e}")))?;
        row.push(decode_binary(column, cell.0));
    }
    if !buf.is_empty() {
        return Err(protocol("binary row longer than its columns"));
    }
    Ok(row)
}

/// Maps one wire value onto the API's value for its column.
pub fn decode_binary(column: &Column, value: WireValue) -> Value {
    let unsigned =
        column.flags().contains(ColumnFlags::UNSIGNED_FLAG) || column.column_type() == ColumnType::MYSQL_TYPE_YEAR;
    match value {
        WireValue::NULL => Value::Null,
        WireValue::Int(v) if unsigned => Value::Uint(v as u64),
        WireValue::Int(v) => Value::Int(v),
        WireValue::UInt(v) => Value::Uint(v),
        WireValue::Float(v) => Value::Float(v),
        WireValue::Double(v) => Value::Double(v),
        WireValue::Bytes(bytes) => decode_text(column, &bytes),
        WireValue::Date(year, month, day, hour, minute, second, microsecond) => {
            let date = Date { year, month, day };
            match column.column_type() {
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => Value::Date(date),
                _ => Value::Datetime(Datetime {
                    date,
                    hour,
                    minute,
                    second,
                    microsecond,
                    precision: precision(column, microsecond),
                }),
            }
        }
        WireValue::Time(negative, days, hours, minutes, seconds, microseconds) => Value::Time(Time {
            negative,
            hours: days * 24 + u32::from(hours),
            minutes,
            seconds,
            microseconds,
            precision: precision(column, microseconds),
        }),
    }
}

/// The fractional digits the text protocol would write: the column's scale, or for a column
/// without a fixed scale (an expression), six if there is a fraction.
fn precision(column: &Column, fraction: u32) -> u8 {
    match column.decimals() {
        scale @ 0..=6 => scale,
        _ if fraction != 0 => 6,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnType, flags: ColumnFlags, charset: u16, decimals: u8) -> Column {
        Column::new(kind).with_flags(flags).with_character_set(charset).with_decimals(decimals)
    }

    /// A row of TINYINT UNSIGNED 200, NULL, DATETIME(3) and TIME(0) -26:03:04, as MariaDB sends
    /// it.
    #[test]
    fn binary_row_maps_signedness_nulls_and_temporal_precision() {
        let columns = [
            column(ColumnType::MYSQL_TYPE_TINY, ColumnFlags::UNSIGNED_FLAG, 63, 0),
            column(ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty(), 45, 0),
            column(ColumnType::MYSQL_TYPE_DATETIME, ColumnFlags::empty(), 63, 3),
            column(ColumnType::MYSQL_TYPE_TIME, ColumnFlags::empty(), 63, 0),
        ];
        let mut packet = vec![0x00, 0b0000_1000]; // header; NULL bitmap (offset 2): column 1
        packet.push(200);
        packet.extend_from_slice(&[11, 0xe8, 0x07, 2, 29, 23, 59, 58, 0x40, 0xe2, 0x01, 0x00]); // 2024-02-29 23:59:58.123456
        packet.extend_from_slice(&[8, 1, 1, 0, 0, 0, 2, 3, 4]); // -1 day 02:03:04
        let row = decode_binary_row(&packet, &columns).unwrap();
        assert!(matches!(row[0], Value::Uint(200)));
        assert!(matches!(row[1], Value::Null));
        let Value::Datetime(dt) = &row[2] else { panic!("{:?}", row[2]) };
        assert_eq!((dt.date.year, dt.date.day, dt.microsecond, dt.precision), (2024, 29, 123_456, 3));
        let Value::Time(t) = &row[3] else { panic!("{:?}", row[3]) };
        assert_eq!((t.negative, t.hours, t.minutes, t.seconds, t.precision), (true, 26, 3, 4, 0));
    }

    /// A replication-only type in a result is a protocol error, not a panic.
    #[test]
    fn replication_types_are_refused() {
        let columns = [column(ColumnType::MYSQL_TYPE_DATETIME2, ColumnFlags::empty(), 63, 0)];
        assert!(matches!(decode_binary_row(&[0x00, 0x00, 0x00], &columns), Err(Error::Protocol(_))));
    }
}
