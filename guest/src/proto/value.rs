//! Text-protocol values: each cell's bytes, typed by its column definition.
//!
//! The text protocol sends every value as the server's own text. Numbers are parsed; DECIMAL
//! stays text so no digit is lost; temporal values are parsed into fields and keep how many
//! fractional digits the server wrote, so they can be written back exactly. A cell whose text
//! does not parse for its column type is returned as `text`, unchanged, rather than lost.

use super::protocol;
use crate::bindings::exports::leashed::mysql::types::{Column as ColumnInfo, Date, Datetime, Error, Time, Value};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;

/// The character set id that marks binary data.
pub const BINARY_CHARSET: u16 = 63;

/// How a column's cells decode, worked out once per result from its definition (type, flags,
/// character set) rather than once per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// A NULL-typed column: every cell is NULL.
    Null,
    /// TINYINT to BIGINT.
    Signed,
    /// TINYINT to BIGINT, UNSIGNED.
    Unsigned,
    Year,
    Float,
    Double,
    Decimal,
    Date,
    Time,
    Datetime,
    /// BIT, GEOMETRY, or any other column with the binary character set.
    Bytes,
    /// Everything else: text if it is UTF-8, bytes if not.
    Text,
}

impl CellKind {
    /// The kind of `column`'s cells.
    pub fn of(column: &Column) -> CellKind {
        use ColumnType::*;
        match column.column_type() {
            MYSQL_TYPE_NULL => CellKind::Null,
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG => {
                match column.flags().contains(ColumnFlags::UNSIGNED_FLAG) {
                    true => CellKind::Unsigned,
                    false => CellKind::Signed,
                }
            }
            MYSQL_TYPE_YEAR => CellKind::Year,
            MYSQL_TYPE_FLOAT => CellKind::Float,
            MYSQL_TYPE_DOUBLE => CellKind::Double,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => CellKind::Decimal,
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => CellKind::Date,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => CellKind::Time,
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
                CellKind::Datetime
            }
            MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => CellKind::Bytes,
            _ if column.character_set() == BINARY_CHARSET => CellKind::Bytes,
            _ => CellKind::Text,
        }
    }
}

/// Decodes one text-protocol row: a length-encoded string or 0xFB (NULL) per column, each
/// decoded as its column's kind (`kinds` has one per column).
pub fn decode_text_row(packet: &[u8], kinds: &[CellKind]) -> Result<Vec<Value>, Error> {
    let mut buf = ParseBuf(packet);
    let mut row = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        if buf.0.first() == Some(&super::LOCAL_INFILE_HEADER) {
            buf.checked_eat_u8();
            row.push(Value::Null);
            continue;
        }
        let cell = buf.checked_eat_lenenc_str().ok_or_else(|| protocol("truncated text row"))?;
        row.push(decode_cell(kind, cell));
    }
    if !buf.is_empty() {
        return Err(protocol("text row longer than its columns"));
    }
    Ok(row)
}

/// Decodes one non-NULL cell by its column's type.
pub fn decode_text(column: &Column, cell: &[u8]) -> Value {
    decode_cell(CellKind::of(column), cell)
}

/// Decodes one non-NULL cell of a column of this kind. Text that does not parse for the kind
/// stays text (bytes if it is not UTF-8).
pub fn decode_cell(kind: CellKind, cell: &[u8]) -> Value {
    let text = match kind {
        CellKind::Null => return Value::Null,
        CellKind::Bytes => return Value::Bytes(cell.to_vec()),
        CellKind::Signed | CellKind::Unsigned => {
            if let Some(value) = integer_fast_path(kind == CellKind::Unsigned, cell) {
                return value;
            }
            std::str::from_utf8(cell)
        }
        _ => std::str::from_utf8(cell),
    };
    let Ok(text) = text else {
        return Value::Bytes(cell.to_vec());
    };
    let parsed = match kind {
        CellKind::Signed => text.parse().ok().map(Value::Int),
        CellKind::Unsigned | CellKind::Year => text.parse().ok().map(Value::Uint),
        CellKind::Float => text.parse().ok().map(Value::Float),
        CellKind::Double => text.parse().ok().map(Value::Double),
        CellKind::Decimal => Some(Value::Decimal(text.into())),
        CellKind::Date => parse_date(text).map(Value::Date),
        CellKind::Time => parse_time(text).map(Value::Time),
        CellKind::Datetime => parse_datetime(text).map(Value::Datetime),
        CellKind::Null | CellKind::Bytes | CellKind::Text => None,
    };
    parsed.unwrap_or_else(|| Value::Text(text.to_owned()))
}

/// An integer column's cell read straight from its ASCII digits (the common case, and most of a
/// large result's cells), without checking it is UTF-8 first. Anything else, or a number out of
/// range, goes the general way, which gives the same answer for what this accepts. Only for
/// integer columns (`CellKind::Signed` and `Unsigned`).
fn integer_fast_path(unsigned: bool, cell: &[u8]) -> Option<Value> {
    let (negative, digits) = match cell.split_first() {
        Some((b'-', rest)) if !unsigned => (true, rest),
        _ => (false, cell),
    };
    // 19 digits never overflow a u64, so no checked arithmetic (a u64 `checked_mul` is a call
    // to a 128-bit multiply in wasm); the rare 20-digit value goes the general way.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        magnitude = magnitude * 10 + u64::from(digit);
    }
    match (unsigned, negative) {
        (true, _) => Some(Value::Uint(magnitude)),
        (false, false) => i64::try_from(magnitude).ok().map(Value::Int),
        (false, true) => 0i64.checked_sub_unsigned(magnitude).map(Value::Int),
    }
}

/// Describes a column for the API: its name, SQL type name and raw protocol fields.
pub fn describe_column(column: &Column) -> ColumnInfo {
    ColumnInfo {
        name: column.name_str().into_owned(),
        type_name: sql_type_name(column),
        type_code: column.column_type() as u8,
        flags: column.flags().bits(),
        charset: column.character_set(),
        decimals: column.decimals(),
        length: column.column_length(),
    }
}

/// The SQL name of a column's type, as `SHOW COLUMNS` would spell it (without lengths).
pub fn sql_type_name(column: &Column) -> String {
    use ColumnType::*;
    let flags = column.flags();
    let binary = column.character_set() == BINARY_CHARSET;
    let integer = |name: &str| {
        if flags.contains(ColumnFlags::UNSIGNED_FLAG) { format!("{name} UNSIGNED") } else { name.to_string() }
    };
    let name = match column.column_type() {
        MYSQL_TYPE_TINY => return integer("TINYINT"),
        MYSQL_TYPE_SHORT => return integer("SMALLINT"),
        MYSQL_TYPE_INT24 => return integer("MEDIUMINT"),
        MYSQL_TYPE_LONG => return integer("INT"),
        MYSQL_TYPE_LONGLONG => return integer("BIGINT"),
        MYSQL_TYPE_FLOAT => "FLOAT",
        MYSQL_TYPE_DOUBLE => "DOUBLE",
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => "DECIMAL",
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "DATE",
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => "TIME",
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => "DATETIME",
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => "TIMESTAMP",
        MYSQL_TYPE_YEAR => "YEAR",
        MYSQL_TYPE_BIT => "BIT",
        MYSQL_TYPE_NULL => "NULL",
        MYSQL_TYPE_JSON => "JSON",
        MYSQL_TYPE_GEOMETRY => "GEOMETRY",
        MYSQL_TYPE_VECTOR => "VECTOR",
        _ if flags.contains(ColumnFlags::ENUM_FLAG) => "ENUM",
        _ if flags.contains(ColumnFlags::SET_FLAG) => "SET",
        MYSQL_TYPE_ENUM => "ENUM",
        MYSQL_TYPE_SET => "SET",
        MYSQL_TYPE_STRING if binary => "BINARY",
        MYSQL_TYPE_STRING => "CHAR",
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR if binary => "VARBINARY",
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => "VARCHAR",
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB if binary => "BLOB",
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => "TEXT",
        other => return format!("UNKNOWN({})", other as u8),
    };
    name.to_string()
}

/// `YYYY-MM-DD`
fn parse_date(text: &str) -> Option<Date> {
    let (y, rest) = text.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    Some(Date { year: digits(y, 4)? as u16, month: digits(m, 2)? as u8, day: digits(d, 2)? as u8 })
}

/// `[-]H..H:MM:SS[.ffffff]`, hours unbounded in width (MySQL allows up to 838).
fn parse_time(text: &str) -> Option<Time> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (clock, (microseconds, precision)) = split_fraction(body)?;
    let mut parts = clock.split(':');
    let hours = parts.next().filter(|h| !h.is_empty() && h.len() <= 4)?;
    let hours = digits(hours, hours.len())?;
    let minutes = digits(parts.next()?, 2)? as u8;
    let seconds = digits(parts.next()?, 2)? as u8;
    if parts.next().is_some() {
        return None;
    }
    Some(Time { negative, hours, minutes, seconds, microseconds, precision })
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`
fn parse_datetime(text: &str) -> Option<Datetime> {
    let (date, clock) = text.split_once(' ')?;
    let (clock, (microsecond, precision)) = split_fraction(clock)?;
    let mut parts = clock.split(':');
    let hour = digits(parts.next()?, 2)? as u8;
    let minute = digits(parts.next()?, 2)? as u8;
    let second = digits(parts.next()?, 2)? as u8;
    if parts.next().is_some() {
        return None;
    }
    Some(Datetime { date: parse_date(date)?, hour, minute, second, microsecond, precision })
}

/// Splits `HH:MM:SS.ffff` into the clock and (microseconds, digits written).
fn split_fraction(text: &str) -> Option<(&str, (u32, u8))> {
    match text.split_once('.') {
        None => Some((text, (0, 0))),
        Some((clock, fraction)) if (1..=6).contains(&fraction.len()) => {
            let value = digits(fraction, fraction.len())?;
            let micros = value * 10u32.pow(6 - fraction.len() as u32);
            Some((clock, (micros, fraction.len() as u8)))
        }
        Some(_) => None,
    }
}

/// Exactly `width` ASCII digits.
fn digits(text: &str, width: usize) -> Option<u32> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnType, flags: ColumnFlags, charset: u16) -> Column {
        Column::new(kind).with_flags(flags).with_character_set(charset)
    }

    /// The extremes of BIGINT and BIGINT UNSIGNED parse exactly.
    #[test]
    fn integers_keep_their_full_range() {
        let signed = column(ColumnType::MYSQL_TYPE_LONGLONG, ColumnFlags::empty(), BINARY_CHARSET);
        let unsigned = column(ColumnType::MYSQL_TYPE_LONGLONG, ColumnFlags::UNSIGNED_FLAG, BINARY_CHARSET);
        assert!(matches!(decode_text(&signed, b"-9223372036854775808"), Value::Int(i64::MIN)));
        assert!(matches!(decode_text(&unsigned, b"18446744073709551615"), Value::Uint(u64::MAX)));
        assert_eq!(sql_type_name(&unsigned), "BIGINT UNSIGNED");
    }

    /// The integer fast path answers exactly as parsing the text would, or leaves the cell to
    /// the general way: extremes, overflow by one, signs, leading zeros, non-digits, empty.
    #[test]
    fn the_integer_fast_path_agrees_with_parsing() {
        let cells = [
            "0",
            "-0",
            "7",
            "-7",
            "007",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "+5",
            "",
            "-",
            "1e3",
            " 1",
            "12a",
            "99999999999999999999999",
        ];
        for kind in [ColumnType::MYSQL_TYPE_TINY, ColumnType::MYSQL_TYPE_LONG, ColumnType::MYSQL_TYPE_LONGLONG] {
            for unsigned in [false, true] {
                for cell in cells {
                    let general = match unsigned {
                        true => cell.parse().ok().map(Value::Uint),
                        false => cell.parse().ok().map(Value::Int),
                    };
                    // Whichever way a cell goes, it decodes as parsing its text would (or stays text).
                    let flags = if unsigned { ColumnFlags::UNSIGNED_FLAG } else { ColumnFlags::empty() };
                    let decoded = decode_text(&column(kind, flags, BINARY_CHARSET), cell.as_bytes());
                    let expected = general.unwrap_or_else(|| Value::Text(cell.to_string()));
                    assert_eq!(format!("{decoded:?}"), format!("{expected:?}"), "{cell:?} unsigned={unsigned}");
                }
            }
        }
        // The plain cases take the fast path; a string column never does.
        assert!(matches!(integer_fast_path(false, b"-42"), Some(Value::Int(-42))));
        assert!(matches!(integer_fast_path(true, b"42"), Some(Value::Uint(42))));
        assert!(integer_fast_path(true, b"-42").is_none());
        let varchar = column(ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty(), 45);
        assert!(matches!(decode_text(&varchar, b"12"), Value::Text(ref t) if t == "12"));
    }

    /// TIME beyond 24 hours, negative, and with a fraction keeps every field and its precision.
    #[test]
    fn time_values_keep_sign_hours_and_precision() {
        let time = column(ColumnType::MYSQL_TYPE_TIME, ColumnFlags::empty(), BINARY_CHARSET);
        let Value::Time(t) = decode_text(&time, b"838:59:59") else { panic!() };
        assert_eq!((t.negative, t.hours, t.minutes, t.seconds, t.precision), (false, 838, 59, 59, 0));
        let Value::Time(t) = decode_text(&time, b"-01:02:03.450") else { panic!() };
        assert_eq!((t.negative, t.hours, t.microseconds, t.precision), (true, 1, 450_000, 3));
    }

    /// DATETIME(6) keeps microseconds; a zero date stays zero.
    #[test]
    fn datetimes_keep_microseconds_and_zero_dates() {
        let dt = column(ColumnType::MYSQL_TYPE_DATETIME, ColumnFlags::empty(), BINARY_CHARSET);
        let Value::Datetime(v) = decode_text(&dt, b"2024-02-29 23:59:59.123456") else { panic!() };
        assert_eq!(
            (v.date.year, v.date.month, v.date.day, v.hour, v.microsecond, v.precision),
            (2024, 2, 29, 23, 123_456, 6)
        );
        let Value::Datetime(z) = decode_text(&dt, b"0000-00-00 00:00:00") else { panic!() };
        assert_eq!((z.date.year, z.date.month, z.date.day, z.precision), (0, 0, 0, 0));
    }

    /// Binary collation gives bytes, a text collation gives text, invalid UTF-8 falls back to bytes.
    #[test]
    fn binary_and_text_columns_are_told_apart() {
        let bin = column(ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::BINARY_FLAG, BINARY_CHARSET);
        let txt = column(ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty(), 45);
        assert!(matches!(decode_text(&bin, b"\x00\xff"), Value::Bytes(ref b) if b == b"\x00\xff"));
        assert!(matches!(decode_text(&txt, "é".as_bytes()), Value::Text(ref t) if t == "é"));
        assert!(matches!(decode_text(&txt, b"\xff"), Value::Bytes(_)));
        assert_eq!((sql_type_name(&bin), sql_type_name(&txt)), ("VARBINARY".into(), "VARCHAR".into()));
    }

    /// DECIMAL keeps the server's digits, trailing zeros included.
    #[test]
    fn decimals_stay_exact_text() {
        let dec = column(ColumnType::MYSQL_TYPE_NEWDECIMAL, ColumnFlags::empty(), BINARY_CHARSET);
        assert!(matches!(decode_text(&dec, b"1.50"), Value::Decimal(ref d) if d == "1.50"));
    }

    /// A NULL cell (0xFB) and a row with too few cells.
    #[test]
    fn rows_decode_null_and_reject_truncation() {
        let cols = [
            column(ColumnType::MYSQL_TYPE_VAR_STRING, ColumnFlags::empty(), 45),
            column(ColumnType::MYSQL_TYPE_LONG, ColumnFlags::empty(), 63),
        ];
        let kinds: Vec<CellKind> = cols.iter().map(CellKind::of).collect();
        assert_eq!(kinds, [CellKind::Text, CellKind::Signed]);
        let row = decode_text_row(b"\xfb\x0242", &kinds).unwrap();
        assert!(matches!(row[..], [Value::Null, Value::Int(42)]));
        assert!(decode_text_row(b"\xfb", &kinds).is_err());
    }
}
